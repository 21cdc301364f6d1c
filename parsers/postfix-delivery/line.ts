/**
 * The Postfix delivery status line, shared by the delivery agents and qmgr:
 *
 *   QID: to=<x>, [orig_to=<y>, ]relay=R, [conn_use=N, ]delay=D, [delays=a/b/c/d, ][dsn=X.Y.Z, ]status=S (reply)
 *
 * Scanned with indexOf/startsWith only: this is one of the most common lines.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import { baseOf } from '../util.js';

type Status = Extract<Event, { kind: 'delivery' }>['status'];

function statusOf(s: string): Status | undefined {
  switch (s) {
    case 'sent':
    case 'deferred':
    case 'bounced':
    case 'expired':
    case 'undeliverable':
    case 'deliverable':
    case 'softbounce':
      return s;
    default:
      return undefined;
  }
}

/**
 * End of an `<...>` value that starts at `start`: the first `>` followed by
 * one of `terms` (or by the end of the line). Addresses holding `>` survive
 * as long as it is not followed by the next field's key.
 */
export function angleEnd(msg: string, start: number, terms: readonly string[]): number {
  let gt = msg.indexOf('>', start);
  while (gt >= 0) {
    if (gt + 1 === msg.length) return gt;
    for (const t of terms) if (msg.startsWith(t, gt + 1)) return gt;
    gt = msg.indexOf('>', gt + 1);
  }
  return -1;
}

const AFTER_TO = [', orig_to=<', ', relay='] as const;
const AFTER_ORIG = [', relay='] as const;

function isIpLike(s: string): boolean {
  if (s.length === 0) return false;
  let colon = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) colon = true;
    else if (!((c >= 48 && c <= 57) || c === 46 || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false;
  }
  // Hex-only words without a colon or dot (e.g. `[cafe]`) are not addresses.
  return colon || s.indexOf('.') > 0;
}

/** IP of a `host[ip]` / `host[ip]:port` relay, or undefined (`none`, `local`, `host[/path/to/socket]`). */
export function relayIpOf(relay: string): string | undefined {
  const open = relay.indexOf('[');
  if (open < 0) return undefined;
  const close = relay.indexOf(']', open + 1);
  if (close < 0) return undefined;
  let ip = relay.slice(open + 1, close);
  if (ip.startsWith('ipv6:') || ip.startsWith('IPv6:')) ip = ip.slice(5);
  return isIpLike(ip) ? ip : undefined;
}

function isIdChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95 || c === 46;
}

function tokenAt(s: string, start: number): string | undefined {
  let end = start;
  while (end < s.length && isIdChar(s.charCodeAt(end))) end++;
  while (end > start && s.charCodeAt(end - 1) === 46) end--; // trailing dots are punctuation
  return end > start ? s.slice(start, end) : undefined;
}

/**
 * The queue id the next hop gave the message, from a delivery reply:
 * the LAST `queued as X` (Zimbra/amavis replies quote the re-injection
 * reply: `... from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as X`),
 * local(8)'s `forwarded as X`, or Exim's `250 OK id=X`.
 */
export function queuedAsOf(reply: string): string | undefined {
  const a = reply.lastIndexOf('queued as ');
  const b = reply.lastIndexOf('Queued as ');
  const k = a > b ? a : b;
  if (k >= 0) return tokenAt(reply, k + 10);
  if (reply.startsWith('forwarded as ')) return tokenAt(reply, 13);
  if (reply.startsWith('250 OK id=')) return tokenAt(reply, 10);
  return undefined;
}

/**
 * Parse a delivery status line whose `to=<` starts at `p` and append a
 * `delivery` event. Returns false when the line does not have the shape.
 */
export function parseDeliveryLine(
  rec: LogRecord,
  msg: string,
  queueId: string,
  p: number,
  agent: string,
  out: Event[],
): boolean {
  const n = msg.length;
  const toStart = p + 4;
  const toEnd = angleEnd(msg, toStart, AFTER_TO);
  if (toEnd < 0) return false;
  const to = msg.slice(toStart, toEnd);
  let pos = toEnd + 3; // past '>, '
  let origTo: string | undefined;
  if (msg.startsWith('orig_to=<', pos)) {
    const oStart = pos + 9;
    const oEnd = angleEnd(msg, oStart, AFTER_ORIG);
    if (oEnd < 0) return false;
    origTo = msg.slice(oStart, oEnd);
    pos = oEnd + 3;
  }
  if (!msg.startsWith('relay=', pos)) return false;
  const rStart = pos + 6;
  const rEnd = msg.indexOf(', ', rStart);
  if (rEnd < 0) return false;
  const relay = msg.slice(rStart, rEnd);
  pos = rEnd + 2;

  let delay: number | undefined;
  let delays: string | undefined;
  let dsn: string | undefined;
  let connUse: number | undefined;
  while (pos < n && !msg.startsWith('status=', pos)) {
    let end = msg.indexOf(', ', pos);
    if (end < 0) return false;
    if (msg.startsWith('delay=', pos)) {
      const v = Number(msg.slice(pos + 6, end));
      if (Number.isFinite(v)) delay = v;
    } else if (msg.startsWith('delays=', pos)) {
      delays = msg.slice(pos + 7, end);
    } else if (msg.startsWith('dsn=', pos)) {
      dsn = msg.slice(pos + 4, end);
    } else if (msg.startsWith('conn_use=', pos)) {
      const v = Number(msg.slice(pos + 9, end));
      if (Number.isInteger(v)) connUse = v;
    } else if (msg.charCodeAt(pos) === 32) {
      end = pos - 1; // tolerate a doubled space
    }
    pos = end + 2;
  }
  if (pos >= n) return false;
  const sStart = pos + 7;
  let sEnd = sStart;
  while (sEnd < n) {
    const c = msg.charCodeAt(sEnd);
    if (c === 32 || c === 44) break;
    sEnd++;
  }
  const status = statusOf(msg.slice(sStart, sEnd));
  if (status === undefined) return false;

  let reply: string;
  if (msg.charCodeAt(sEnd) === 32 && msg.charCodeAt(sEnd + 1) === 40 /* ( */) {
    const close = msg.lastIndexOf(')');
    reply = close > sEnd + 1 ? msg.slice(sEnd + 2, close) : msg.slice(sEnd + 2);
  } else {
    let i = sEnd;
    while (i < n && (msg.charCodeAt(i) === 32 || msg.charCodeAt(i) === 44)) i++;
    reply = msg.slice(i);
  }

  const e: Extract<Event, { kind: 'delivery' }> = {
    kind: 'delivery',
    ...baseOf(rec),
    queueId,
    agent,
    to,
    relay,
    status,
    reply,
  };
  if (origTo !== undefined) e.origTo = origTo;
  const relayIp = relayIpOf(relay);
  if (relayIp !== undefined) e.relayIp = relayIp;
  if (delay !== undefined) e.delay = delay;
  if (delays !== undefined) e.delays = delays;
  if (dsn !== undefined) e.dsn = dsn;
  if (connUse !== undefined) e.connUse = connUse;
  const queuedAs = queuedAsOf(reply);
  if (queuedAs !== undefined) e.queuedAs = queuedAs;
  out.push(e);
  return true;
}

/** `warning:`, `fatal:`, `panic:`, `error:` diagnostics (any daemon). */
export function isDiagnostic(msg: string, p = 0): boolean {
  switch (msg.charCodeAt(p)) {
    case 119: // w
      return msg.startsWith('warning: ', p);
    case 102: // f
      return msg.startsWith('fatal: ', p);
    case 112: // p
      return msg.startsWith('panic: ', p);
    case 101: // e
      return msg.startsWith('error: ', p);
    default:
      return false;
  }
}
