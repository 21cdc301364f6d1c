/**
 * The Postfix delivery status line, shared by the delivery agents and qmgr:
 *
 *   QID: to=<x>, [orig_to=<y>, ]relay=R, [conn_use=N, ]delay=D, [delays=a/b/c/d, ][dsn=X.Y.Z, ]status=S (reply)
 *
 * Scanned with indexOf/startsWith only: this is one of the most common lines.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';

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

/** End of the `to=<...>` value: the `>` before `, orig_to=<` or `, relay=`. */
function toEnd(msg: string, start: number): number {
  let gt = msg.indexOf('>, ', start);
  while (gt >= 0) {
    if (msg.startsWith('relay=', gt + 3) || msg.startsWith('orig_to=<', gt + 3)) return gt;
    gt = msg.indexOf('>, ', gt + 1);
  }
  return -1;
}

/** End of the `orig_to=<...>` value: the `>` before `, relay=`. */
function origEnd(msg: string, start: number): number {
  return msg.indexOf('>, relay=', start);
}

/**
 * Decimal number (`12`, `0.71`) in msg[start, end); -1 when it is not one.
 * No slice, no Number(): this runs twice per delivery line.
 */
function decimalAt(msg: string, start: number, end: number): number {
  let v = 0;
  let scale = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = msg.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      if (scale > 0) scale *= 10;
      digits++;
    } else if (c === 46 && scale === 0) {
      scale = 1;
    } else {
      return -1;
    }
  }
  if (digits === 0) return -1;
  return scale > 1 ? v / scale : v;
}

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
  // indexOf forwards (V8's lastIndexOf is slow) to the last `[qQ]ueued as `.
  let k = -1;
  let i = reply.indexOf('ueued as ');
  while (i > 0) {
    const c = reply.charCodeAt(i - 1);
    if (c === 113 || c === 81) k = i - 1;
    i = reply.indexOf('ueued as ', i + 9);
  }
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
  const tEnd = toEnd(msg, toStart);
  if (tEnd < 0) return false;
  const to = msg.slice(toStart, tEnd);
  let pos = tEnd + 3; // past '>, '
  let origTo: string | undefined;
  if (msg.startsWith('orig_to=<', pos)) {
    const oStart = pos + 9;
    const oEnd = origEnd(msg, oStart);
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
  // The fields between relay= and status=, dispatched on their first letters.
  for (;;) {
    if (pos >= n) return false;
    const c0 = msg.charCodeAt(pos);
    if (c0 === 115 /* s */ && msg.startsWith('status=', pos)) break;
    if (c0 === 32) {
      pos++; // tolerate a doubled space
      continue;
    }
    const end = msg.indexOf(', ', pos);
    if (end < 0) return false;
    if (c0 === 100 /* d */) {
      const c5 = msg.charCodeAt(pos + 5);
      if (c5 === 61 /* = */ && msg.startsWith('delay', pos)) {
        const v = decimalAt(msg, pos + 6, end);
        if (v >= 0) delay = v;
      } else if (c5 === 115 /* s */ && msg.startsWith('delays=', pos)) {
        delays = msg.slice(pos + 7, end);
      } else if (msg.startsWith('dsn=', pos)) {
        dsn = msg.slice(pos + 4, end);
      }
    } else if (c0 === 99 /* c */ && msg.startsWith('conn_use=', pos)) {
      const v = decimalAt(msg, pos + 9, end);
      if (v >= 0 && Number.isInteger(v)) connUse = v;
    }
    pos = end + 2;
  }
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
    let close = n - 1;
    while (close > sEnd && msg.charCodeAt(close) === 32) close--;
    if (msg.charCodeAt(close) !== 41 /* ) */) close = msg.lastIndexOf(')');
    reply = close > sEnd + 1 ? msg.slice(sEnd + 2, close) : msg.slice(sEnd + 2);
  } else {
    let i = sEnd;
    while (i < n && (msg.charCodeAt(i) === 32 || msg.charCodeAt(i) === 44)) i++;
    reply = msg.slice(i);
  }

  const e: Extract<Event, { kind: 'delivery' }> = {
    kind: 'delivery',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: { file: rec.file, offset: rec.offset },
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
  // Only an accepted message has a next-hop queue id; a rejection's text is the remote's to write.
  if (status === 'sent') {
    const queuedAs = queuedAsOf(reply);
    if (queuedAs !== undefined) e.queuedAs = queuedAs;
  }
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
