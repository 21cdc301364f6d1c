/**
 * saslauthd: the password checker behind Postfix SMTP AUTH (Cyrus SASL).
 *
 * - Zimbra's `auth_zimbra` backend: `auth_zimbra: user@dom auth OK` and
 *   `auth_zimbra: user@dom auth failed: authentication failed for [user@dom], invalid password`.
 * - Generic: `do_auth         : auth failure: [user=x] [service=smtp] [realm=r] [mech=pam] [reason=PAM auth error]`
 *   and `auth success` (function names are padded to 16 columns).
 * - PAM: `pam_unix(smtp:auth): authentication failure; logname= uid=0 ... user=x`.
 *
 * saslauthd does not see the client's IP; on Zimbra the same attempt shows up
 * in mailbox.log with `oip=` and `oproto=smtp`.
 */
import { authProtocols, type Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { plainValue, srcOf } from '../util.js';

type AuthEvent = Extract<Event, { kind: 'auth' }>;
type Protocol = AuthEvent['protocol'];

const protocolSet = new Set<string>(authProtocols);

/** SASL/PAM service name → auth protocol. */
function protocolOf(service: string | undefined): Protocol {
  if (service === undefined || service === '') return 'smtp';
  const s = service.toLowerCase();
  if (s === 'pop' || s === 'pop3' || s === 'pop3s') return 'pop3';
  if (s === 'imaps') return 'imap';
  if (s === 'sieve') return 'managesieve';
  if (s === 'smtps' || s === 'submission' || s === 'postfix') return 'smtp';
  return protocolSet.has(s) ? (s as Protocol) : 'other';
}

function authEvent(rec: LogRecord, outcome: 'success' | 'failure', protocol: Protocol): AuthEvent {
  return { kind: 'auth', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), source: 'saslauthd', protocol, outcome };
}

/** `[key=value]` in saslauthd's do_auth lines. */
function bracketValue(msg: string, key: string, from: number): string | undefined {
  const k = msg.indexOf('[' + key + '=', from);
  if (k < 0) return undefined;
  const start = k + key.length + 2;
  // Values are free text; the field ends at `] [` or the final `]`.
  let end = msg.indexOf('] [', start);
  if (end < 0) end = msg.lastIndexOf(']');
  if (end < start) return undefined;
  return msg.slice(start, end);
}

function authZimbra(rec: LogRecord, msg: string, p: number, out: Event[]): boolean {
  if (msg.endsWith(' auth OK')) {
    const ev = authEvent(rec, 'success', 'smtp');
    const account = msg.slice(p, msg.length - 8);
    if (account) ev.account = account;
    out.push(ev);
    return true;
  }
  const failed = msg.indexOf(' auth failed', p);
  if (failed >= 0) {
    const ev = authEvent(rec, 'failure', 'smtp');
    const account = msg.slice(p, failed);
    if (account) ev.account = account;
    let r = failed + 12;
    if (msg.charCodeAt(r) === 58 /* : */) r++;
    while (msg.charCodeAt(r) === 32) r++;
    let reason = msg.slice(r);
    // `authentication failed for [u], invalid password` → `invalid password`.
    if (reason.startsWith('authentication failed for [')) {
      const close = reason.lastIndexOf('], ');
      if (close > 0) reason = reason.slice(close + 3);
    }
    ev.reason = reason || 'auth failed';
    out.push(ev);
    return true;
  }
  return true;
}

function doAuth(rec: LogRecord, msg: string, p: number, out: Event[]): boolean {
  let outcome: 'success' | 'failure';
  if (msg.startsWith('auth failure', p)) outcome = 'failure';
  else if (msg.startsWith('auth success', p)) outcome = 'success';
  else return true;
  const service = bracketValue(msg, 'service', p);
  const ev = authEvent(rec, outcome, protocolOf(service));
  const user = bracketValue(msg, 'user', p);
  if (user) ev.account = user;
  if (service) ev.service = service;
  const reason = bracketValue(msg, 'reason', p);
  if (reason && outcome === 'failure') ev.reason = reason;
  out.push(ev);
  return true;
}

/** `pam_unix(smtp:auth): authentication failure; ... user=x`. */
function pam(rec: LogRecord, msg: string, out: Event[]): boolean {
  const open = msg.indexOf('(');
  const close = msg.indexOf('): ', open);
  if (open < 0 || close < 0) return false;
  const ctx = msg.slice(open + 1, close);
  const colon = ctx.indexOf(':');
  const service = colon >= 0 ? ctx.slice(0, colon) : ctx;
  const body = close + 3;
  if (!msg.startsWith('authentication failure', body)) return true; // check pass, session, ...
  const ev = authEvent(rec, 'failure', protocolOf(service));
  const user = plainValue(msg, 'user', body);
  if (user) ev.account = user;
  else {
    const ruser = plainValue(msg, 'ruser', body);
    if (ruser && !ruser.includes('=')) ev.account = ruser;
  }
  const rhost = plainValue(msg, 'rhost', body);
  if (rhost && !rhost.includes('=')) ev.ip = rhost;
  if (service) ev.service = service;
  ev.reason = 'authentication failure';
  out.push(ev);
  return true;
}

/** Housekeeping function names saslauthd prefixes its messages with. */
const routine = new Set([
  'zmauth', 'zmpost', 'auth_zimbra_init', 'detach_tty', 'ipc_init', 'server_exit', 'cache_init', 'cache_lookup',
  'cache_commit', 'cache_cleanup', 'cache_alloc_mm', 'cache_get_next_prime', 'cache_flush', 'cache_un_lock',
  'cache_wr_lock', 'cache_rd_lock', 'cache_pruner', 'auth_pam', 'auth_krb5', 'auth_rimap', 'auth_ldap',
  'auth_shadow', 'auth_sasldb', 'auth_getpwent', 'auth_httpform', 'auth_sia', 'main', 'do_request',
  'handle_sigchld', 'handle_exit', 'rel_accept_lock', 'get_accept_lock', 'flock', 'DEBUG', 'ERROR', 'WARNING',
  'Caught', 'master', 'listening', 'zmauth_init', 'zmpost_init', 'retry_read', 'retry_writev', 'have_child',
]);

export const saslauthdParser: Parser = {
  id: 'saslauthd',
  programs: ['saslauthd'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    if (msg.startsWith('auth_zimbra: ')) return authZimbra(rec, msg, 13, out);
    // `function        : text` (padded) or `function: text`.
    let sp = 0;
    const n = msg.length;
    while (sp < n) {
      const c = msg.charCodeAt(sp);
      if (c === 32 || c === 58 || c === 40) break;
      sp++;
    }
    const fn = msg.slice(0, sp);
    if (msg.charCodeAt(sp) === 40 /* ( */) {
      if (fn.startsWith('pam_')) return pam(rec, msg, out);
      return false;
    }
    let p = sp;
    while (msg.charCodeAt(p) === 32) p++;
    if (msg.charCodeAt(p) === 58) {
      p++;
      while (msg.charCodeAt(p) === 32) p++;
    }
    if (fn === 'do_auth') return doAuth(rec, msg, p, out);
    if (fn === 'auth_zimbra') return authZimbra(rec, msg, p, out);
    return routine.has(fn);
  },
};
