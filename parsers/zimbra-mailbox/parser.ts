/**
 * Zimbra mailbox.log / audit.log (Java log lines; the envelope fills
 * rec.zimbra = {level, thread, context, category} and leaves the text after
 * `category - ` in rec.message).
 *
 * Authentication results become `auth` events (source `zimbra`):
 * - audit.log: `security - cmd=Auth; account=u@d; protocol=soap;` (success) and
 *   `...; error=authentication failed for [u@d], invalid password;` (failure);
 *   also `cmd=AdminAuth`.
 * - `SoapEngine - handler exception: authentication failed for [u@d], invalid password`
 *   (and `account not found`, `account lockout`, ...); a bare `handler exception` on a
 *   SOAP auth made for SMTP AUTH (`oproto=smtp`) counts as a failure too.
 * - `imap|pop - user u@d authenticated, mechanism=PLAIN [TLS]` (success) and any
 *   `authentication failed for [u]` / `LOGIN failed` line of the IMAP/POP/sync servers.
 *
 * The client IP is `oip=` of the context (the client behind nginx / saslauthd),
 * else `ip=`; the protocol comes from the audit `protocol=`, `oproto=smtp`, the
 * category or the thread (`ImapSSLServer-12`, `qtp..:https://host/service/soap/AuthRequest`,
 * `...Microsoft-Server-ActiveSync`).
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord, ZimbraFields } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { srcOf } from '../util.js';

type AuthEvent = Extract<Event, { kind: 'auth' }>;
type Protocol = AuthEvent['protocol'];

/**
 * Value of `keyEq` (`name=`, `oip=`, ...) in a Zimbra context or audit list
 * (`k=v;k2=v2;` or `k=v; k2=v2;`). Zimbra writes a `;` inside a value as
 * `;;`, so a key only starts after an odd run of `;` (optionally plus one
 * space), and a value ends at a `;` that is not doubled.
 */
export function zimbraValue(s: string, keyEq: string): string | undefined {
  let k = s.indexOf(keyEq);
  while (k >= 0) {
    let b = k - 1;
    if (b >= 0 && s.charCodeAt(b) === 32) b--;
    if (b < 0 && (k === 0 || s.charCodeAt(0) === 32)) break;
    if (b >= 0 && s.charCodeAt(b) === 59) {
      let run = 0;
      while (b >= 0 && s.charCodeAt(b) === 59) {
        run++;
        b--;
      }
      if (run % 2 === 1) break;
    }
    k = s.indexOf(keyEq, k + 1);
  }
  if (k < 0) return undefined;
  const start = k + keyEq.length;
  let end = s.indexOf(';', start);
  let escaped = false;
  while (end >= 0 && s.charCodeAt(end + 1) === 59) {
    escaped = true;
    end = s.indexOf(';', end + 2);
  }
  const v = s.slice(start, end < 0 ? s.length : end);
  return escaped ? v.replaceAll(';;', ';') : v;
}

/** Audit `protocol=` → auth protocol. */
function auditProtocol(p: string | undefined): Protocol {
  switch (p) {
    case 'soap':
      return 'soap';
    case 'imap':
      return 'imap';
    case 'pop3':
    case 'pop':
      return 'pop3';
    case 'zsync':
    case 'activesync':
      return 'activesync';
    case 'http_basic':
    case 'http_dav':
    case 'http':
    case 'dav':
    case 'caldav':
    case 'carddav':
      return 'http';
    case 'smtp':
      return 'smtp';
    default:
      return 'other';
  }
}

/** Protocol from the thread name (`ImapSSLServer-12`, `qtp..:https://host/service/soap/AuthRequest`). */
function threadProtocol(thread: string): Protocol | undefined {
  if (thread.startsWith('Imap')) return 'imap';
  if (thread.startsWith('Pop3') || thread.startsWith('Pop')) return 'pop3';
  if (thread.startsWith('Lmtp')) return 'lmtp';
  if (thread.includes('Microsoft-Server-ActiveSync')) return 'activesync';
  if (thread.includes('/soap')) return 'soap';
  if (thread.includes('/dav') || thread.includes('/service/home') || thread.includes('/service/user')) return 'http';
  return undefined;
}

function categoryProtocol(category: string): Protocol | undefined {
  switch (category) {
    case 'imap':
      return 'imap';
    case 'pop':
    case 'pop3':
      return 'pop3';
    case 'sync':
      return 'activesync';
    case 'soap':
    case 'SoapEngine':
      return 'soap';
    case 'dav':
      return 'http';
    default:
      return undefined;
  }
}

/** TLS from the thread: SSL listeners and https URLs say yes, plain ones no. */
function threadTls(thread: string): boolean | undefined {
  if (thread.startsWith('ImapSSLServer') || thread.startsWith('Pop3SSLServer')) return true;
  if (thread.startsWith('ImapServer') || thread.startsWith('Pop3Server')) return false;
  if (thread.includes(':https://')) return true;
  if (thread.includes(':http://')) return false;
  return undefined;
}

function newAuth(rec: LogRecord, z: ZimbraFields, outcome: 'success' | 'failure', protocol: Protocol): AuthEvent {
  const ev: AuthEvent = { kind: 'auth', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), source: 'zimbra', protocol, outcome };
  const ctx = z.context;
  if (ctx !== '') {
    const name = zimbraValue(ctx, 'name=');
    if (name) ev.account = name;
    const ip = zimbraValue(ctx, 'oip=') || zimbraValue(ctx, 'ip=');
    if (ip) ev.ip = ip;
  }
  return ev;
}

/** Fill userAgent, tls and thread (in that order, after the core fields). */
function finish(ev: AuthEvent, z: ZimbraFields, tls: boolean | undefined): AuthEvent {
  if (tls !== undefined) ev.tls = tls;
  if (z.context !== '') {
    const ua = zimbraValue(z.context, 'ua=');
    if (ua) ev.userAgent = ua;
  }
  if (z.thread !== '') ev.thread = z.thread;
  return ev;
}

/** Protocol of a non-audit line: `oproto=smtp` wins, then category, then thread. */
function lineProtocol(z: ZimbraFields, oproto: string | undefined): Protocol {
  if (oproto === 'smtp') return 'smtp';
  return categoryProtocol(z.category) ?? threadProtocol(z.thread) ?? 'other';
}

/**
 * `authentication failed for [user], reason` / `... [user] (reason)` /
 * `... [user (reason)]. Reason: ...`: the account and reason.
 */
function failedFor(msg: string, at: number): { account?: string; reason: string } {
  const start = at + 'authentication failed for ['.length;
  // The bracket closes at the first `]` followed by `,`, ` `, `.` or end.
  let close = msg.indexOf(']', start);
  while (close >= 0 && close + 1 < msg.length) {
    const c = msg.charCodeAt(close + 1);
    if (c === 44 || c === 32 || c === 46) break;
    close = msg.indexOf(']', close + 1);
  }
  if (close < 0) return { reason: 'authentication failed' };
  let account = msg.slice(start, close);
  let reason = '';
  // Custom auth puts the reason inside the bracket: `[u (why)]`.
  const inner = account.indexOf(' (');
  if (inner > 0 && account.endsWith(')')) {
    reason = account.slice(inner + 2, -1);
    account = account.slice(0, inner);
  }
  let r = close + 1;
  if (msg.charCodeAt(r) === 44) r++;
  while (msg.charCodeAt(r) === 32) r++;
  if (reason === '' && r < msg.length) {
    let rest = msg.slice(r);
    if (rest.charCodeAt(0) === 40 && rest.endsWith(')')) rest = rest.slice(1, -1);
    if (rest.endsWith(';')) rest = rest.slice(0, -1);
    if (rest.charCodeAt(0) !== 46) reason = rest;
  }
  const out: { account?: string; reason: string } = { reason: reason || 'authentication failed' };
  if (account) out.account = account;
  return out;
}

/** audit.log `security - cmd=Auth; account=...; protocol=...; [error=...;]`. */
function security(rec: LogRecord, z: ZimbraFields, msg: string, out: Event[]): boolean {
  if (!msg.startsWith('cmd=')) return false;
  const isAuth = msg.startsWith('cmd=Auth;');
  const isAdmin = !isAuth && msg.startsWith('cmd=AdminAuth;');
  if (!isAuth && !isAdmin) return true; // ChangePassword, CreateAccount, ...: audit of other commands
  const oproto = z.context !== '' ? zimbraValue(z.context, 'oproto=') : undefined;
  let protocol = auditProtocol(zimbraValue(msg, 'protocol='));
  if (oproto === 'smtp') protocol = 'smtp';
  else if (protocol === 'other') protocol = threadProtocol(z.thread) ?? 'other';
  const error = zimbraValue(msg, 'error=');
  const ev = newAuth(rec, z, error === undefined ? 'success' : 'failure', protocol);
  const account = zimbraValue(msg, 'account=');
  if (account) ev.account = account;
  if (error !== undefined) {
    const at = error.indexOf('authentication failed for [');
    if (at >= 0) {
      const f = failedFor(error, at);
      if (ev.account === undefined && f.account !== undefined) ev.account = f.account;
      ev.reason = f.reason;
    } else ev.reason = error || 'error';
  }
  if (isAdmin) ev.service = 'admin';
  out.push(finish(ev, z, threadTls(z.thread)));
  return true;
}

/** `user u@d authenticated, mechanism=PLAIN [TLS]` (imap/pop), `mechanism=password` (SOAP via `account`). */
function authenticated(rec: LogRecord, z: ZimbraFields, msg: string, out: Event[]): boolean {
  const end = msg.lastIndexOf(' authenticated');
  if (end < 5) return false;
  const ev = newAuth(rec, z, 'success', lineProtocol(z, undefined));
  const account = msg.slice(5, end);
  if (account) ev.account = account;
  const mech = msg.indexOf('mechanism=', end);
  if (mech >= 0) {
    let e = mech + 10;
    while (e < msg.length && msg.charCodeAt(e) !== 32) e++;
    if (e > mech + 10) ev.method = msg.slice(mech + 10, e);
  }
  const tls = msg.endsWith('[TLS]') || msg.endsWith('[TLS] ') ? true : threadTls(z.thread);
  out.push(finish(ev, z, tls));
  return true;
}

function failure(rec: LogRecord, z: ZimbraFields, msg: string, at: number, out: Event[]): void {
  const oproto = z.context !== '' ? zimbraValue(z.context, 'oproto=') : undefined;
  const ev = newAuth(rec, z, 'failure', lineProtocol(z, oproto));
  if (at >= 0) {
    const f = failedFor(msg, at);
    if (f.account !== undefined) ev.account = f.account;
    ev.reason = f.reason;
  } else {
    ev.reason = msg;
  }
  out.push(finish(ev, z, oproto === 'smtp' ? undefined : threadTls(z.thread)));
}

/** Server categories whose `X failed` lines are login failures. */
const loginCategories = new Set(['imap', 'pop', 'pop3', 'sync', 'account', 'dav']);

export const zimbraMailboxParser: Parser = {
  id: 'zimbra-mailbox',
  programs: ['zimbra-mailbox'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const z = rec.zimbra;
    if (z === undefined) return false;
    const msg = rec.message;
    const cat = z.category;
    if (cat === 'security') return security(rec, z, msg, out);
    if (cat === 'SoapEngine' && msg.startsWith('handler exception')) {
      const at = msg.indexOf('authentication failed for [');
      if (at >= 0) {
        failure(rec, z, msg, at, out);
        return true;
      }
      // A bare `handler exception` on the SOAP auth saslauthd makes for SMTP AUTH is its failure.
      if (msg.length === 17 && z.context !== '' && zimbraValue(z.context, 'oproto=') === 'smtp') {
        failure(rec, z, msg, -1, out);
      }
      return true;
    }
    // imap/pop listeners, and `account` for SOAP/web logins (the AuthRequest handler's success line)
    if (msg.startsWith('user ') && (cat === 'imap' || cat === 'pop' || cat === 'pop3' || cat === 'account') && msg.includes(' authenticated')) {
      return authenticated(rec, z, msg, out);
    }
    if (loginCategories.has(cat) || threadProtocol(z.thread) === 'activesync') {
      const at = msg.indexOf('authentication failed for [');
      if (at >= 0) {
        failure(rec, z, msg, at, out);
        return true;
      }
      const f = msg.indexOf(' failed');
      if (f > 0 && f <= 12 && /^(?:LOGIN|AUTHENTICATE|AUTH|USER|PASS|APOP) failed/.test(msg)) {
        failure(rec, z, msg, -1, out);
        return true;
      }
    }
    // LMTP delivery into the mailbox: routine, no detection signal.
    if (cat === 'lmtp' && (msg.startsWith('Delivering message') || msg.startsWith('Delivered message'))) return true;
    return false;
  },
};
