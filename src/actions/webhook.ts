/**
 * Webhooks: signed JSON POSTs, retried, through a durable outbox so a
 * notification survives a receiver that is down (and a floodgate restart,
 * with a durable WebhookOutbox).
 *
 * Flow: `send()` renders the body once per target and stores an outbox entry
 * (`pending`) before the first attempt; each delivery then makes up to
 * `maxAttempts` attempts with exponential backoff and jitter, retrying
 * network errors, timeouts, 408, 429 and 5xx (a Retry-After is honoured up to
 * maxDelayMs) and nothing else. The entry ends `delivered`, or `failed` with
 * `retryable` telling whether `retryPending()` will try it again (attempts
 * ran out) or not (the receiver refused it: 3xx/4xx).
 *
 * Signature (when the target has a secret):
 *   X-Floodgate-Timestamp: <unix seconds>
 *   X-Floodgate-Signature: sha256=<hex HMAC-SHA256(secret, `${timestamp}.${body}`)>
 *   X-Floodgate-Delivery:  <outbox entry id, the same on every attempt: dedupe on it>
 * Each attempt is signed afresh, so receivers may reject stale timestamps.
 * `verifySignature()` is the receiver side.
 *
 * Formats:
 *   generic — {source:'floodgate', version:1, ...notification}
 *   slack   — {text, blocks:[header, section, fields, reasons, context]} (incoming webhook)
 *   teams   — {type:'message', attachments:[{contentType:'application/vnd.microsoft.card.adaptive',
 *              content: AdaptiveCard 1.4}]}: what Teams Workflows (Power Automate)
 *              webhooks accept; the legacy Office 365 connector MessageCard is retired.
 *
 * Secrets and target URLs (Slack/Teams URLs are credentials themselves) stay
 * inside the notifier: entries, records and logs name the target only.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Severity } from '../detect/finding.js';
import type { WebhookFormat } from './config.js';
import { readBounded } from './http.js';
import type { ActionLog, ActionRecord } from './types.js';

export interface Notification {
  /** What happened, e.g. 'lock', 'hold', 'decision'. */
  event: string;
  ts: number;
  /** One line for humans. */
  summary: string;
  account?: string;
  severity?: Severity;
  dryRun?: boolean;
  reasons?: readonly string[];
  /** The action record this notification is about. */
  action?: ActionRecord;
  /** The policy's decision, passed through as is (generic format). */
  decision?: unknown;
}

export interface WebhookTarget {
  name: string;
  url: string;
  format: WebhookFormat;
  /** HMAC secret; without one no signature headers are sent. */
  secret?: string;
}

export type OutboxState = 'pending' | 'delivered' | 'failed';

export interface OutboxEntry {
  id: string;
  /** Target name (not its URL). */
  target: string;
  format: WebhookFormat;
  /** The exact bytes POSTed, rendered once. */
  body: string;
  account?: string;
  event: string;
  createdAt: number;
  updatedAt: number;
  state: OutboxState;
  /** Attempts so far, over every delivery run. */
  attempts: number;
  /** For `failed`: whether retryPending() will try again. */
  retryable: boolean;
  lastStatus?: number;
  lastError?: string;
  deliveredAt?: number;
}

/** Where entries live. Methods may be sync or async; the SQLite one is meant to be durable. */
export interface WebhookOutbox {
  /** Inserts or replaces the entry with this id. */
  put(entry: OutboxEntry): void | Promise<void>;
  get(id: string): OutboxEntry | undefined | Promise<OutboxEntry | undefined>;
  /** Entries in the given states, oldest first. */
  list(states: readonly OutboxState[], limit?: number): OutboxEntry[] | Promise<OutboxEntry[]>;
}

/** In-memory outbox: loses everything on restart, keeps at most `maxDelivered` delivered entries. */
export class MemoryOutbox implements WebhookOutbox {
  private readonly entries = new Map<string, OutboxEntry>();
  constructor(private readonly maxDelivered = 1000) {}

  put(entry: OutboxEntry): void {
    // Map.set keeps an existing key's place, so iteration stays oldest first.
    this.entries.set(entry.id, { ...entry });
    if (entry.state === 'delivered') this.prune();
  }
  get(id: string): OutboxEntry | undefined {
    const e = this.entries.get(id);
    return e ? { ...e } : undefined;
  }
  list(states: readonly OutboxState[], limit = Infinity): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    for (const e of this.entries.values()) {
      if (out.length >= limit) break;
      if (states.includes(e.state)) out.push({ ...e });
    }
    return out;
  }
  private prune(): void {
    let delivered = 0;
    for (const e of this.entries.values()) if (e.state === 'delivered') delivered++;
    for (const [id, e] of this.entries) {
      if (delivered <= this.maxDelivered) break;
      if (e.state === 'delivered') {
        this.entries.delete(id);
        delivered--;
      }
    }
  }
}

// ---------------------------------------------------------------- signing

export function sign(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Receiver side: constant-time check of X-Floodgate-Signature, and optionally of the timestamp's age. */
export function verifySignature(secret: string, timestamp: string, body: string, header: string, opts: { nowSeconds?: number; toleranceSeconds?: number } = {}): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  if (opts.nowSeconds !== undefined && Math.abs(opts.nowSeconds - Number(timestamp)) > (opts.toleranceSeconds ?? 300)) return false;
  const want = Buffer.from(sign(secret, timestamp, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}

// ---------------------------------------------------------------- formats

function title(n: Notification): string {
  return `floodgate: ${n.event}${n.account ? ` ${n.account}` : ''}${n.dryRun ? ' (dry run)' : ''}`;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Slack mrkdwn needs &, <, > escaped (they start entities and links). */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function facts(n: Notification): Array<[string, string]> {
  const f: Array<[string, string]> = [];
  if (n.account) f.push(['Account', n.account]);
  if (n.severity) f.push(['Severity', n.severity]);
  if (n.action) f.push(['Action', `${n.action.action} ${n.action.ok ? 'ok' : 'FAILED'}${n.action.dryRun ? ' (dry run)' : ''} by ${n.action.by}`]);
  f.push(['Time', new Date(n.ts).toISOString()]);
  return f;
}

export function renderGeneric(n: Notification): unknown {
  return { source: 'floodgate', version: 1, ...n };
}

export function renderSlack(n: Notification): unknown {
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: clip(title(n), 150) } },
    { type: 'section', text: { type: 'mrkdwn', text: clip(slackEscape(n.summary), 3000) } },
    { type: 'section', fields: facts(n).map(([k, v]) => ({ type: 'mrkdwn', text: clip(`*${k}*\n${slackEscape(v)}`, 2000) })) },
  ];
  if (n.reasons?.length) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(`*Why*\n${n.reasons.map((r) => `• ${slackEscape(r)}`).join('\n')}`, 3000) } });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: clip(`floodgate · ${n.event}${n.action ? ` · record ${n.action.id}` : ''}`, 300) }] });
  return { text: clip(`${title(n)}: ${slackEscape(n.summary)}`, 3000), blocks };
}

export function renderTeams(n: Notification): unknown {
  const body: unknown[] = [
    { type: 'TextBlock', size: 'Medium', weight: 'Bolder', text: title(n), wrap: true },
    { type: 'TextBlock', text: n.summary, wrap: true },
    { type: 'FactSet', facts: facts(n).map(([title, value]) => ({ title, value })) },
  ];
  if (n.reasons?.length) body.push({ type: 'TextBlock', text: n.reasons.map((r) => `- ${r}`).join('\n'), wrap: true });
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: { $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4', body },
      },
    ],
  };
}

export function renderBody(format: WebhookFormat, n: Notification): string {
  const doc = format === 'slack' ? renderSlack(n) : format === 'teams' ? renderTeams(n) : renderGeneric(n);
  return JSON.stringify(doc);
}

// ---------------------------------------------------------------- delivery

export interface WebhookNotifierOptions {
  targets: readonly WebhookTarget[];
  outbox: WebhookOutbox;
  fetch?: typeof fetch;
  timeoutMs?: number;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Injected so tests do not wait. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** In [0, 1); jitter source. */
  random?: () => number;
  newId?: () => string;
  log?: ActionLog;
}

type AttemptResult = { ok: true; status: number } | { ok: false; retryable: boolean; status?: number; error: string; retryAfterMs?: number };

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function retryAfterMs(h: string | null, now: number): number | undefined {
  if (!h) return undefined;
  if (/^\d{1,6}$/.test(h.trim())) return Number(h.trim()) * 1000;
  const t = Date.parse(h);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class WebhookNotifier {
  private readonly targets: Map<string, WebhookTarget>;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly newId: () => string;
  private readonly log: ActionLog;
  private readonly inFlight = new Set<string>();
  readonly outbox: WebhookOutbox;

  constructor(o: WebhookNotifierOptions) {
    this.targets = new Map(o.targets.map((t) => [t.name, { ...t }]));
    this.outbox = o.outbox;
    this.fetch = o.fetch ?? globalThis.fetch;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.maxAttempts = o.maxAttempts ?? 5;
    this.baseDelayMs = o.baseDelayMs ?? 1_000;
    this.maxDelayMs = o.maxDelayMs ?? 60_000;
    this.sleep = o.sleep ?? defaultSleep;
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.newId = o.newId ?? randomUUID;
    this.log = o.log ?? (() => {});
  }

  get targetNames(): string[] {
    return [...this.targets.keys()];
  }

  /** Stores one pending entry per target; nothing is sent yet. */
  async enqueue(n: Notification): Promise<OutboxEntry[]> {
    const out: OutboxEntry[] = [];
    for (const t of this.targets.values()) {
      const ts = this.now();
      const e: OutboxEntry = {
        id: this.newId(),
        target: t.name,
        format: t.format,
        body: renderBody(t.format, n),
        ...(n.account ? { account: n.account } : {}),
        event: n.event,
        createdAt: ts,
        updatedAt: ts,
        state: 'pending',
        attempts: 0,
        retryable: true,
      };
      await this.outbox.put(e);
      out.push(e);
    }
    return out;
  }

  /** Enqueues, then delivers to every target in parallel. */
  async send(n: Notification): Promise<OutboxEntry[]> {
    const entries = await this.enqueue(n);
    return Promise.all(entries.map((e) => this.deliver(e.id)));
  }

  /** Delivers every pending or retryable failed entry (e.g. at startup, or on a timer). */
  async retryPending(limit = 1000): Promise<OutboxEntry[]> {
    const all = await this.outbox.list(['pending', 'failed'], limit);
    const due = all.filter((e) => e.state === 'pending' || e.retryable);
    const out: OutboxEntry[] = [];
    for (const e of due) out.push(await this.deliver(e.id));
    return out;
  }

  /** Runs up to maxAttempts attempts for one entry and stores the outcome. Concurrent calls for the same entry do not double-send. */
  async deliver(id: string): Promise<OutboxEntry> {
    const stored = await this.outbox.get(id);
    if (!stored) throw new Error(`no outbox entry ${id}`);
    if (stored.state === 'delivered' || this.inFlight.has(id)) return stored;
    let e: OutboxEntry = stored;
    const target = this.targets.get(e.target);
    if (!target) {
      e = { ...e, state: 'failed', retryable: false, lastError: `target ${e.target} is no longer configured`, updatedAt: this.now() };
      await this.outbox.put(e);
      return e;
    }
    this.inFlight.add(id);
    try {
      for (let k = 1; k <= this.maxAttempts; k++) {
        const r = await this.attempt(target, e);
        e = { ...e, attempts: e.attempts + 1, updatedAt: this.now() };
        if (r.ok) {
          e = { ...e, state: 'delivered', retryable: false, lastStatus: r.status, deliveredAt: e.updatedAt };
          delete e.lastError;
          await this.outbox.put(e);
          this.log('debug', 'webhook delivered', { target: target.name, attempts: e.attempts });
          return e;
        }
        e = { ...e, lastError: r.error, ...(r.status !== undefined ? { lastStatus: r.status } : {}) };
        this.log('warn', 'webhook attempt failed', { target: target.name, attempt: e.attempts, error: r.error });
        if (!r.retryable) {
          e = { ...e, state: 'failed', retryable: false };
          await this.outbox.put(e);
          return e;
        }
        if (k === this.maxAttempts) break;
        await this.outbox.put(e);
        await this.sleep(this.backoff(k, r.retryAfterMs));
      }
      e = { ...e, state: 'failed', retryable: true };
      await this.outbox.put(e);
      return e;
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** Delay before attempt k+1: base·2^(k−1), capped, times a jitter in [0.5, 1); at least a Retry-After (also capped). */
  backoff(k: number, retryAfter?: number): number {
    const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (k - 1));
    const jittered = Math.round(exp * (0.5 + this.random() / 2));
    return Math.min(this.maxDelayMs, Math.max(jittered, retryAfter ?? 0));
  }

  private async attempt(t: WebhookTarget, e: OutboxEntry): Promise<AttemptResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'floodgate-webhook/1',
      'x-floodgate-delivery': e.id,
    };
    if (t.secret !== undefined) {
      const ts = String(Math.floor(this.now() / 1000));
      headers['x-floodgate-timestamp'] = ts;
      headers['x-floodgate-signature'] = sign(t.secret, ts, e.body);
    }
    let res: Response;
    try {
      res = await this.fetch(t.url, { method: 'POST', headers, body: e.body, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
      return { ok: false, retryable: true, error: timedOut ? `timed out after ${this.timeoutMs} ms` : `network error: ${cause}` };
    }
    // Drain a little of the body so the connection can be reused; ignore what it says.
    await readBounded(res, 64 * 1024).catch(() => '');
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
    const ra = retryAfterMs(res.headers.get('retry-after'), this.now());
    return {
      ok: false,
      retryable,
      status: res.status,
      error: res.status >= 300 && res.status < 400 ? `HTTP ${res.status} redirect (not followed: configure the final URL)` : `HTTP ${res.status}`,
      ...(ra !== undefined ? { retryAfterMs: ra } : {}),
    };
  }
}
