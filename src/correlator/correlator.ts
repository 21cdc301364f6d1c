/**
 * Correlator: joins a message's lines by (host, queue id) into a Message and
 * follows content-filter hops (`queued as NEWID`) so the final deliveries
 * land on the message the client submitted.
 *
 * Time is the events' own: idle expiry compares line timestamps with the
 * newest one seen (the watermark), so replay and live behave the same.
 * Memory is bounded: open queue ids live in one Map kept in
 * least-recently-touched order; past `maxEntries` the oldest are shed
 * (emitted incomplete, counted).
 */
import type { Event, EventOf } from '../core/events.js';
import type { Hop, Message, MessageEnd, Recipient } from './message.js';

/**
 * A message let go this long after its last line's time (but for a flush)
 * carries emittedTs: the window store's out-of-order tolerance (its expiry
 * slack), so that a message merely completed after lines of another file
 * does not.
 */
const LATE_EMIT_MS = 120_000;

export interface CorrelatorOptions {
  /** A queue id untouched this long (log time) is emitted incomplete. Default 2 h (deferred mail retries within that). */
  idleTimeoutMs?: number;
  /** Hard cap on open queue ids; beyond it the least recently touched are shed. Default 200,000. */
  maxEntries?: number;
  /**
   * A finished message that came in through a content-filter re-injection
   * (client on loopback) waits this long for the hop line that links it to
   * its parent, which Postfix may log after the child is already delivered.
   * Default 60 s.
   */
  reinjectionGraceMs?: number;
  /** Is this relay IP a content filter on this host (its `queued as` is a hop, not a remote queue)? Default: loopback. */
  isFilterRelay?: (ip: string) => boolean;
  /**
   * Each message with a SASL user, once: when the queue manager takes it
   * (`qmgr: ID: from=<...>, nrcpt=N (queue active)` on its first hop), or,
   * if that line never came, just before the message itself is emitted.
   * The message as it stands then (no recipients yet); read it at once, it
   * goes on changing. Sending is counted here because a message with a
   * deferred recipient stays open for as long as Postfix retries it (days).
   */
  onSubmission?: MessageSink;
  /**
   * Recipients of a message held in the queue, as their outcome becomes
   * known. A message with a SASL user is *held* once one of its recipients
   * is still deferred `heldAfterMs` after its first deferral (on Postfix's
   * retry: greylisting has let mail through by then, a receiver throttling
   * a spam run has not). From then on each recipient goes here once: at
   * once those already sent or bounced, and each later one when its
   * delivery line says sent or bounced, or still deferred past heldAfterMs.
   * The message as it stands, with `recipients` those settled now (each
   * marked `settled`; the finished message carries the marks): read it at
   * once. Until then, and for messages that finish in time, recipients are
   * only counted when the message ends: a receiver throttling a flood
   * keeps its mail in the queue for days, and the bounce spike would come
   * that late.
   */
  onSettled?: MessageSink;
  /** See onSettled. Default 10 min: Postfix retries at about 5, 15 and 35 min. */
  heldAfterMs?: number;
}

export interface CorrelatorStats {
  open: number;
  peakOpen: number;
  emitted: number;
  /** Messages emitted early because the cap was reached. */
  shed: number;
  /** Messages emitted incomplete after the idle timeout. */
  expiredIdle: number;
  /** Hops joined into a parent message. */
  linked: number;
}

export type MessageSink = (m: Message) => void;

/** Correlator state as plain JSON (see Correlator.snapshot). */
export interface CorrelatorSnapshot {
  v: 1;
  roots: { msg: Message; live: number; done: boolean; submitted?: true; recipients: Recipient[]; entries: [key: string, host: string, queueId: string, lastTs: number, active: boolean][] }[];
  /** Open queue ids in least-recently-touched order: [root, index in the root's entries]. */
  entries: [number, number][];
  waiting: [key: string, root: number, deadline: number][];
  watermark: number;
  lastSweep: number;
  stats: CorrelatorStats;
}

/** One queue id's place in a message: several hops share one root. */
interface Entry {
  key: string;
  host: string;
  queueId: string;
  root: Root;
  hop: Hop;
  lastTs: number;
  /** qmgr has seen it (a `client=` after this is a reused id). */
  active: boolean;
  /** Neighbours in the least-recently-touched list (see Correlator.lruHead). */
  older: Entry | undefined;
  newer: Entry | undefined;
}

interface Root {
  msg: Message;
  /** Hop entries not yet removed. */
  live: number;
  entries: Entry[];
  recipients: Map<string, Recipient>;
  done: boolean;
  /** onSubmission has had it. */
  submitted: boolean;
  /** Held in the queue: its recipients go to onSettled as they settle (some recipient is `settled`). */
  held: boolean;
}

function addOnce(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === '::ffff:127.0.0.1';
}

export class Correlator {
  readonly stats: CorrelatorStats = { open: 0, peakOpen: 0, emitted: 0, shed: 0, expiredIdle: 0, linked: 0 };
  /**
   * Open queue ids by host, then queue id: a line's host and queue id are
   * fresh strings, and one Map keyed by `host + ' ' + queueId` had to build,
   * flatten and hash that key on every touch.
   */
  private readonly open = new Map<string, Map<string, Entry>>();
  private openCount = 0;
  /** The last host looked up and its Map: a log has one host or a few. */
  private lastHost: string | undefined;
  private lastIds: Map<string, Entry> | undefined;
  /**
   * Open entries in least-recently-touched order, as a linked list through
   * the entries themselves. Why not the Map's own insertion order (delete +
   * set on every touch): each such pair makes V8 rebuild the Map's table in
   * the old generation now and then, which was hundreds of MB of garbage over
   * a million messages. The Map is only written when a queue id opens or closes.
   */
  private lruHead: Entry | undefined;
  private lruTail: Entry | undefined;
  /** Finished re-injected messages waiting for their parent link, by first hop key, in deadline order. */
  private readonly waiting = new Map<string, { root: Root; deadline: number }>();
  private watermark = 0;
  private lastSweep = 0;
  private readonly idleMs: number;
  private readonly maxEntries: number;
  private readonly graceMs: number;
  private readonly isFilterRelay: (ip: string) => boolean;
  private readonly onSubmission: MessageSink | undefined;
  private readonly onSettled: MessageSink | undefined;
  private readonly heldAfterMs: number;

  constructor(
    private readonly sink: MessageSink,
    opts: CorrelatorOptions = {},
  ) {
    this.idleMs = opts.idleTimeoutMs ?? 2 * 3600_000;
    this.maxEntries = opts.maxEntries ?? 200_000;
    this.graceMs = opts.reinjectionGraceMs ?? 60_000;
    this.isFilterRelay = opts.isFilterRelay ?? isLoopback;
    this.onSubmission = opts.onSubmission;
    this.onSettled = opts.onSettled;
    this.heldAfterMs = opts.heldAfterMs ?? 600_000;
  }

  /** Feed one event (any kind; those without a queue id are ignored). */
  push(e: Event): void {
    if (e.ts > this.watermark) {
      this.watermark = e.ts;
      if (this.watermark - this.lastSweep >= 1000) this.sweep();
    }
    switch (e.kind) {
      case 'smtp.client': return this.onClient(e);
      case 'queue.pickup': return this.onPickup(e);
      case 'queue.messageid': {
        const en = this.touch(e);
        en.root.msg.messageId ??= e.messageId;
        return;
      }
      case 'queue.from': return this.onFrom(e);
      case 'delivery': return this.onDelivery(e);
      case 'queue.removed': return this.onRemoved(e.host, e.queueId, e.ts, 'removed');
      case 'queue.expired': {
        const en = this.touch(e);
        this.note(en.root, 'expired');
        return this.onRemoved(e.host, e.queueId, e.ts, 'expired');
      }
      case 'bounce.notify': return this.onBounce(e);
      case 'amavis': return this.onAmavis(e);
      case 'cleanup.action': {
        const en = this.touch(e);
        this.note(en.root, `${e.check}-${e.action}`);
        // A rejected/discarded message never reaches qmgr: it is finished here.
        if (e.action === 'reject' || e.action === 'discard') this.onRemoved(e.host, e.queueId, e.ts, 'removed');
        return;
      }
      case 'smtp.reject':
        if (e.queueId !== undefined) {
          const en = this.touch(e as typeof e & { queueId: string });
          this.note(en.root, `smtpd-${e.action}`);
        }
        return;
      case 'postsuper':
        if (e.queueId !== undefined) {
          const en = this.find(e.host, e.queueId);
          if (!en) return;
          this.note(en.root, `postsuper-${e.action}`);
          if (e.action === 'removed') this.onRemoved(e.host, e.queueId, e.ts, 'removed');
        }
        return;
      default:
        return;
    }
  }

  /** Emit everything still open (end of input). */
  flush(): void {
    for (const w of this.waiting.values()) if (!w.root.done) this.emit(w.root, w.root.msg.end);
    this.waiting.clear();
    for (const en of this.inLruOrder()) {
      if (!en.root.done) this.finish(en.root, 'flush');
    }
  }

  /**
   * Queue ids still open of the messages `account` submitted (SASL user,
   * any case), the most recently active first, at most `max`: what the
   * logs say is its mail in the queue now, under whatever sender it was
   * sent. A content-filter
   * hop's id is among them once its parent is linked (the id the mail waits
   * under when deferred); the first hop's is gone once it was removed.
   * postqueue shows no SASL user, so holding an account's mail by sender
   * alone misses forged senders it never used before (a spam run picks a
   * new one per message). A scan of the open ids: for an action, not per line.
   */
  queueIdsOf(account: string, max = 10_000): string[] {
    const a = account.toLowerCase();
    const out: string[] = [];
    for (let en = this.lruTail; en !== undefined && out.length < max; en = en.older) {
      if (en.root.msg.saslUser?.toLowerCase() === a) out.push(en.queueId);
    }
    return out;
  }

  /** Open queue ids plus finished re-injections waiting for a link (for metrics and the benchmark). */
  get size(): number {
    return this.openCount + this.waiting.size;
  }

  /**
   * Plain-JSON copy of the whole state (open queue ids in LRU order, their
   * messages and recipients, hop roots shared by several queue ids, finished
   * re-injections waiting for their link, watermark, stats): `restore()` into a
   * new Correlator continues exactly where this one stands.
   */
  snapshot(): CorrelatorSnapshot {
    const rootIdx = new Map<Root, number>();
    const roots: CorrelatorSnapshot['roots'] = [];
    const ref = (root: Root): number => {
      let i = rootIdx.get(root);
      if (i === undefined) {
        i = roots.length;
        rootIdx.set(root, i);
        roots.push({
          msg: structuredClone(root.msg),
          live: root.live,
          done: root.done,
          ...(root.submitted ? { submitted: true as const } : {}),
          recipients: structuredClone([...root.recipients.values()]),
          entries: root.entries.map((en) => [en.key, en.host, en.queueId, en.lastTs, en.active]),
        });
      }
      return i;
    };
    const entries: [number, number][] = [];
    for (const en of this.inLruOrder()) entries.push([ref(en.root), en.root.entries.indexOf(en)]);
    const waiting: [string, number, number][] = [];
    for (const [key, w] of this.waiting) waiting.push([key, ref(w.root), w.deadline]);
    return { v: 1, roots, entries, waiting, watermark: this.watermark, lastSweep: this.lastSweep, stats: { ...this.stats } };
  }

  /** Replace this correlator's state with a snapshot() (from JSON). */
  restore(s: CorrelatorSnapshot): void {
    const roots: Root[] = s.roots.map((r) => {
      const msg = structuredClone(r.msg);
      const root: Root = { msg, live: r.live, done: r.done, submitted: r.submitted === true, held: false, entries: [], recipients: new Map() };
      for (const rc of structuredClone(r.recipients)) {
        root.recipients.set(rc.address, rc);
        if (rc.settled === true) root.held = true;
      }
      // entries[i].hop and msg.hops[i] are one object, as when the hops were merged.
      r.entries.forEach(([key, host, queueId, lastTs, active], i) => {
        root.entries.push({ key, host, queueId, root, hop: msg.hops[i] ?? { queueId }, lastTs, active, older: undefined, newer: undefined });
      });
      return root;
    });
    this.open.clear();
    this.openCount = 0;
    this.lastHost = this.lastIds = undefined;
    this.lruHead = this.lruTail = undefined;
    for (const [ri, ei] of s.entries) {
      const en = roots[ri]?.entries[ei];
      if (en) {
        this.insert(en);
      }
    }
    this.waiting.clear();
    for (const [key, ri, deadline] of s.waiting) {
      const root = roots[ri];
      if (root) this.waiting.set(key, { root, deadline });
    }
    this.watermark = s.watermark;
    this.lastSweep = s.lastSweep;
    Object.assign(this.stats, s.stats);
  }

  // --- event handlers -------------------------------------------------------

  private onClient(e: EventOf<'smtp.client'>): void {
    let en = this.find(e.host, e.queueId);
    if (en && (en.active || en.hop.clientIp !== undefined)) {
      // A queue id seen through qmgr already got a new client: the id was reused
      // and the old message's `removed` line never came.
      this.finish(en.root, 'reused');
      en = undefined;
    }
    en = this.touch(e);
    en.hop.clientIp = e.ip;
    en.hop.clientHost = e.clientHost;
    en.hop.service = e.service;
    const m = en.root.msg;
    if (en.root.entries[0] === en) {
      m.clientIp = e.ip;
      m.clientHost = e.clientHost;
      m.service = e.service;
      m.origin = 'smtp';
      if (e.account !== undefined) m.saslUser = e.account;
      if (e.saslMethod !== undefined) m.saslMethod = e.saslMethod;
    }
  }

  private onPickup(e: EventOf<'queue.pickup'>): void {
    const existing = this.find(e.host, e.queueId);
    if (existing && existing.active) this.finish(existing.root, 'reused');
    const en = this.touch(e);
    const m = en.root.msg;
    if (en.root.entries[0] === en) {
      m.origin = 'pickup';
      m.sender ??= e.sender;
    }
  }

  private onFrom(e: EventOf<'queue.from'>): void {
    const en = this.touch(e);
    en.active = true;
    const m = en.root.msg;
    if (en.root.entries[0] === en) {
      m.sender = e.sender;
      if (e.size !== undefined) m.size = e.size;
      if (e.nrcpt !== undefined) m.nrcpt = e.nrcpt;
      this.submit(en.root);
    } else {
      m.sender ??= e.sender;
    }
  }

  /** Hand an authenticated message to onSubmission, once. */
  private submit(root: Root): void {
    if (root.submitted || root.msg.saslUser === undefined || this.onSubmission === undefined) return;
    root.submitted = true;
    this.onSubmission(root.msg);
  }

  private onDelivery(e: EventOf<'delivery'>): void {
    const en = this.touch(e);
    const root = en.root;
    const hopToFilter = e.queuedAs !== undefined && e.relayIp !== undefined && this.isFilterRelay(e.relayIp);
    let r = root.recipients.get(e.to);
    if (r === undefined) {
      r = { address: e.to, status: e.status, ts: e.ts, attempts: 0 };
      root.recipients.set(e.to, r);
    }
    // The hand-off to a content filter never overwrites a final delivery
    // that a later hop already logged (hops can be logged out of order).
    if (!hopToFilter || r.attempts === 0 || r.viaFilter === true) {
      r.status = e.status;
      r.ts = e.ts;
      if (e.origTo !== undefined) r.origTo ??= e.origTo;
      if (e.dsn !== undefined) r.dsn = e.dsn;
      r.relay = e.relay;
      r.reply = e.reply;
      if (hopToFilter) r.viaFilter = true;
      else delete r.viaFilter;
    }
    r.attempts++;
    if (hopToFilter) this.link(en, e.host, e.queuedAs!, 'delivery');
    else if (this.onSettled !== undefined && root.msg.saslUser !== undefined && r.settled !== true) this.settle(root, r, e.ts);
  }

  /** A delivery line of an authenticated message's recipient `r` (not settled yet): see CorrelatorOptions.onSettled. */
  private settle(root: Root, r: Recipient, ts: number): void {
    if (r.status === 'deferred') {
      r.deferredSince ??= ts;
      if (ts - r.deferredSince < this.heldAfterMs) return;
    } else if (!root.held) {
      return; // counted when the message ends, as every message that is not held
    }
    let now: Recipient[];
    if (root.held) {
      now = [r];
    } else {
      // Held from now on: hand over with it every recipient whose outcome is known.
      root.held = true;
      now = [];
      for (const x of root.recipients.values()) {
        if (x.viaFilter === true || x.settled === true) continue;
        if (x.status === 'deferred' && (x.deferredSince === undefined || ts - x.deferredSince < this.heldAfterMs)) continue;
        now.push(x);
      }
    }
    for (const x of now) x.settled = true;
    this.onSettled!({ ...root.msg, recipients: now });
  }

  private onBounce(e: EventOf<'bounce.notify'>): void {
    const en = this.touch(e);
    const m = en.root.msg;
    addOnce((m.bounces ??= []), e.childQueueId);
    const child = this.touchKey(e.host, e.childQueueId, e.ts, e.src);
    if (child.root !== en.root) {
      child.root.msg.bounceOf = m.queueId;
      child.root.msg.origin = 'bounce';
    }
  }

  private onAmavis(e: EventOf<'amavis'>): void {
    if (e.queueId === undefined) return;
    const en = this.touch(e as typeof e & { queueId: string });
    const m = en.root.msg;
    m.amavis = { verdict: e.verdict, category: e.category };
    if (e.hits !== undefined) m.amavis.hits = e.hits;
    m.messageId ??= e.messageId;
    for (const q of e.queuedAs ?? []) this.link(en, e.host, q, 'amavis');
  }

  private onRemoved(host: string, queueId: string, ts: number, why: MessageEnd): void {
    const en = this.find(host, queueId);
    if (!en) return;
    en.lastTs = ts;
    this.close(en);
    this.stats.open = this.openCount;
    const root = en.root;
    root.live--;
    if (why === 'expired') root.msg.end = 'expired';
    if (root.live <= 0) this.complete(root, why === 'expired' ? 'expired' : root.msg.end === 'expired' ? 'expired' : 'removed');
  }

  // --- hop chains -------------------------------------------------------------

  /** `parent`'s message continues as queue id `childId` on the same host. */
  private link(parent: Entry, host: string, childId: string, how: 'delivery' | 'amavis'): void {
    const root = parent.root;
    let child = this.find(host, childId);
    if (child === undefined) {
      // The child may already have finished and be waiting for us.
      const key = host + ' ' + childId;
      const w = this.waiting.get(key);
      if (w !== undefined && !w.root.done) {
        this.waiting.delete(key);
        this.merge(root, w.root, how);
        return;
      }
      child = this.touchKey(host, childId, parent.lastTs, parent.root.msg.src);
    }
    if (child.root === root) {
      child.hop.linkedBy ??= how;
      return;
    }
    this.merge(root, child.root, how);
  }

  /** Fold `other` (a later hop that started as its own message) into `root`. */
  private merge(root: Root, other: Root, how: 'delivery' | 'amavis'): void {
    this.stats.linked++;
    const first = other.entries[0];
    if (first) first.hop.linkedBy = how;
    for (const en of other.entries) {
      en.root = root;
      root.entries.push(en);
      root.msg.hops.push(en.hop);
    }
    root.live += other.live;
    // A hop handed over already (it had a SASL user of its own) is not handed over again as part of this message.
    if (other.submitted) root.submitted = true;
    if (other.held) root.held = true;
    for (const [addr, r] of other.recipients) {
      const mine = root.recipients.get(addr);
      if (mine === undefined || mine.viaFilter === true) {
        if (mine) r.attempts += mine.attempts;
        root.recipients.set(addr, r);
      }
    }
    const om = other.msg;
    const m = root.msg;
    m.messageId ??= om.messageId;
    m.sender ??= om.sender;
    if (om.amavis && !m.amavis) m.amavis = om.amavis;
    if (om.bounces) for (const b of om.bounces) addOnce((m.bounces ??= []), b);
    if (om.actions) for (const a of om.actions) (m.actions ??= []).push(a);
    if (om.firstTs < m.firstTs) m.firstTs = om.firstTs;
    if (om.lastTs > m.lastTs) m.lastTs = om.lastTs;
    if (om.end === 'expired') m.end = 'expired';
    other.done = true;
    if (root.live <= 0 && !root.done) this.complete(root, m.end === 'expired' ? 'expired' : 'removed');
  }

  // --- bookkeeping --------------------------------------------------------------

  private touch(e: { host: string; queueId: string; ts: number; src: Message['src'] }): Entry {
    return this.touchKey(e.host, e.queueId, e.ts, e.src);
  }

  private touchKey(host: string, queueId: string, ts: number, src: Message['src']): Entry {
    const ids = this.idsOf(host);
    let en = ids.get(queueId);
    if (en === undefined) {
      const hop: Hop = { queueId };
      const msg: Message = {
        host,
        queueId,
        origin: 'unknown',
        recipients: [],
        firstTs: ts,
        lastTs: ts,
        hops: [hop],
        complete: false,
        end: 'removed',
        src,
      };
      const root: Root = { msg, live: 1, entries: [], recipients: new Map(), done: false, submitted: false, held: false };
      en = { key: host + ' ' + queueId, host, queueId, root, hop, lastTs: ts, active: false, older: undefined, newer: undefined };
      root.entries.push(en);
      this.insert(en, ids);
      if (this.openCount > this.stats.peakOpen) this.stats.peakOpen = this.openCount;
      if (this.openCount > this.maxEntries) this.shedOldest();
    } else if (en !== this.lruTail) {
      // Least-recently-touched order, for expiry and shedding.
      this.lruUnlink(en);
      this.lruAppend(en);
    }
    this.stats.open = this.openCount;
    en.lastTs = ts;
    const m = en.root.msg;
    if (ts > m.lastTs) m.lastTs = ts;
    if (ts < m.firstTs) m.firstTs = ts;
    return en;
  }

  private note(root: Root, action: string): void {
    const a = (root.msg.actions ??= []);
    if (!a.includes(action)) a.push(action);
  }

  /** Every hop removed: emit now, unless this is a re-injection that may still get its parent link. */
  private complete(root: Root, end: MessageEnd): void {
    root.msg.end = end;
    root.msg.complete = true;
    const first = root.entries[0];
    const reinjected = first !== undefined && root.msg.hops.length === 1 && first.hop.clientIp !== undefined && this.isFilterRelay(first.hop.clientIp);
    if (reinjected && this.graceMs > 0) {
      this.waiting.set(first.key, { root, deadline: root.msg.lastTs + this.graceMs });
      if (this.waiting.size > this.maxEntries) {
        const [k, oldest] = this.waiting.entries().next().value!;
        this.waiting.delete(k);
        this.emit(oldest.root, oldest.root.msg.end);
      }
      return;
    }
    this.emit(root, end);
  }

  /** Finish a message early (idle, shed, reused, flush): emit it incomplete, free its hops. */
  private finish(root: Root, end: MessageEnd): void {
    for (const en of root.entries) {
      if (this.find(en.host, en.queueId) === en) this.close(en);
    }
    this.stats.open = this.openCount;
    root.msg.complete = false;
    this.emit(root, end);
  }

  private emit(root: Root, end: MessageEnd): void {
    if (root.done) return;
    root.done = true;
    const m = root.msg;
    m.end = end;
    // Not at the end of input: nothing comes after a flush to disagree with, and stamped, every message
    // still queued (deferred for hours) would pile into the last window as one burst.
    if (end !== 'flush' && this.watermark - m.lastTs > LATE_EMIT_MS) m.emittedTs = this.watermark;
    m.recipients = [...root.recipients.values()];
    this.submit(root);
    this.stats.emitted++;
    this.sink(m);
  }

  /** The open entry of a queue id, if any. */
  private find(host: string, queueId: string): Entry | undefined {
    if (host === this.lastHost) return this.lastIds!.get(queueId);
    return this.open.get(host)?.get(queueId);
  }

  /** The Map of a host's open queue ids, created when it has none. */
  private idsOf(host: string): Map<string, Entry> {
    if (host === this.lastHost) return this.lastIds!;
    let ids = this.open.get(host);
    if (ids === undefined) {
      ids = new Map();
      this.open.set(host, ids);
    }
    this.lastHost = host;
    this.lastIds = ids;
    return ids;
  }

  /** Open a queue id: in its host's Map and last in the LRU list. */
  private insert(en: Entry, ids = this.idsOf(en.host)): void {
    ids.set(en.queueId, en);
    this.openCount++;
    this.lruAppend(en);
  }

  /** Forget an open queue id (its Map entry and its place in the LRU list). */
  private close(en: Entry): void {
    const ids = en.host === this.lastHost ? this.lastIds! : this.open.get(en.host);
    if (ids !== undefined && ids.delete(en.queueId)) {
      this.openCount--;
      // A host with nothing open goes, so invented host names cannot pile up.
      if (ids.size === 0) {
        this.open.delete(en.host);
        if (ids === this.lastIds) this.lastHost = this.lastIds = undefined;
      }
    }
    this.lruUnlink(en);
  }

  private lruAppend(en: Entry): void {
    en.older = this.lruTail;
    en.newer = undefined;
    if (this.lruTail !== undefined) this.lruTail.newer = en;
    else this.lruHead = en;
    this.lruTail = en;
  }

  private lruUnlink(en: Entry): void {
    if (en.older !== undefined) en.older.newer = en.newer;
    else if (this.lruHead === en) this.lruHead = en.newer;
    if (en.newer !== undefined) en.newer.older = en.older;
    else if (this.lruTail === en) this.lruTail = en.older;
    en.older = en.newer = undefined;
  }

  /** Open entries, least recently touched first (a copy: callers may close them). */
  private inLruOrder(): Entry[] {
    const out: Entry[] = [];
    for (let en = this.lruHead; en !== undefined; en = en.newer) out.push(en);
    return out;
  }

  private shedOldest(): void {
    const oldest = this.lruHead;
    if (oldest === undefined) return;
    this.stats.shed++;
    this.finish(oldest.root, 'shed');
  }

  /** Expire idle queue ids and release re-injected messages whose grace ran out. */
  private sweep(): void {
    this.lastSweep = this.watermark;
    const limit = this.watermark - this.idleMs;
    for (let en = this.lruHead; en !== undefined && en.lastTs < limit; en = this.lruHead) {
      if (en.root.done) {
        this.close(en);
        continue;
      }
      this.stats.expiredIdle++;
      this.finish(en.root, 'idle');
      // finish() closes every open hop of the root; this one too, unless it was not the root's.
      if (this.lruHead === en) this.close(en);
    }
    for (const [key, x] of this.waiting) {
      if (x.deadline > this.watermark) break;
      this.waiting.delete(key);
      if (!x.root.done) this.emit(x.root, x.root.msg.end);
    }
  }
}
