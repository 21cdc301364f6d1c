/**
 * rbl: DNS blocklists, passive and active.
 *
 * Passive (always on; reads what Postfix already looked up):
 * - `smtp.reject` category `rbl` (smtpd and postscreen), `dnsbl` (dnsblog:
 *   `addr X listed by domain Z as R`) and `postscreen` DNSBL rank > 0 mark the
 *   client IP as listed for `listedTtlMs`, and are counted per IP and per list.
 *   An IP rejected/listed `rejectThreshold` times within `windowMs` →
 *   `rbl-rejected` (ip, info; low at 4× the threshold): context, the server
 *   already said no.
 * - An IP marked listed that then logs in successfully (auth success, or
 *   smtpd `client=` with a SASL user) → `listed-ip` on the account (high):
 *   a botnet or spam host holding that account's password.
 *
 * Active (only when the engine has a DNS resolver, `deps.dns`): every IP
 * that logs in successfully (not loopback, private or a mail host) is looked
 * up in `zones` (IPv4 reversed octets, IPv6 reversed nibbles), the answer is
 * kept per IP for `activeTtlMs`, and a listing → `listed-ip` on the account(s)
 * that logged in from it, with the zone and return code. Lookups never block:
 * the event handler fires the query and returns; the finding is emitted when
 * the answer arrives (its ts is the login's). Errors, timeouts and rate-limit
 * refusals are counted (`dns-errors` in the store) and otherwise ignored.
 * `drain()` waits for the lookups in flight (replay calls it at the end).
 *
 * What does not count as a listing:
 * - allowlist zones (`allowZones`, e.g. list.dnswl.org: dnsblog logs its hits too);
 * - 127.255.255.x: the list's own error codes (e.g. Spamhaus refusing queries
 *   sent through public resolvers), never a listing;
 * - `ignoreReplies`: per-zone return codes that are policy, not abuse. Default:
 *   Spamhaus PBL (127.0.0.10/11 in zen), which lists dynamic ranges: every home
 *   user submitting over 587 is "PBL-listed".
 * - `smtp.reject` rbl rejects naming a domain (sender/helo/hostname via a
 *   DBL/RHSBL) are counted against the IP but do not mark the IP listed.
 *
 * The promises of lookups in flight are held outside the window store: they
 * are I/O handles, not detection state (a snapshot taken mid-lookup simply
 * forgets them; the pending mark expires after `pendingTtlMs`).
 *
 * Distributed mode (src/detect/route.ts): listings, counts and lookups are
 * the IP's state, kept in its delivery; a login from a listed IP is decided
 * there and handed off (DetectorDeps.handOff) to the account's delivery,
 * which owns the listed-ip finding and its cooldown. The per-list counts
 * (window.listCounts) then cover the partition's IPs only.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import type { Evidence, Severity } from '../src/detect/finding.js';
import { accountRoute } from '../src/detect/route.js';
import { isAccountLogin } from './account-util.js';
import { defineDetector } from './types.js';

const config = z.object({
  /** Window for counting rejects/listings per IP and per list (ms). */
  windowMs: z.number().int().positive().default(60 * 60_000),
  /** Rejects/listings of one IP within `windowMs` that make an `rbl-rejected` finding. */
  rejectThreshold: z.number().int().positive().default(5),
  /** How long a passive listing marks an IP as listed (ms). */
  listedTtlMs: z.number().int().positive().default(24 * 3600_000),
  /** Active lookups (only with a DNS resolver configured): zones queried for IPs that log in. */
  active: z.boolean().default(true),
  zones: z.array(z.string().min(1)).default(['zen.spamhaus.org']),
  /** How long an active answer (listed or not) is kept per IP (ms). */
  activeTtlMs: z.number().int().positive().default(6 * 3600_000),
  /** How long an IP counts as "being looked up" before a new login may ask again (ms). */
  pendingTtlMs: z.number().int().positive().default(60_000),
  /** Return codes per zone that are policy listings, not abuse (Spamhaus PBL by default). */
  ignoreReplies: z.record(z.string(), z.array(z.string())).default({ 'zen.spamhaus.org': ['127.0.0.10', '127.0.0.11'], 'pbl.spamhaus.org': ['127.0.0.10', '127.0.0.11'] }),
  /** Allowlist zones: their hits are never listings. */
  allowZones: z.array(z.string()).default(['list.dnswl.org', 'swl.spamhaus.org', 'wl.mailspike.net']),
  /** One finding per (signal, entity[, IP]) per cooldown (ms). */
  cooldownMs: z.number().int().positive().default(60 * 60_000),
  maxKeys: z.number().int().positive().default(50_000),
});

type Cfg = z.output<typeof config>;

interface Listing {
  list: string;
  reply?: string;
  ts: number;
  file: string;
  offset: number;
}

interface Login {
  account: string;
  ts: number;
  file: string;
  offset: number;
}

interface ActiveAnswer {
  listed: { zone: string; reply: string }[];
}

/**
 * A listed IP logged in to an account. Decided where the IP's state is (its
 * delivery), reported where the account's is: the finding, its cooldown
 * and the policy that combines it with the account's other signals.
 */
interface ListedLogin {
  account: string;
  ip: string;
  ts: number;
  src: { file: string; offset: number };
  how: 'passive' | 'active';
  detail: { list: string; reply?: string; listingSrc?: Evidence };
}

function isListedLogin(d: unknown): d is ListedLogin {
  const x = d as Partial<ListedLogin> | null;
  return (
    typeof x?.account === 'string' &&
    typeof x.ip === 'string' &&
    typeof x.ts === 'number' &&
    typeof x.src?.file === 'string' &&
    typeof x.src.offset === 'number' &&
    (x.how === 'passive' || x.how === 'active') &&
    typeof x.detail?.list === 'string' &&
    (x.detail.reply === undefined || typeof x.detail.reply === 'string')
  );
}

/** Reasons of rbl rejects that name a domain (DBL/RHSBL), not the client IP. */
const DOMAIN_LISTING = ['sender address', 'helo command', 'recipient address', 'client hostname'];
const SKIP_RANGES = new Set(['private', 'loopback', 'linkLocal', 'uniqueLocal', 'carrierGradeNat', 'unspecified', 'multicast', 'broadcast']);

function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const a = ipaddr.parse(ip);
    return a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
  } catch {
    return undefined;
  }
}

/** `1.2.3.4` → `4.3.2.1`; IPv6 → 32 reversed nibbles; undefined when unparsable. */
export function reverseName(ip: string): string | undefined {
  const a = parseIp(ip);
  if (!a) return undefined;
  if (a.kind() === 'ipv4') return (a as ipaddr.IPv4).octets.slice().reverse().join('.');
  const hex = (a as ipaddr.IPv6).parts.map((p) => p.toString(16).padStart(4, '0')).join('');
  return hex.split('').reverse().join('.');
}

function isListingReply(cfg: Cfg, zone: string, reply: string): boolean {
  if (!reply.startsWith('127.') || reply.startsWith('127.255.255.')) return false;
  const ignored = cfg.ignoreReplies[zone.toLowerCase()];
  return ignored === undefined || !ignored.includes(reply);
}

export const rblDetector = defineDetector({
  id: 'rbl',
  description: 'DNS blocklists: IPs repeatedly rejected as listed, and listed IPs (passive or active lookup) logging in to an account.',
  config,
  events: ['smtp.reject', 'dnsbl', 'postscreen', 'auth', 'smtp.client'],
  reads: (e) =>
    (e.kind === 'smtp.reject' && e.category === 'rbl' && e.ip !== undefined) ||
    e.kind === 'dnsbl' ||
    (e.kind === 'postscreen' && e.action === 'dnsbl' && (e.rank ?? 0) > 0) ||
    isAccountLogin(e),
  messages: false,
  create(cfg, { store, site, emit, dns, owner, handOff }) {
    const perIp = store.counter('rejects-ip', { windowMs: cfg.windowMs, maxKeys: cfg.maxKeys });
    const perList = store.counter('rejects-list', { windowMs: cfg.windowMs, maxKeys: 1000 });
    const listsOfIp = store.distinct('lists-ip', { windowMs: cfg.windowMs, maxPerKey: 20, maxKeys: cfg.maxKeys });
    const listed = store.recent<Listing>('listed', { ttlMs: cfg.listedTtlMs, maxKeys: cfg.maxKeys });
    const answers = store.recent<ActiveAnswer>('active', { ttlMs: cfg.activeTtlMs, maxKeys: cfg.maxKeys });
    const pending = store.recent<Login[]>('pending', { ttlMs: cfg.pendingTtlMs, maxKeys: cfg.maxKeys });
    const dnsErrors = store.counter('dns-errors', { windowMs: 3600_000, maxKeys: 16 });
    const alerted = store.recent<number>('alerted', { ttlMs: cfg.cooldownMs, maxKeys: cfg.maxKeys });
    const allow = new Set(cfg.allowZones.map((z) => z.toLowerCase()));
    const activeOn = dns !== undefined && cfg.active && cfg.zones.length > 0;
    const inflight = new Set<Promise<void>>();
    const RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

    function due(key: string, severity: Severity, ts: number): boolean {
      const prev = alerted.get(key, ts);
      if (prev !== undefined && prev >= RANK[severity]) return false;
      alerted.set(key, ts, RANK[severity]);
      return true;
    }

    function ev(src: { file: string; offset: number }, ts: number, note: string): Evidence {
      return { file: src.file, offset: src.offset, ts, note };
    }

    /** Count a reject/listing; mark the IP listed when it is the IP that is listed. */
    function seen(ip: string, list: string, reply: string | undefined, marksIp: boolean, ts: number, src: { file: string; offset: number }): void {
      if (!owner.ip(ip)) return;
      const n = perIp.add(ip, ts);
      perList.add(list, ts);
      const lists = listsOfIp.add(ip, list, ts).count;
      if (marksIp) listed.set(ip, ts, { list, reply, ts, file: src.file, offset: src.offset });
      if (n < cfg.rejectThreshold) return;
      const severity: Severity = n >= cfg.rejectThreshold * 4 ? 'low' : 'info';
      if (!due(`rbl-rejected|${ip}`, severity, ts)) return;
      emit({
        type: 'finding',
        detector: 'rbl',
        entity: { kind: 'ip', id: ip },
        ip,
        severity,
        score: severity === 'low' ? 15 : 5,
        ts,
        signals: ['rbl-rejected'],
        summary: `${ip} was rejected or flagged by DNS blocklists ${n} times in ${Math.round(cfg.windowMs / 60_000)} min (${listsOfIp.values(ip, ts).join(', ')})`,
        window: { windowMs: cfg.windowMs, count: n, threshold: cfg.rejectThreshold, lists, listCounts: Object.fromEntries(listsOfIp.values(ip, ts).map((l) => [l, perList.get(l, ts)])) },
        evidence: [ev(src, ts, `listed by ${list}${reply ? ` as ${reply}` : ''}`)],
      });
    }

    function listedLogin(account: string, ip: string, ts: number, src: { file: string; offset: number }, how: 'passive' | 'active', detail: { list: string; reply?: string; listingSrc?: Evidence }): void {
      if (!due(`listed-ip|${account}|${ip}`, 'high', ts)) return;
      const evidence: Evidence[] = [ev(src, ts, `${account} logged in from ${ip}`)];
      if (detail.listingSrc) evidence.push(detail.listingSrc);
      emit({
        type: 'finding',
        detector: 'rbl',
        entity: { kind: 'account', id: account },
        account,
        ip,
        severity: 'high',
        score: 70,
        ts,
        signals: ['listed-ip'],
        summary: `${account} logged in from ${ip}, which is listed by ${detail.list}${detail.reply ? ` (${detail.reply})` : ''}: likely a spam host using a stolen password`,
        window: { how, list: detail.list, reply: detail.reply, ip },
        evidence,
      });
    }

    /** Report in the account's delivery: now when this one owns it (standalone), else by hand-off; always by hand-off from a DNS callback. */
    function toAccount(l: ListedLogin, async: boolean): void {
      if (!async && owner.account(l.account)) listedLogin(l.account, l.ip, l.ts, l.src, l.how, l.detail);
      else handOff(accountRoute(l.account), l);
    }

    function activeLookup(ip: string, login: Login): void {
      if (!dns) return;
      const cached = answers.get(ip, login.ts);
      if (cached !== undefined) {
        const hit = cached.listed[0];
        if (hit) toAccount({ account: login.account, ip, ts: login.ts, src: { file: login.file, offset: login.offset }, how: 'active', detail: { list: hit.zone, reply: hit.reply } }, false);
        return;
      }
      const waiting = pending.get(ip, login.ts);
      if (waiting !== undefined) {
        if (waiting.length < 10 && !waiting.some((w) => w.account === login.account)) waiting.push(login);
        return;
      }
      const rev = reverseName(ip);
      if (rev === undefined) return;
      const waiters: Login[] = [login];
      pending.set(ip, login.ts, waiters);
      const p = Promise.all(
        cfg.zones.map((zone) =>
          dns.a(`${rev}.${zone}`).then(
            (rs) => rs.filter((r) => isListingReply(cfg, zone, r.address)).map((r) => ({ zone, reply: r.address })),
            (err: unknown) => {
              const code = (err as { code?: unknown }).code;
              dnsErrors.add(code === 'ETIMEOUT' || code === 'ERATELIMIT' ? code : 'error', login.ts);
              return undefined;
            },
          ),
        ),
      ).then((perZone) => {
        pending.delete(ip);
        // a zone that failed is unknown, not "not listed": keep no answer then, so a later login asks again
        const hits = perZone.flatMap((z) => z ?? []);
        if (hits.length > 0 || perZone.every((z) => z !== undefined)) answers.set(ip, login.ts, { listed: hits });
        const hit = hits[0];
        if (!hit) return;
        for (const w of waiters) toAccount({ account: w.account, ip, ts: w.ts, src: { file: w.file, offset: w.offset }, how: 'active', detail: { list: hit.zone, reply: hit.reply } }, true);
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }

    /** Whether the IP is listed, and the lookup: the IP's delivery; the finding: the account's. */
    function login(account: string, ip: string, ts: number, src: { file: string; offset: number }): void {
      if (site.isMailHost(ip) || !owner.ip(ip)) return; // loopback included
      const l = listed.get(ip, ts);
      if (l !== undefined) {
        const listingSrc = ev(l, l.ts, `${ip} listed by ${l.list}${l.reply ? ` as ${l.reply}` : ''}`);
        toAccount({ account, ip, ts, src, how: 'passive', detail: { list: l.list, reply: l.reply, listingSrc } }, false);
      }
      if (!activeOn) return;
      const a = parseIp(ip);
      if (!a || SKIP_RANGES.has(a.range())) return;
      activeLookup(ip, { account, ts, file: src.file, offset: src.offset });
    }

    return {
      onEvent(e) {
        switch (e.kind) {
          case 'smtp.reject': {
            if (e.category !== 'rbl' || e.ip === undefined) return;
            const list = (e.list ?? 'unknown').toLowerCase();
            if (allow.has(list)) return;
            const r = e.reason.toLowerCase();
            const marksIp = !DOMAIN_LISTING.some((d) => r.includes(d));
            seen(e.ip, list, undefined, marksIp, e.ts, e.src);
            return;
          }
          case 'dnsbl': {
            const list = e.list.toLowerCase();
            if (allow.has(list) || !isListingReply(cfg, list, e.reply)) return;
            seen(e.ip, list, e.reply, true, e.ts, e.src);
            return;
          }
          case 'postscreen': {
            if (e.action !== 'dnsbl' || (e.rank ?? 0) <= 0) return;
            seen(e.ip, 'postscreen', `rank ${e.rank}`, true, e.ts, e.src);
            return;
          }
          case 'auth': {
            if (e.outcome !== 'success' || e.account === undefined || e.ip === undefined) return;
            login(e.account, e.ip, e.ts, e.src);
            return;
          }
          case 'smtp.client': {
            if (e.account === undefined) return;
            login(e.account, e.ip, e.ts, e.src);
            return;
          }
          default:
            return;
        }
      },

      onHandOff(data) {
        if (!isListedLogin(data)) return false;
        listedLogin(data.account, data.ip, data.ts, data.src, data.how, data.detail);
        return true;
      },

      async drain() {
        while (inflight.size > 0) await Promise.allSettled([...inflight]);
      },
    };
  },
});
