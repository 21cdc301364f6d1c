/**
 * Postfix access-decision lines (smtpd_check.c `log_whatsup`), shared by the
 * smtpd and postscreen parsers:
 *
 *   QID|NOQUEUE: ACTION: STAGE from host[ip][:port]: REPLY; from=<a> to=<b> proto=P helo=<h>
 *
 * postscreen writes the same with `, ` between the trailing fields. Every
 * field is optional; REPLY may itself hold `;` (RBL replies, SPF URLs), so it
 * ends at the first `; ` that is followed by one of the trailing keys.
 * Nothing here interprets the addresses: they are sliced out verbatim.
 */
import type { Event, EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import { srcOf } from '../util.js';

type Reject = EventOf<'smtp.reject'>;
type Category = Reject['category'];
type Action = Reject['action'];

/** The action words Postfix logs before the stage, mapped to the event's action. */
export function rejectAction(word: string): Action | undefined {
  switch (word) {
    case 'reject':
    case 'milter-reject':
    case 'proxy-reject':
      return 'reject';
    case 'discard':
    case 'milter-discard':
      return 'discard';
    case 'hold':
    case 'milter-hold':
      return 'hold';
    case 'filter':
      return 'filter';
    case 'redirect':
      return 'redirect';
    case 'warn':
    case 'reject_warning':
      return 'warn';
    default:
      return undefined;
  }
}

function has(s: string, needle: string): boolean {
  return s.indexOf(needle) >= 0;
}

/**
 * Classify a reply text. Order matters: the most specific cause wins
 * (an SPF reject is phrased as "Recipient address rejected: ... SPF fail";
 * a greylist as "Recipient address rejected: Greylisted").
 */
export function classifyReply(reply: string, milter: boolean): { category: Category; list?: string } {
  if (milter) return { category: 'milter' };
  if (has(reply, 'Relay access denied')) return { category: 'relay-denied' };
  const b = reply.indexOf('blocked using ');
  if (b >= 0) {
    const start = b + 14;
    let end = start;
    while (end < reply.length) {
      const c = reply.charCodeAt(end);
      if (c === 59 /* ; */ || c === 44 /* , */ || c === 32 || c === 58 /* : */) break;
      end++;
    }
    return end > start ? { category: 'rbl', list: reply.slice(start, end) } : { category: 'rbl' };
  }
  if (has(reply, 'SPF') || has(reply, 'openspf') || has(reply, 'policyd-spf')) return { category: 'spf' };
  if (has(reply, 'reylist')) return { category: 'policy' };
  if (
    has(reply, 'too many') ||
    has(reply, 'Too many') ||
    has(reply, 'rate limit') ||
    has(reply, 'Rate limit') ||
    has(reply, 'too fast')
  )
    return { category: 'rate' };
  if (has(reply, 'size exceeds') || has(reply, 'Message too large') || has(reply, 'message too large'))
    return { category: 'size' };
  if (
    has(reply, 'pipelining') ||
    has(reply, 'Data command rejected') ||
    has(reply, 'Protocol error') ||
    has(reply, 'protocol error') ||
    has(reply, 'non-SMTP command') ||
    has(reply, 'bare <LF>')
  )
    return { category: 'protocol' };
  if (has(reply, 'olicy')) return { category: 'policy' };
  if (has(reply, 'Helo command ')) return { category: 'helo' };
  if (has(reply, 'Client host ') || has(reply, 'cannot find your') || has(reply, 'Client certificate'))
    return { category: 'client' };
  if (has(reply, 'Sender address ')) return { category: 'sender' };
  if (has(reply, 'Recipient address ') || has(reply, 'User unknown') || has(reply, 'Recipient rejected'))
    return { category: 'recipient' };
  return { category: 'other' };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** End of a 3-digit SMTP code at `i` followed by a space, or -1. */
function codeEnd(s: string, i: number): number {
  if (i + 3 < s.length && isDigit(s.charCodeAt(i)) && isDigit(s.charCodeAt(i + 1)) && isDigit(s.charCodeAt(i + 2))) {
    const c = s.charCodeAt(i + 3);
    if (c === 32) return i + 3;
  }
  return -1;
}

/** End of an enhanced status code `d.ddd.ddd` at `i` followed by a space or end, or -1. */
function dsnEnd(s: string, i: number): number {
  const n = s.length;
  if (i >= n || !isDigit(s.charCodeAt(i)) || s.charCodeAt(i + 1) !== 46) return -1;
  let j = i + 2;
  let d = 0;
  while (j < n && isDigit(s.charCodeAt(j)) && d < 3) {
    j++;
    d++;
  }
  if (d === 0 || s.charCodeAt(j) !== 46) return -1;
  j++;
  d = 0;
  while (j < n && isDigit(s.charCodeAt(j)) && d < 3) {
    j++;
    d++;
  }
  if (d === 0) return -1;
  if (j < n && s.charCodeAt(j) !== 32) return -1;
  return j;
}

/** Trailing keys that end the reply text. */
function isTailKey(s: string, i: number): boolean {
  return s.startsWith('from=<', i) || s.startsWith('to=<', i) || s.startsWith('proto=', i) || s.startsWith('helo=<', i);
}

/**
 * End of an `<...>` value opened at `start`: the first `>` followed by ` `,
 * `,` or end. Postfix logs addresses in external form, so a quoted local
 * part (`"a> b"@x`) is skipped; if quotes do not balance, the first such `>`
 * regardless of quotes.
 */
function angleEnd(s: string, start: number): number {
  const n = s.length;
  let inQuote = false;
  for (let i = start; i < n; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inQuote = false;
    } else if (c === 34) {
      inQuote = true;
    } else if (c === 62 /* > */) {
      const next = s.charCodeAt(i + 1);
      if (i + 1 >= n || next === 44 || next === 32) return i;
    }
  }
  let end = s.indexOf('>', start);
  while (end >= 0) {
    const next = s.charCodeAt(end + 1);
    if (end + 1 >= n || next === 44 || next === 32) return end;
    end = s.indexOf('>', end + 1);
  }
  return n;
}

/**
 * Start of the trailing `from=<...` / `to=<...` / `proto=` / `helo=<...` part:
 * just past the first `; ` followed by one of those keys that is not inside
 * a quoted string (a hostile quoted address in the reply may hold `; from=<`).
 * Falls back to ignoring quotes when they do not balance. -1 when absent.
 */
function tailStart(s: string, from: number): number {
  const n = s.length;
  let inQuote = false;
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inQuote = false;
    } else if (c === 34) {
      inQuote = true;
    } else if (c === 59 /* ; */ && s.charCodeAt(i + 1) === 32 && isTailKey(s, i + 2)) {
      return i + 2;
    }
  }
  let k = s.indexOf('; ', from);
  while (k >= 0) {
    if (isTailKey(s, k + 2)) return k + 2;
    k = s.indexOf('; ', k + 1);
  }
  return -1;
}

function skipSep(s: string, i: number): number {
  if (s.charCodeAt(i) === 44) i++;
  if (s.charCodeAt(i) === 32) i++;
  return i;
}

export interface ReplyParts {
  code?: number;
  dsn?: string;
  reason: string;
}

/** Split `550 5.7.1 text` into code, dsn and the rest; either may be absent. */
export function splitReply(reply: string): ReplyParts {
  const out: ReplyParts = { reason: reply };
  let i = 0;
  const ce = codeEnd(reply, 0);
  if (ce > 0) {
    out.code = (reply.charCodeAt(0) - 48) * 100 + (reply.charCodeAt(1) - 48) * 10 + (reply.charCodeAt(2) - 48);
    i = ce + 1;
  }
  const de = dsnEnd(reply, i);
  if (de > 0) {
    out.dsn = reply.slice(i, de);
    i = de + 1;
  }
  if (i > 0) out.reason = reply.slice(Math.min(i, reply.length));
  return out;
}

/**
 * Parse `ACTION: STAGE from host[ip][:port]: REPLY[; tail]` starting at `pos`
 * and push one smtp.reject. Returns false (pushing nothing) when the shape
 * does not fit.
 */
export function parseRejectLine(
  rec: LogRecord,
  msg: string,
  pos: number,
  queueId: string | undefined,
  service: string,
  out: Event[],
): boolean {
  const colon = msg.indexOf(': ', pos);
  if (colon < 0) return false;
  const word = msg.slice(pos, colon);
  const action = rejectAction(word);
  if (action === undefined) return false;
  const milter = word.startsWith('milter-');
  const stageStart = colon + 2;

  let stage: string;
  let replyStart: number;
  let ip: string | undefined;
  let clientHost: string | undefined;
  const fromAt = msg.indexOf(' from ', stageStart);
  const open = fromAt < 0 ? -1 : msg.indexOf('[', fromAt + 6);
  const stageColon = msg.indexOf(': ', stageStart);
  if (fromAt > 0 && open > 0 && (stageColon < 0 || fromAt < stageColon)) {
    // STAGE from host[ip][:port]: REPLY
    const close = msg.indexOf(']', open + 1);
    if (close < 0) return false;
    stage = msg.slice(stageStart, fromAt);
    clientHost = msg.slice(fromAt + 6, open);
    ip = msg.slice(open + 1, close);
    if (ip.startsWith('ipv6:') || ip.startsWith('IPv6:')) ip = ip.slice(5);
    let j = close + 1;
    if (msg.charCodeAt(j) === 58 /* : */ && isDigit(msg.charCodeAt(j + 1))) {
      j++;
      while (j < msg.length && isDigit(msg.charCodeAt(j))) j++;
    }
    if (msg.charCodeAt(j) !== 58 /* : */) return false;
    replyStart = j + 1;
    if (msg.charCodeAt(replyStart) === 32) replyStart++;
  } else if (stageColon > 0) {
    // proxy-reject: END-OF-MESSAGE: REPLY (no client on the line)
    stage = msg.slice(stageStart, stageColon);
    replyStart = stageColon + 2;
  } else {
    return false;
  }

  // The reply ends at the first "; " followed by a trailing key.
  const tail = tailStart(msg, replyStart);
  let replyEnd = tail >= 0 ? tail - 2 : msg.length;
  if (tail < 0 && msg.charCodeAt(replyEnd - 1) === 59 /* ; */) replyEnd--;
  const reply = msg.slice(replyStart, replyEnd);
  const parts = splitReply(reply);
  const cls = classifyReply(parts.reason, milter);

  const ev: Reject = { kind: 'smtp.reject', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), service, action, stage, category: cls.category, reason: parts.reason };
  if (queueId !== undefined) ev.queueId = queueId;
  if (ip !== undefined) ev.ip = ip;
  if (clientHost) ev.clientHost = clientHost;
  if (parts.code !== undefined) ev.code = parts.code;
  if (parts.dsn !== undefined) ev.dsn = parts.dsn;
  if (cls.list !== undefined) ev.list = cls.list;

  if (tail >= 0) {
    let p = tail;
    if (msg.startsWith('from=<', p)) {
      const e = angleEnd(msg, p + 6);
      ev.from = msg.slice(p + 6, e);
      p = skipSep(msg, e + 1);
    }
    if (msg.startsWith('to=<', p)) {
      const e = angleEnd(msg, p + 4);
      ev.to = msg.slice(p + 4, e);
      p = skipSep(msg, e + 1);
    }
    if (msg.startsWith('proto=', p)) {
      let e = p + 6;
      while (e < msg.length) {
        const c = msg.charCodeAt(e);
        if (c === 32 || c === 44) break;
        e++;
      }
      ev.proto = msg.slice(p + 6, e);
      p = skipSep(msg, e);
    }
    if (msg.startsWith('helo=<', p)) {
      // helo is the last field: it runs to the line's final `>`.
      const last = msg.charCodeAt(msg.length - 1) === 62 ? msg.length - 1 : msg.length;
      ev.helo = msg.slice(p + 6, Math.max(p + 6, last));
    }
  }
  out.push(ev);
  return true;
}
