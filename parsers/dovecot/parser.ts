/**
 * Dovecot (IMAP/POP3/submission/ManageSieve server and SASL provider for Postfix).
 *
 * Lines arrive either with dovecot's own tag (`dovecot: imap-login: ...`,
 * `dovecot[123]: auth-worker(31326): ...`) or with the process as the tag
 * (`imap-login: Info: ...`, `auth(u,1.2.3.4,sasl:login)<sess>: Info: ...`). The
 * process is read from the tag when it is not `dovecot`, else from the
 * message; Dovecot 2.3+ puts the level (`Info: `) after the process, older
 * master lines put it first.
 *
 * Auth events (source `dovecot`):
 * - login processes: `Login: user=<u>, method=PLAIN, rip=..., lip=..., mpid=1, TLS, session=<x>`
 *   → success; any `(auth failed, N attempts in S secs)` / `(auth_failed)` /
 *   `(proxy dest auth failed)` disconnect → failure with `attempts`.
 * - auth processes: passdb results `pam(u,1.2.3.4): unknown user`, `sql(u,ip,<s>): Password mismatch`,
 *   `pam_authenticate() failed: ...`, `ldap(...): invalid credentials` → failure (protocol `other`:
 *   the auth process does not say which service asked), and `pam_unix(dovecot:auth): authentication failure; ...`.
 * Session, delivery and master lines are recognised without events.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { angleValue, plainValue } from '../util.js';

type AuthEvent = Extract<Event, { kind: 'auth' }>;
type Protocol = AuthEvent['protocol'];

const levels = ['Info: ', 'Warning: ', 'Error: ', 'Fatal: ', 'Panic: ', 'Debug: ', 'Warn: '];

/** Length of a leading log level (`Info: `), or 0. */
function levelLen(msg: string, i: number): number {
  const c = msg.charCodeAt(i);
  if (c !== 73 && c !== 87 && c !== 69 && c !== 70 && c !== 80 && c !== 68) return 0;
  for (const l of levels) if (msg.startsWith(l, i)) return l.length;
  return 0;
}

/**
 * A process tag at i: `name`, `name(ctx)`, `name(ctx)<a><b>` or `name<a>`
 * followed by `: `. Returns the index of the `: ` or -1. Names are
 * lowercase letters, digits and `-`/`_`. The context may hold anything
 * (user names), so its end is the first `: ` preceded by `)` or `>`.
 */
function tagEnd(msg: string, i: number): number {
  const n = msg.length;
  let j = i;
  while (j < n) {
    const c = msg.charCodeAt(j);
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95) j++;
    else break;
  }
  if (j === i) return -1;
  const c = msg.charCodeAt(j);
  if (c === 58) return msg.charCodeAt(j + 1) === 32 ? j : -1;
  if (c !== 40 && c !== 60) return -1;
  let k = msg.indexOf(': ', j + 1);
  while (k > 0) {
    const prev = msg.charCodeAt(k - 1);
    if (prev === 41 || prev === 62) return k;
    k = msg.indexOf(': ', k + 2);
  }
  return -1;
}

/** End of the process name at i (before `(`, `<` or `end`). */
function nameEnd(s: string, i: number, end: number): number {
  let j = i;
  while (j < end) {
    const c = s.charCodeAt(j);
    if (c === 40 || c === 60) break;
    j++;
  }
  return j;
}

const enum Kind {
  Login = 1,
  Auth,
  Session,
  Service,
  Master,
}

interface Proc {
  readonly name: string;
  readonly kind: Kind;
  /** Protocol of a login process. */
  readonly protocol: Protocol;
}

const procTable: Proc[] = [];
function addProcs(kind: Kind, names: string[], protocol: Protocol = 'other'): void {
  for (const name of names) procTable.push({ name, kind, protocol });
}
addProcs(Kind.Login, ['imap-login'], 'imap');
addProcs(Kind.Login, ['pop3-login'], 'pop3');
addProcs(Kind.Login, ['submission-login'], 'smtp');
addProcs(Kind.Login, ['managesieve-login'], 'managesieve');
addProcs(Kind.Login, ['lmtp-login'], 'lmtp');
addProcs(Kind.Auth, ['auth', 'auth-worker', 'dovecot-auth']);
addProcs(Kind.Session, [
  'imap', 'pop3', 'lmtp', 'lda', 'deliver', 'indexer-worker', 'imap-hibernate', 'submission', 'managesieve',
  'doveadm', 'quota-status', 'imap-urlauth', 'imap-urlauth-worker', 'dsync', 'dsync-local', 'dsync-server',
  'pop3-migration',
]);
// Internal service processes: everything they log is housekeeping.
addProcs(Kind.Service, [
  'master', 'log', 'config', 'anvil', 'stats', 'old-stats', 'dict', 'dict-async', 'replicator', 'aggregator',
  'director', 'ssl-params', 'indexer', 'health-check',
]);
addProcs(Kind.Master, ['dovecot']);

/** Processes by first character, so classifying a name needs no allocation. */
const procsByChar = new Map<number, Proc[]>();
for (const pr of procTable) {
  const c = pr.name.charCodeAt(0);
  let list = procsByChar.get(c);
  if (list === undefined) procsByChar.set(c, (list = []));
  list.push(pr);
}

/** The process named s[i, end), or undefined. */
function procAt(s: string, i: number, end: number): Proc | undefined {
  const list = procsByChar.get(s.charCodeAt(i));
  if (list === undefined) return undefined;
  const len = end - i;
  for (const pr of list) if (pr.name.length === len && s.startsWith(pr.name, i)) return pr;
  return undefined;
}

function authEvent(rec: LogRecord, protocol: Protocol, outcome: 'success' | 'failure'): AuthEvent {
  // Same fields and order as baseOf(), built in one literal (hot path).
  return {
    kind: 'auth',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: { file: rec.file, offset: rec.offset },
    source: 'dovecot',
    protocol,
    outcome,
  };
}

/** Number at i (digits), or -1. */
function intAt(s: string, i: number): number {
  let v = 0;
  let k = i;
  while (k < s.length) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    k++;
  }
  return k > i ? v : -1;
}

/** The `key=value` list of a login line starts after the last `): ` or `: ` before `user=<`/`rip=`. */
function fieldsStart(msg: string): number {
  let k = msg.indexOf('user=<');
  if (k < 0) k = msg.indexOf('method=');
  if (k < 0) k = msg.indexOf('rip=');
  return k < 0 ? msg.length : k;
}

/** TLS state of a login line: `, TLS`/`TLS:`/`secured` → true; TLS handshake not finished or absent → false. */
function loginTls(msg: string, from: number): boolean {
  let k = msg.indexOf('TLS', from);
  while (k >= 0) {
    const prev = msg.charCodeAt(k - 1);
    const next = msg.charCodeAt(k + 3);
    if (prev === 32 && (next === 44 || next === 58 || Number.isNaN(next))) return true;
    k = msg.indexOf('TLS', k + 3);
  }
  return msg.includes(', secured', from);
}

function loginLine(rec: LogRecord, proc: string, protocol: Protocol, msg: string, out: Event[]): boolean {
  let outcome: 'success' | 'failure' | undefined;
  let attempts = -1;
  let reason: string | undefined;
  const from = fieldsStart(msg);
  if (msg.startsWith('Login: ')) {
    outcome = 'success';
  } else {
    // Only the reason part before the fields counts: a user name may hold anything.
    const head = from < msg.length ? msg.slice(0, from) : msg;
    const af = head.indexOf('(auth failed');
    if (af >= 0) {
      outcome = 'failure';
      reason = 'auth failed';
      // `(auth failed, 3 attempts in 16 secs)` or `(auth failed, 1 attempts)`.
      if (msg.startsWith(', ', af + 12)) attempts = intAt(msg, af + 14);
    } else if (head.includes('(auth_failed)')) {
      outcome = 'failure';
      reason = 'auth failed';
    } else if (head.includes('(proxy dest auth failed)')) {
      outcome = 'failure';
      reason = 'proxy dest auth failed';
    } else if (head.includes('(password expired)')) {
      outcome = 'failure';
      reason = 'password expired';
    }
  }
  if (outcome === undefined) return knownLoginShape(msg);
  const ev = authEvent(rec, protocol, outcome);
  const user = angleValue(msg, 'user', from);
  if (user) ev.account = user;
  const rip = plainValue(msg, 'rip', from);
  if (rip) ev.ip = rip;
  const method = plainValue(msg, 'method', from);
  if (method) ev.method = method;
  if (reason !== undefined) ev.reason = reason;
  ev.tls = loginTls(msg, from);
  ev.service = proc;
  if (attempts > 0) ev.attempts = attempts;
  out.push(ev);
  return true;
}

/** Non-auth login-process lines: disconnects without auth, TLS errors, proxy notes. */
function knownLoginShape(msg: string): boolean {
  return (
    msg.startsWith('Disconnected') ||
    msg.startsWith('Aborted login') ||
    msg.startsWith('Login aborted') ||
    msg.startsWith('Connection closed') ||
    msg.startsWith('Maximum number of connections') ||
    msg.startsWith('proxy(') ||
    msg.startsWith('Remote closed connection') ||
    msg.startsWith('Client has quit') ||
    msg.startsWith('Inactivity') ||
    msg.startsWith('SSL_accept') ||
    msg.startsWith('Login failed') ||
    msg.startsWith('Logged out') ||
    msg.startsWith('Too many') ||
    msg.includes('(no auth attempts') ||
    msg.includes('rip=')
  );
}

const passdbFailures = [
  'unknown user',
  'Password mismatch',
  'pam_authenticate() failed',
  'invalid credentials',
  'Authentication failure',
  'User not known',
  'password mismatch',
];

/**
 * Auth process line. `ctxTag` is the process tag when it carries the request
 * (`auth(u,1.2.3.4,sasl:login)<sess>` in Dovecot 2.4), else ''.
 */
function authLine(rec: LogRecord, ctxTag: string, msg: string, out: Event[]): boolean {
  if (msg.startsWith('pam_unix(') || msg.startsWith('pam_sss(') || msg.startsWith('pam_ldap(')) return pamLine(rec, msg, out);
  let p = 0;
  // `conn unix:auth-worker (pid=1,uid=2): auth-worker<6>: ` / `conn unix:...: ` prefixes.
  if (msg.startsWith('conn ')) {
    const k = msg.indexOf('): ', 5);
    if (k < 0) return true;
    p = k + 3;
    const t = tagEnd(msg, p);
    if (t > 0 && msg.startsWith('auth-worker', p)) p = t + 2;
    p += levelLen(msg, p);
  }
  // passdb driver tag `pam(u,ip[,<sess>])` or bare `sql`.
  const t = tagEnd(msg, p);
  if (t < 0) return true;
  const tag = msg.slice(p, t);
  const body = t + 2;
  let failure = false;
  for (const f of passdbFailures) {
    if (msg.startsWith(f, body)) {
      failure = true;
      break;
    }
  }
  if (!failure) return true;
  const ev = authEvent(rec, 'other', 'failure');
  const open = tag.indexOf('(');
  const who = open > 0 && tag.endsWith(')') ? tag.slice(open + 1, -1) : ctxTag;
  if (who !== '') fillUserIp(ev, who);
  // `passwd-file(u@d): unknown user` without a client IP is a userdb lookup
  // (recipient check, LMTP delivery), not a login attempt.
  if (ev.ip === undefined && msg.startsWith('unknown user', body)) return true;
  let reason = msg.slice(body);
  // Never keep the attempted password (`(given password: ...)`, `(SHA1 of given password: ...)`).
  const gp = reason.indexOf(' (given password');
  const sp = reason.indexOf(' (SHA1 of given password');
  const cut = gp >= 0 ? gp : sp;
  if (cut >= 0) reason = reason.slice(0, cut);
  ev.reason = reason;
  if (who === ctxTag && ctxTag !== '') {
    // 2.4: `auth(u,ip,sasl:login)` names the mechanism.
    const sasl = ctxTag.indexOf(',sasl:');
    if (sasl >= 0) {
      const end = ctxTag.indexOf(',', sasl + 6);
      ev.method = ctxTag.slice(sasl + 6, end < 0 ? ctxTag.length : end).toUpperCase();
    }
  }
  out.push(ev);
  return true;
}

/**
 * `user,ip[,<session>]` / `user,ip,sasl:login` / `user,ip,` inside a passdb
 * or auth tag: user is everything before the IP field.
 */
function fillUserIp(ev: AuthEvent, who: string): void {
  let s = who;
  // Drop the trailing fields that are not the IP: `<session>`, `sasl:mech`, empty.
  for (let k = 0; k < 2; k++) {
    const last = s.lastIndexOf(',');
    if (last < 0) break;
    const tail = s.slice(last + 1);
    if (tail === '' || tail.charCodeAt(0) === 60 || tail.startsWith('sasl:')) s = s.slice(0, last);
    else break;
  }
  const comma = s.lastIndexOf(',');
  if (comma < 0) {
    if (s) ev.account = s;
    return;
  }
  const user = s.slice(0, comma);
  const ip = s.slice(comma + 1);
  if (user) ev.account = user;
  if (ip) ev.ip = ip;
}

/** `pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=u rhost=1.2.3.4 user=u`. */
function pamLine(rec: LogRecord, msg: string, out: Event[]): boolean {
  const close = msg.indexOf('): ');
  if (close < 0) return false;
  const body = close + 3;
  if (!msg.startsWith('authentication failure', body)) return true; // check pass; user unknown, session opened, ...
  const ev = authEvent(rec, 'other', 'failure');
  const user = plainValue(msg, 'user', body);
  if (user && !user.includes('=')) ev.account = user;
  else {
    const ruser = plainValue(msg, 'ruser', body);
    if (ruser && !ruser.includes('=')) ev.account = ruser;
  }
  const rhost = plainValue(msg, 'rhost', body);
  if (rhost && !rhost.includes('=')) ev.ip = rhost;
  ev.reason = 'authentication failure';
  out.push(ev);
  return true;
}

const sessionPrefixes = [
  'Logged out', 'Disconnected', 'Connection closed', 'msgid=', 'sieve:', 'Connect from', 'Disconnect from',
  'saved mail', 'stored mail', 'Server shutting down', 'save:', 'copy:', 'copy from', 'delete:', 'expunge:',
  'flag_change:', 'append:', 'undelete:', 'mailbox_create:', 'mailbox_delete:', 'mailbox_rename:',
  'Autoexpunge', 'Hibernat', 'Unhibernat', 'Mailbox ', 'Quota', 'fts', 'Indexed', 'Killed', 'Logged in',
  'rejected', 'Relayed', 'relayed', 'forwarded', 'discarded', 'sent message', 'Sent message',
];

/** Lines of mail-session processes (imap, pop3, lmtp, ...). `leveled`: had a Warning/Error/Fatal/Panic level. */
function sessionLine(msg: string, leveled: boolean): boolean {
  if (leveled) return true;
  for (const s of sessionPrefixes) if (msg.startsWith(s)) return true;
  // `<session id>: sieve: ...` (lmtp delivery with a session prefix).
  const colon = msg.indexOf(': ');
  if (colon > 0 && colon < 40) {
    for (let k = 0; k < colon; k++) {
      const c = msg.charCodeAt(k);
      const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 43 || c === 47 || c === 45 || c === 95;
      if (!ok) return false;
    }
    const rest = msg.slice(colon + 2);
    for (const s of sessionPrefixes) if (rest.startsWith(s)) return true;
  }
  return false;
}

/** Master / top-level lines (`Dovecot v2.3.4 starting up`, `Killed with signal 15`, ...). */
function masterLine(msg: string): boolean {
  return (
    msg.startsWith('Dovecot v') ||
    msg.startsWith('Dovecot ') ||
    msg.startsWith('Killed with signal') ||
    msg.startsWith('Warning') ||
    msg.startsWith('Auth process') ||
    msg.startsWith('master:') ||
    msg.startsWith('SIGHUP') ||
    msg.startsWith('Time moved') ||
    msg.startsWith('Process ') ||
    msg.startsWith('service(') ||
    msg.startsWith('Fatal') ||
    msg.startsWith('Error') ||
    msg.startsWith('Info') ||
    msg.startsWith('Shutting down') ||
    msg.startsWith('Stopping')
  );
}

export const dovecotParser: Parser = {
  id: 'dovecot',
  programs: [
    'dovecot', 'dovecot-auth', 'auth', 'auth-worker', 'imap-login', 'pop3-login', 'submission-login',
    'managesieve-login', 'imap', 'pop3', 'lmtp', 'lda', 'deliver', 'indexer-worker', 'imap-hibernate',
  ],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    // The process tag ends at te in `src` (the syslog tag, or a tag inside the message).
    let src = rec.program;
    let te = src.length;
    let ne = nameEnd(src, 0, te);
    let pr = procAt(src, 0, ne);
    let p = 0;
    // Peel `dovecot: ` wrappers, levels and the process tag from the message.
    for (let guard = 0; guard < 4 && pr !== undefined && pr.kind === Kind.Master; guard++) {
      const q = p + levelLen(msg, p);
      const t = tagEnd(msg, q);
      if (t < 0) break;
      src = msg;
      te = t;
      ne = nameEnd(msg, q, t);
      pr = procAt(msg, q, ne);
      p = t + 2;
    }
    if (pr === undefined) return false;
    const lv = levelLen(msg, p);
    const leveled = lv > 0 && !msg.startsWith('Info', p) && !msg.startsWith('Debug', p);
    p += lv;
    const body = p === 0 ? msg : msg.slice(p);
    switch (pr.kind) {
      case Kind.Login:
        return loginLine(rec, pr.name, pr.protocol, body, out);
      case Kind.Auth: {
        // 2.4: `auth(u,1.2.3.4,sasl:login)<sess>` carries the request.
        const ctx = pr.name === 'auth' && src.charCodeAt(ne) === 40 ? authContext(src, ne, te) : '';
        return authLine(rec, ctx, body, out);
      }
      case Kind.Master:
        return masterLine(body);
      case Kind.Session:
        if (pr.name === 'imap' && body.startsWith('badlogin: ')) return false; // Cyrus imapd, not dovecot
        return sessionLine(body, leveled);
      default:
        return true;
    }
  },
};

/** `auth(u,1.2.3.4,sasl:login)<sess>` → `u,1.2.3.4,sasl:login` when it holds a request (not `auth(default)`). */
function authContext(s: string, open: number, end: number): string {
  const close = s.lastIndexOf(')', end - 1);
  if (close <= open + 1) return '';
  const inner = s.slice(open + 1, close);
  return inner.includes(',') ? inner : '';
}
