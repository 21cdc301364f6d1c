/**
 * amavisd-new: the main log entry of each checked message
 * (`(12345-01) Passed CLEAN {RelayedOutbound}, ORIGINATING LOCAL [10.0.0.5]:41234
 * [203.0.113.9] <a@x.com> -> <b@y.com>,<c@z.com>, Queue-ID: 3F2A1C0B4, Message-ID: <m@x>,
 * mail_id: abc, Hits: -1.2, size: 1234, queued_as: 4C9A23E1F, 532 ms`) becomes an
 * `amavis` event; the many informational lines are recognised without events.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { num, srcOf } from '../util.js';

type AmavisEvent = Extract<Event, { kind: 'amavis' }>;

/** Verdicts of the main log entry (`%s` in log_templ). */
const verdicts = new Set(['Passed', 'Blocked', 'Not-Delivered']);

/**
 * First words of routine informational lines (after the `(pid-nn) ` task id
 * and any `(!)` marker): startup, per-part MIME notes, timing, SpamAssassin
 * chatter, forwarding results, warnings.
 */
const routine = new Set([
  'Checking', 'ESMTP', 'LMTP', 'SMTP', 'FWD', 'Open', 'bounce', 'sd_notify', 'Requesting', '_WARN', '_DIE',
  'SA', 'TIMING', 'TIMING-SA', 'RUSAGE', 'extra', 'DKIM-Signature', 'dkim', 'spam-tag', 'SPAM-TAG', 'lookup',
  'lookup_sql', 'lookup_ip_acl', 'lookup_acl', 'lookup_hash', 'starting.', 'starting', 'Net::Server', 'Module',
  'Amavis::DB', 'Amavis::Cache', 'Amavis::ZMQ', 'Amavis::Redis', 'Amavis::SpamControl', 'Amavis::Unpackers',
  'Amavis::IO::Zlib', 'Found', 'No', 'Using', 'Internal', 'Creating', 'Deleting', 'initializing', 'SpamControl',
  'SpamAssassin', 'ANTI-VIRUS', 'ANTI-SPAM', 'ANTI-SPAM-SA', 'Perl', 'user', 'config', 'Ignoring', 'Unicode',
  'daemonized', 'TERM', 'HUP', 'INFO', 'NOTICE', 'WARN', 'TROUBLE', 'DENIED', 'DSN', 'Quarantined',
  'quarantining', 'Quarantine', 'wbl', 'white-black', 'Cached', 'do_notify_and_quar', 'do_ascii', 'local',
  'mail_via_smtp', 'mail_via_pipe', 'collect_results', 'check_header', 'inspect_dsn', 'penpals', 'redis',
  'virus_scan', 'ClamAV-clamd', 'ClamAV-clamscan', 'Decoding', 'blocking', 'size', 'save_info_final',
  'loading', 'Amavis', 'logging', 'smtp', 'smtp_resp', 'SMTP::', 'child_init_hook', 'run_av',
  'Virus', 'p.path', 'released', 'release', 'AM.PDP', 'AM.CL', 'bind', 'unlink', 'lock_file', 'mkdir',
  'processing', 'mail', 'done', 'Net::DNS', 'Mail::SpamAssassin', 'DCC', 'Razor2', 'Pyzor',
  'DNS', 'ask_av', 'ask_daemon', 'Tempfailing', 'Requeue',
]);

/**
 * Strip the `(12345-01) ` task id and the `(!)`/`(!!)` severity marker.
 * Returns the index of the payload.
 */
function payloadStart(msg: string): number {
  let i = 0;
  if (msg.charCodeAt(0) === 40 /* ( */) {
    const close = msg.indexOf(') ', 1);
    if (close > 1 && close < 24) {
      let ok = true;
      for (let k = 1; k < close; k++) {
        const c = msg.charCodeAt(k);
        if (!((c >= 48 && c <= 57) || c === 45 /* - */)) {
          ok = false;
          break;
        }
      }
      if (ok) i = close + 2;
    }
  }
  if (msg.charCodeAt(i) === 40 /* ( */ && msg.charCodeAt(i + 1) === 33 /* ! */) {
    const close = msg.indexOf(')', i + 1);
    if (close > 0 && close < i + 6) {
      i = close + 1;
      while (msg.charCodeAt(i) === 32) i++;
    }
  }
  return i;
}

/** First word at i, without a trailing `:` or `,`. */
function firstWord(msg: string, i: number): string {
  let end = msg.indexOf(' ', i);
  if (end < 0) end = msg.length;
  let w = msg.slice(i, end);
  const last = w.charCodeAt(w.length - 1);
  if (w.length > 1 && (last === 58 || last === 44)) w = w.slice(0, -1);
  return w;
}

/** Is this a mail_id (12 chars of [A-Za-z0-9_-]), as in `<mail_id> FWD from ...`? */
function isMailIdAt(msg: string, i: number): boolean {
  const sp = msg.indexOf(' ', i);
  if (sp - i < 8 || sp - i > 16) return false;
  for (let k = i; k < sp; k++) {
    const c = msg.charCodeAt(k);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95)) return false;
  }
  return true;
}

/** `p001 1/1 Content-Type: ...` MIME part lines. */
function isPartLine(msg: string, i: number): boolean {
  if (msg.charCodeAt(i) !== 112 /* p */) return false;
  let k = i + 1;
  while (k < msg.length && msg.charCodeAt(k) >= 48 && msg.charCodeAt(k) <= 57) k++;
  return k > i + 1 && msg.charCodeAt(k) === 32;
}

/** Parse the main log entry starting at `i` (the verdict word). */
function mainEntry(rec: LogRecord, msg: string, i: number, out: Event[]): boolean {
  const n = msg.length;
  let sp = msg.indexOf(' ', i);
  if (sp < 0) return false;
  const verdict = msg.slice(i, sp);
  let p = sp + 1;
  // Category word, ends at ' ', ',' or end.
  let e = p;
  while (e < n) {
    const c = msg.charCodeAt(e);
    if (c === 32 || c === 44) break;
    e++;
  }
  const category = msg.slice(p, e);
  if (category === '') return false;
  p = e;
  let detail: string | undefined;
  let disposition: string | undefined;
  // ` (detail)`, parentheses may nest.
  if (msg.charCodeAt(p) === 32 && msg.charCodeAt(p + 1) === 40) {
    let depth = 0;
    let k = p + 1;
    for (; k < n; k++) {
      const c = msg.charCodeAt(k);
      if (c === 40) depth++;
      else if (c === 41 && --depth === 0) break;
    }
    if (k >= n) return false;
    detail = msg.slice(p + 2, k);
    p = k + 1;
  }
  // ` {Disposition}`.
  if (msg.charCodeAt(p) === 32 && msg.charCodeAt(p + 1) === 123) {
    const close = msg.indexOf('}', p + 2);
    if (close < 0) return false;
    disposition = msg.slice(p + 2, close);
    p = close + 1;
  }
  // `, ` before the client part (some versions leave the comma out).
  if (msg.charCodeAt(p) === 44) p++;
  if (msg.charCodeAt(p) !== 32) return false;
  p++;
  // Policy bank names up to the first `[ip]` or `<sender>`.
  let policy: string | undefined;
  {
    const start = p;
    while (p < n) {
      const c = msg.charCodeAt(p);
      if (c === 91 || c === 60) break;
      sp = msg.indexOf(' ', p);
      if (sp < 0) return false;
      p = sp + 1;
    }
    if (p > start) policy = msg.slice(start, p - 1);
  }
  // `[relay ip]:port [origin ip] ` (each optional).
  let ip: string | undefined;
  let originIp: string | undefined;
  for (let k = 0; k < 2 && msg.charCodeAt(p) === 91; k++) {
    const close = msg.indexOf(']', p + 1);
    if (close < 0) return false;
    const v = msg.slice(p + 1, close);
    if (k === 0) ip = v;
    else originIp = v;
    p = close + 1;
    if (msg.charCodeAt(p) === 58) {
      p++;
      while (p < n && msg.charCodeAt(p) >= 48 && msg.charCodeAt(p) <= 57) p++;
    }
    if (msg.charCodeAt(p) === 32) p++;
  }
  // `<sender> -> <r1>,<r2>,`
  if (msg.charCodeAt(p) !== 60) return false;
  const arrow = msg.indexOf('> -> <', p);
  if (arrow < 0) return false;
  const sender = msg.slice(p + 1, arrow);
  p = arrow + 6;
  const recipients: string[] = [];
  for (;;) {
    // A recipient ends at `>,<` (next one), `>, ` (fields follow) or `>` at end.
    let close = msg.indexOf('>', p);
    while (close >= 0) {
      const c1 = msg.charCodeAt(close + 1);
      if (close + 1 >= n) break;
      if (c1 === 44 && (msg.charCodeAt(close + 2) === 60 || msg.charCodeAt(close + 2) === 32 || close + 2 >= n)) break;
      close = msg.indexOf('>', close + 1);
    }
    if (close < 0) return false;
    recipients.push(msg.slice(p, close));
    if (msg.charCodeAt(close + 1) === 44 && msg.charCodeAt(close + 2) === 60) {
      p = close + 3;
      continue;
    }
    p = close + 1;
    break;
  }
  const ev: AmavisEvent = {
    kind: 'amavis',
    ts: rec.ts,
    host: rec.host,
    program: rec.program,
    src: srcOf(rec),
    verdict,
    category,
    sender,
    recipients,
  };
  if (ip !== undefined) ev.ip = ip;
  if (originIp !== undefined) ev.originIp = originIp;
  // `, Key: value` fields in template order; stop at the first one we do not read.
  while (p < n && msg.charCodeAt(p) === 44 && msg.charCodeAt(p + 1) === 32) {
    const ks = p + 2;
    const colon = msg.indexOf(': ', ks);
    if (colon < 0 || colon - ks > 24) break;
    const key = msg.slice(ks, colon);
    const vs = colon + 2;
    let ve: number;
    if (key === 'Message-ID' && msg.charCodeAt(vs) === 60) {
      ve = msg.indexOf('>, ', vs);
      ve = ve < 0 ? n : ve + 1;
    } else {
      ve = msg.indexOf(', ', vs);
      if (ve < 0) ve = n;
    }
    const v = msg.slice(vs, ve);
    switch (key) {
      case 'Queue-ID':
        ev.queueId = v;
        break;
      case 'Message-ID':
        ev.messageId = v.charCodeAt(0) === 60 && v.charCodeAt(v.length - 1) === 62 ? v.slice(1, -1) : v;
        break;
      case 'mail_id':
        ev.mailId = v;
        break;
      case 'Hits': {
        const h = v === '-' ? undefined : num(v);
        if (h !== undefined) ev.hits = h;
        break;
      }
      case 'size': {
        const s = num(v);
        if (s !== undefined) ev.size = s;
        break;
      }
      case 'queued_as':
        ev.queuedAs = v.split('/');
        break;
      case 'quarantine':
      case 'Resent-Message-ID':
      case 'orig_mail_id':
      case 'Authenticated':
        break;
      default:
        p = n;
        continue;
    }
    p = ve;
  }
  if (policy !== undefined) ev.policy = policy;
  if (disposition !== undefined) ev.disposition = disposition;
  if (detail !== undefined) ev.detail = detail;
  out.push(ev);
  return true;
}

export const amavisParser: Parser = {
  id: 'amavis',
  programs: ['amavis', 'amavisd', 'amavisd-new'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const i = payloadStart(msg);
    if (i >= msg.length) return false;
    const word = firstWord(msg, i);
    if (verdicts.has(word)) {
      if (msg.indexOf(' -> ', i) > 0) {
        const before = out.length;
        if (mainEntry(rec, msg, i, out)) return true;
        out.length = before;
        return false;
      }
      // A main entry cut right after its verdict (`Passed,`): nothing to read.
      return msg.length - i <= word.length + 1;
    }
    if (routine.has(word)) return true;
    if (isPartLine(msg, i)) return true;
    if (isMailIdAt(msg, i) && msg.startsWith(' FWD ', msg.indexOf(' ', i))) return true;
    return false;
  },
};
