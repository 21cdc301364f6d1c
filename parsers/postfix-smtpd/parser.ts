/**
 * postfix/smtpd (every instance and service: `postfix/submission/smtpd`,
 * `postfix-out/smtpd`, Zimbra's `postfix/amavisd/smtpd`, ...).
 *
 * Events:
 *   connect from host[ip]                                  → smtp.connect
 *   disconnect from host[ip] ehlo=1 auth=0/1 commands=1/2  → smtp.disconnect
 *   QID: client=host[ip][, orig_queue_id=Q, orig_client=h[ip]][, sasl_method=M, sasl_username=U][, sasl_sender=S]
 *                                                          → smtp.client
 *   warning: host[ip]: SASL M authentication failed: R[, sasl_username=U]
 *                                                          → auth (failure)
 *   QID|NOQUEUE: reject|discard|hold|filter|redirect|warn|milter-*|proxy-reject: ...
 *                                                          → smtp.reject
 *   warning: ... rate limit exceeded: N from host[ip] for service S
 *                                                          → smtp.reject (rate)
 *   lost connection|timeout|too many errors after CMD from host[ip]
 *                                                          → smtp.lost
 *   Anonymous|Trusted|Untrusted|Verified TLS connection established from host[ip]: P with cipher C ...
 *                                                          → smtp.tls
 * Routine diagnostics (warnings, TLS chatter, pipelining notes) are
 * recognised without an event. The common lines are dispatched on their
 * first character and sliced with indexOf: no regular expressions.
 */
import type { Event, EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { leadingQueueId, postfixService, srcOf } from '../util.js';
import { parseRejectLine } from './reject.js';

interface Client {
  clientHost: string;
  ip: string;
  /** Index just past `]` (and past `:port` when present). */
  end: number;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** `host[ip]` or `host[ip]:port` starting at `start`; the end index is returned too. */
function clientAt(s: string, start: number): Client | undefined {
  const open = s.indexOf('[', start);
  if (open < 0) return undefined;
  const close = s.indexOf(']', open + 1);
  if (close < 0) return undefined;
  let ip = s.slice(open + 1, close);
  if (ip.charCodeAt(0) === 105 /* i */ || ip.charCodeAt(0) === 73 /* I */) {
    if (ip.startsWith('ipv6:') || ip.startsWith('IPv6:')) ip = ip.slice(5);
  }
  let end = close + 1;
  if (s.charCodeAt(end) === 58 /* : */ && isDigit(s.charCodeAt(end + 1))) {
    end++;
    while (end < s.length && isDigit(s.charCodeAt(end))) end++;
  }
  return { clientHost: s.slice(start, open), ip, end };
}

function startsWithAt(s: string, prefix: string, at: number): boolean {
  return s.startsWith(prefix, at);
}

// --- connect / disconnect / client= -----------------------------------------

function onConnect(rec: LogRecord, msg: string, out: Event[]): boolean {
  const c = clientAt(msg, 13);
  if (c === undefined) return false;
  out.push({
    kind: 'smtp.connect',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: { file: rec.file, offset: rec.offset },
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
  });
  return true;
}

/** True when the command summary has `auth=N/M` with N < M; undefined when it has no auth. */
function authFailedOf(cmds: string): boolean | undefined {
  let k = cmds.indexOf('auth=');
  while (k > 0 && cmds.charCodeAt(k - 1) !== 32) k = cmds.indexOf('auth=', k + 1);
  if (k < 0) return undefined;
  let i = k + 5;
  let ok = 0;
  let digits = 0;
  while (i < cmds.length && isDigit(cmds.charCodeAt(i))) {
    ok = ok * 10 + (cmds.charCodeAt(i) - 48);
    i++;
    digits++;
  }
  if (digits === 0) return undefined;
  if (cmds.charCodeAt(i) !== 47 /* / */) return false;
  i++;
  let total = 0;
  digits = 0;
  while (i < cmds.length && isDigit(cmds.charCodeAt(i))) {
    total = total * 10 + (cmds.charCodeAt(i) - 48);
    i++;
    digits++;
  }
  return digits > 0 && ok < total;
}

function onDisconnect(rec: LogRecord, msg: string, out: Event[]): boolean {
  const c = clientAt(msg, 16);
  if (c === undefined) return false;
  const ev: EventOf<'smtp.disconnect'> = {
    kind: 'smtp.disconnect',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: { file: rec.file, offset: rec.offset },
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
  };
  if (c.end + 1 < msg.length && msg.charCodeAt(c.end) === 32) {
    const cmds = msg.slice(c.end + 1);
    ev.commands = cmds;
    const failed = authFailedOf(cmds);
    if (failed !== undefined) ev.authFailed = failed;
  }
  out.push(ev);
  return true;
}

/** Value after `key` (which includes `, ` and `=`) up to the next `, ` or end. */
function commaValue(msg: string, key: string, from: number): { value: string; end: number } | undefined {
  const k = msg.startsWith(key, from) ? from : msg.indexOf(key, from);
  if (k < 0) return undefined;
  const start = k + key.length;
  let end = msg.indexOf(', ', start);
  if (end < 0) end = msg.length;
  return { value: msg.slice(start, end), end };
}

/**
 * The optional `, key=value` fields after `client=host[ip]`, in Postfix's
 * order: orig_queue_id, orig_client, sasl_method, sasl_username, sasl_sender.
 * The first three cannot hold `, `; the username runs to `, sasl_sender=` (or
 * the end), and sasl_sender (client-chosen) runs to the end. Read in order
 * with startsWith; a field out of order is looked for with indexOf.
 */
function clientExtras(msg: string, from: number, ev: EventOf<'smtp.client'>): void {
  let p = from;
  if (startsWithAt(msg, ', orig_queue_id=', p)) {
    const v = commaValue(msg, ', orig_queue_id=', p)!;
    ev.origQueueId = v.value;
    p = v.end;
  }
  if (startsWithAt(msg, ', orig_client=', p)) {
    const o = clientAt(msg, p + 14);
    if (o !== undefined) {
      ev.origClientIp = o.ip;
      p = o.end;
    }
  }
  if (startsWithAt(msg, ', sasl_method=', p)) {
    const v = commaValue(msg, ', sasl_method=', p)!;
    ev.saslMethod = v.value;
    p = v.end;
  }
  if (startsWithAt(msg, ', sasl_username=', p)) {
    const start = p + 16;
    const ss = msg.indexOf(', sasl_sender=', start);
    ev.account = msg.slice(start, ss < 0 ? msg.length : ss);
    if (ss >= 0) ev.saslSender = msg.slice(ss + 14);
    return;
  }
  if (startsWithAt(msg, ', sasl_sender=', p)) {
    ev.saslSender = msg.slice(p + 14);
    return;
  }
  if (p >= msg.length) return;
  // An unexpected field in between: look the remaining ones up by name.
  if (ev.saslMethod === undefined) {
    const v = commaValue(msg, ', sasl_method=', p);
    if (v !== undefined) ev.saslMethod = v.value;
  }
  const su = msg.indexOf(', sasl_username=', p);
  const ss = msg.indexOf(', sasl_sender=', su < 0 ? p : su + 16);
  if (su >= 0) ev.account = msg.slice(su + 16, ss < 0 ? msg.length : ss);
  if (ss >= 0) ev.saslSender = msg.slice(ss + 14);
}

function onClient(rec: LogRecord, msg: string, queueId: string, at: number, out: Event[]): boolean {
  const c = clientAt(msg, at);
  if (c === undefined) return false;
  const ev: EventOf<'smtp.client'> = {
    kind: 'smtp.client',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: { file: rec.file, offset: rec.offset },
    queueId,
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
  };
  if (c.end < msg.length) clientExtras(msg, c.end, ev);
  out.push(ev);
  return true;
}

// --- lost / TLS ---------------------------------------------------------------

function onLost(
  rec: LogRecord,
  msg: string,
  at: number,
  reason: 'lost' | 'timeout' | 'too-many-errors',
  out: Event[],
): boolean {
  const from = msg.indexOf(' from ', at);
  if (from < 0) return false;
  const c = clientAt(msg, from + 6);
  if (c === undefined) return false;
  const ev: EventOf<'smtp.lost'> = {
    kind: 'smtp.lost',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
    reason,
  };
  if (from > at) ev.after = msg.slice(at, from);
  out.push(ev);
  return true;
}

const TLS_EST = 'TLS connection established from ';

/** `[Trust ]TLS connection established from host[ip]: PROTO with cipher CIPHER (...)`. */
function onTls(rec: LogRecord, msg: string, out: Event[]): boolean {
  const t = msg.indexOf(TLS_EST);
  if (t < 0) return false;
  const trust = t > 0 ? msg.slice(0, t - 1).toLowerCase() : undefined;
  const c = clientAt(msg, t + TLS_EST.length);
  if (c === undefined) return false;
  let p = c.end;
  if (!startsWithAt(msg, ': ', p)) return false;
  p += 2;
  let sp = msg.indexOf(' ', p);
  if (sp < 0) sp = msg.length;
  const tlsProtocol = msg.slice(p, sp);
  let cipher = '';
  if (startsWithAt(msg, ' with cipher ', sp)) {
    const cs = sp + 13;
    let ce = msg.indexOf(' ', cs);
    if (ce < 0) ce = msg.length;
    cipher = msg.slice(cs, ce);
  }
  const ev: EventOf<'smtp.tls'> = {
    kind: 'smtp.tls',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
    direction: 'in',
    tlsProtocol,
    cipher,
  };
  if (trust) ev.trust = trust;
  out.push(ev);
  return true;
}

// --- warnings -------------------------------------------------------------------

const SASL_FAILED = ' authentication failed';

/** `host[ip][:port]: SASL METHOD authentication failed: REASON[, sasl_username=U]` after `warning: `. */
function onSaslFailure(rec: LogRecord, msg: string, at: number, out: Event[]): boolean | undefined {
  const c = clientAt(msg, at);
  if (c === undefined || !startsWithAt(msg, ': SASL ', c.end)) return undefined;
  const ms = c.end + 7;
  const mf = msg.indexOf(SASL_FAILED, ms);
  if (mf < 0) return undefined;
  const method = msg.slice(ms, mf).toUpperCase();
  let r = mf + SASL_FAILED.length;
  if (msg.charCodeAt(r) === 58 /* : */) r++;
  if (msg.charCodeAt(r) === 32) r++;
  const su = msg.indexOf(', sasl_username=', r);
  const reason = msg.slice(r, su < 0 ? msg.length : su);
  // The auth backend being down is not the client's failure: no event.
  if (reason.startsWith('Connection lost to authentication server')) return true;
  const ev: EventOf<'auth'> = {
    kind: 'auth',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    source: 'postfix',
    protocol: 'smtp',
    outcome: 'failure',
    ip: c.ip,
    clientHost: c.clientHost,
    method,
    service: postfixService(rec.program),
  };
  if (reason.length > 0) ev.reason = reason;
  if (su >= 0) ev.account = msg.slice(su + 16);
  out.push(ev);
  return true;
}

/**
 * `warning: Connection rate limit exceeded: 31 from host[ip] for service smtp`
 * (and concurrency / message / recipient / newtls / AUTH variants): anvil made
 * smtpd refuse the client.
 */
function onLimit(rec: LogRecord, msg: string, at: number, out: Event[]): boolean | undefined {
  const le = msg.indexOf(' limit exceeded: ', at);
  if (le < 0) return undefined;
  const from = msg.indexOf(' from ', le);
  if (from < 0) return undefined;
  const c = clientAt(msg, from + 6);
  if (c === undefined) return undefined;
  const what = msg.slice(at, le);
  let stage = 'CONNECT';
  if (what.startsWith('Message')) stage = 'MAIL';
  else if (what.startsWith('Recipient')) stage = 'RCPT';
  else if (what.startsWith('New TLS')) stage = 'STARTTLS';
  else if (what.startsWith('AUTH')) stage = 'AUTH';
  out.push({
    kind: 'smtp.reject',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    ip: c.ip,
    clientHost: c.clientHost,
    service: postfixService(rec.program),
    action: 'reject',
    stage,
    category: 'rate',
    reason: msg.slice(at, from),
  });
  return true;
}

function onWarning(rec: LogRecord, msg: string, out: Event[]): boolean {
  const at = 9; // after `warning: `
  if (msg.indexOf(': SASL ', at) > 0) {
    const r = onSaslFailure(rec, msg, at, out);
    if (r !== undefined) return r;
  }
  if (msg.indexOf(' limit exceeded: ', at) > 0) {
    const r = onLimit(rec, msg, at, out);
    if (r !== undefined) return r;
  }
  // Every other warning is a diagnostic (DNS mismatch, non-SMTP command, TLS
  // library problem, policy/milter/auth server trouble, ...): recognised.
  return true;
}

// --- queue-id and NOQUEUE lines ---------------------------------------------------

function onQueued(rec: LogRecord, msg: string, queueId: string | undefined, at: number, out: Event[]): boolean {
  if (queueId !== undefined && startsWithAt(msg, 'client=', at)) return onClient(rec, msg, queueId, at + 7, out);
  if (parseRejectLine(rec, msg, at, queueId, postfixService(rec.program), out)) return true;
  if (startsWithAt(msg, 'proxy-accept: ', at)) return true;
  if (startsWithAt(msg, 'lost connection after ', at)) return onLost(rec, msg, at + 22, 'lost', out);
  if (startsWithAt(msg, 'timeout after ', at)) return onLost(rec, msg, at + 14, 'timeout', out);
  if (startsWithAt(msg, 'too many errors after ', at)) return onLost(rec, msg, at + 22, 'too-many-errors', out);
  // NOQUEUE: client=... (no queue file yet) carries nothing to join on.
  if (queueId === undefined && startsWithAt(msg, 'client=', at)) return true;
  return false;
}

/** Messages recognised without an event, by prefix. */
const ROUTINE: readonly string[] = [
  'improper command pipelining after ',
  'setting up TLS connection from ',
  'SSL_accept error from ',
  'SSL_accept:',
  'statistics: ',
  'table ',
  'discarding EHLO keywords: ',
  'initializing the server-side TLS engine',
  'connect to subsystem ',
  'Connection rate limit exceeded',
  'Connection concurrency limit exceeded',
  'too many errors',
  'lost connection',
  'timeout',
  'daemon started',
  'reject_unauth_pipelining',
  'Trusted TLS',
  'Untrusted TLS',
];

function isRoutine(msg: string): boolean {
  for (const p of ROUTINE) if (msg.startsWith(p)) return true;
  return false;
}

/** `host[ip]: ...` TLS chatter at higher smtpd_tls_loglevel (session tickets, cipher lists, ...). */
function isClientPrefixed(msg: string): boolean {
  const sp = msg.indexOf(' ');
  return sp > 2 && msg.charCodeAt(sp - 1) === 58 /* : */ && msg.charCodeAt(sp - 2) === 93 /* ] */ && msg.indexOf('[') > 0;
}

function parse(rec: LogRecord, out: Event[]): boolean {
  const msg = rec.message;
  switch (msg.charCodeAt(0)) {
    case 99 /* c */:
      if (msg.startsWith('connect from ')) return onConnect(rec, msg, out);
      break;
    case 100 /* d */:
      if (msg.startsWith('disconnect from ')) return onDisconnect(rec, msg, out);
      break;
    case 119 /* w */:
      if (msg.startsWith('warning: ')) return onWarning(rec, msg, out);
      break;
    case 78 /* N */:
      if (msg.startsWith('NOQUEUE: ')) return onQueued(rec, msg, undefined, 9, out);
      break;
    case 65 /* A */:
    case 84 /* T */:
    case 85 /* U */:
    case 86 /* V */:
      if (msg.indexOf(TLS_EST) >= 0 && onTls(rec, msg, out)) return true;
      break;
    case 108 /* l */:
      if (msg.startsWith('lost connection after ')) return onLost(rec, msg, 22, 'lost', out);
      break;
    case 116 /* t */:
      if (msg.startsWith('timeout after ')) return onLost(rec, msg, 14, 'timeout', out);
      if (msg.startsWith('too many errors after ')) return onLost(rec, msg, 22, 'too-many-errors', out);
      break;
    case 101 /* e */:
    case 102 /* f */:
    case 112 /* p */:
      if (msg.startsWith('fatal: ') || msg.startsWith('panic: ') || msg.startsWith('error: ')) return true;
      break;
  }
  const qid = leadingQueueId(msg);
  if (qid !== '') {
    if (onQueued(rec, msg, qid, qid.length + 2, out)) return true;
  }
  return isRoutine(msg) || isClientPrefixed(msg);
}

export const postfixSmtpdParser: Parser = {
  id: 'postfix-smtpd',
  programs: ['postfix/smtpd'],
  parse,
};
