/**
 * Envelope parsing: one raw line → LogRecord. Each line's format is told by
 * its first bytes, so a file mixing formats (a merged archive, a relay that
 * adds PRI) still parses; `--format` pins one format instead.
 *
 * Supported: RFC 3164 (`Nov 27 10:00:00 host tag[pid]: msg`, with or without
 * host, with or without `<PRI>`), ISO 8601 / rsyslog high precision
 * (`2026-11-27T10:00:00.123456+01:00 host tag: msg`), RFC 5424
 * (`<34>1 2026-... host app procid msgid [sd] msg`), TAI64N (`@4000...`
 * from daemontools/s6), and Zimbra's Java log (mailbox.log / audit.log:
 * `2026-11-27 10:00:00,123 INFO  [thread] [ctx] category - msg`).
 */
import type { LogRecord } from '../core/record.js';
import type { YearInferrer } from './year.js';
import type { ZoneClock } from './zone.js';

export const envelopeFormats = ['auto', 'rfc3164', 'iso', 'rfc5424', 'zimbra'] as const;
export type EnvelopeFormat = (typeof envelopeFormats)[number];

/** Per-stream state: the envelope of one file depends on its year and zone. */
export interface EnvelopeContext {
  format: EnvelopeFormat;
  zone: ZoneClock;
  years: YearInferrer;
  /** Host for lines that carry none (Zimbra Java logs, host-less syslog). */
  defaultHost: string;
  file: string;
  /** What this stream's previous lines had (created on first use). */
  memo?: EnvelopeMemo;
}

/** Longest stamp kept: `Mmm dd yyyy hh:mm:ss.ffffff ` is 28. */
const MAX_STAMP = 40;

/**
 * Work a line can skip because the line before it did it: syslog writes many
 * lines per second, and their `Mmm dd hh:mm:ss ` prefix is the same, so its
 * conversion (month, year inference, zone) is done once per second of log.
 */
export class EnvelopeMemo {
  /**
   * The last RFC 3164 stamp's characters (a typed array: reading it is
   * cheaper than charCodeAt on the old line), where it started and ended
   * (after its space) in its line, and its time.
   */
  readonly stamp = new Uint16Array(MAX_STAMP);
  stampAt = -1;
  stampEnd = -1;
  stampTs = 0;
  /** years.generation when stampTs was computed (a restored year state voids it). */
  stampGen = -1;
}

const enum C {
  Space = 32,
  Colon = 58,
  LBracket = 91,
  RBracket = 93,
  Lt = 60,
  Gt = 62,
  LParen = 40,
  RParen = 41,
  Zero = 48,
  Nine = 57,
}

function isDigit(c: number): boolean {
  return c >= C.Zero && c <= C.Nine;
}

/** Two ASCII digits at i, or -1. */
function d2(s: string, i: number): number {
  const a = s.charCodeAt(i) - C.Zero;
  const b = s.charCodeAt(i + 1) - C.Zero;
  if (a < 0 || a > 9 || b < 0 || b > 9) return -1;
  return a * 10 + b;
}

function d4(s: string, i: number): number {
  const a = d2(s, i);
  const b = d2(s, i + 2);
  return a < 0 || b < 0 ? -1 : a * 100 + b;
}

/** Month index (0-11) of a 3-letter English abbreviation at i, or -1. */
function monthAt(s: string, i: number): number {
  const a = s.charCodeAt(i) | 0x20;
  const b = s.charCodeAt(i + 1) | 0x20;
  const c = s.charCodeAt(i + 2) | 0x20;
  switch (a) {
    case 0x6a: // j
      if (b === 0x61 && c === 0x6e) return 0;
      if (b === 0x75 && c === 0x6e) return 5;
      if (b === 0x75 && c === 0x6c) return 6;
      return -1;
    case 0x66: return b === 0x65 && c === 0x62 ? 1 : -1;
    case 0x6d:
      if (b !== 0x61) return -1;
      return c === 0x72 ? 2 : c === 0x79 ? 4 : -1;
    case 0x61:
      if (b === 0x70 && c === 0x72) return 3;
      if (b === 0x75 && c === 0x67) return 7;
      return -1;
    case 0x73: return b === 0x65 && c === 0x70 ? 8 : -1;
    case 0x6f: return b === 0x63 && c === 0x74 ? 9 : -1;
    case 0x6e: return b === 0x6f && c === 0x76 ? 10 : -1;
    case 0x64: return b === 0x65 && c === 0x63 ? 11 : -1;
    default: return -1;
  }
}

/**
 * Parse `[host ]tag[pid]: message` starting at i. Fills program/pid/message
 * and host (defaultHost when the line has none). Returns false when there is
 * no tag.
 */
function parseTagged(line: string, i: number, rec: LogRecord, defaultHost: string, hostKnown: boolean): boolean {
  const n = line.length;
  // First token: host, unless it already is the tag (ends with ':' outside brackets).
  let host = defaultHost;
  // syslog-ng's `<facility.priority>` template token before the host.
  if (line.charCodeAt(i) === C.Lt) {
    const gt = line.indexOf('> ', i);
    if (gt > i && gt - i < 24) i = gt + 2;
  }
  if (!hostKnown) {
    const sp = line.indexOf(' ', i);
    if (sp < 0) return false;
    if (!tokenIsTag(line, i, sp)) {
      host = line.slice(i, sp);
      i = sp + 1;
    }
  }
  while (i < n && line.charCodeAt(i) === C.Space) i++;
  // Tag: up to ':' at depth 0 followed by space or end. Brackets hold pid,
  // parentheses/angles hold dovecot's process context (may contain ':').
  let depth = 0;
  let j = i;
  let bracket = -1;
  for (; j < n; j++) {
    const c = line.charCodeAt(j);
    // Letters, digits, '-', '.', '/': most of a tag, and none of them matters here.
    if (c >= 97 || (c >= 45 && c <= 57)) continue;
    if (c === C.LParen || c === C.Lt) depth++;
    else if ((c === C.RParen || c === C.Gt) && depth > 0) depth--;
    else if (c === C.LBracket && depth === 0 && bracket < 0) bracket = j;
    else if (c === C.Colon && depth === 0) {
      if (j + 1 >= n || line.charCodeAt(j + 1) === C.Space) break;
    } else if (c === C.Space && depth === 0) return false;
  }
  if (j >= n || j === i) return false;
  let pid = -1;
  let progEnd = j;
  if (bracket > 0 && line.charCodeAt(j - 1) === C.RBracket) {
    progEnd = bracket;
    let p = 0;
    let k = bracket + 1;
    for (; k < j - 1; k++) {
      const c = line.charCodeAt(k);
      if (!isDigit(c)) break;
      p = p * 10 + (c - C.Zero);
    }
    if (k === j - 1 && k > bracket + 1) pid = p;
  }
  rec.host = host;
  rec.program = line.slice(i, progEnd);
  rec.pid = pid;
  rec.message = j + 2 <= n ? line.slice(j + 2) : '';
  if (pid < 0 && progEnd - i <= 7 && dovecotLevels.has(rec.program)) levelFirst(rec);
  return true;
}

/**
 * Dovecot's own log file (log_path, no syslog) writes `Info: imap-login: ...`:
 * the level stands where the tag would be. Swap them so the record reads like
 * the syslog form `imap-login: Info: ...`.
 */
const dovecotLevels = new Set(['Info', 'Warn', 'Warning', 'Error', 'Fatal', 'Panic', 'Debug']);
function levelFirst(rec: LogRecord): void {
  const m = rec.message;
  const colon = m.indexOf(': ');
  if (colon <= 0 || colon > 120) return;
  const tag = m.slice(0, colon);
  if (tag.includes(' ') && !tag.includes('(')) return;
  rec.message = `${rec.program}: ${m.slice(colon + 2)}`;
  rec.program = tag;
}

function tokenIsTag(line: string, start: number, end: number): boolean {
  return line.charCodeAt(end - 1) === C.Colon && end - 1 > start;
}

function newRecord(ctx: EnvelopeContext, offset: number): LogRecord {
  return { ts: 0, host: '', program: '', pid: -1, message: '', file: ctx.file, offset };
}

/**
 * rfc3164Time through the memo: a line whose stamp is the previous RFC 3164
 * line's has the same time. The year inference agrees: the line before had
 * the same month, so yearFor would answer the same and change nothing.
 */
function memoRfc3164Time(line: string, i: number, ctx: EnvelopeContext, rec: LogRecord): number {
  const memo = (ctx.memo ??= new EnvelopeMemo());
  if (memo.stampAt === i && memo.stampGen === ctx.years.generation && sameStamp(line, memo.stamp, i, memo.stampEnd)) {
    rec.ts = memo.stampTs;
    return memo.stampEnd;
  }
  const p = rfc3164Time(line, i, ctx, rec);
  if (p >= 0 && p - i <= MAX_STAMP) {
    for (let k = i; k < p; k++) memo.stamp[k - i] = line.charCodeAt(k);
    memo.stampEnd = p;
    memo.stampAt = i;
    memo.stampTs = rec.ts;
    memo.stampGen = ctx.years.generation;
  } else if (p >= 0) {
    memo.stampAt = -1; // this line moved the year inference: an older stamp must not be reused
  }
  return p;
}

/**
 * line[start, end) holds the characters of `stamp`. A loop from the seconds
 * backwards (where consecutive stamps differ), not startsWith: V8 calls
 * startsWith with a position out of line, which cost more than the stamp
 * conversion it saves.
 */
function sameStamp(line: string, stamp: Uint16Array, start: number, end: number): boolean {
  for (let k = end - 1; k >= start; k--) if (line.charCodeAt(k) !== stamp[k - start]) return false;
  return true;
}

/** RFC 3164: `Mmm dd hh:mm:ss[.frac] ` at i. Returns index after the space, or -1. */
function rfc3164Time(line: string, i: number, ctx: EnvelopeContext, rec: LogRecord): number {
  const mon = monthAt(line, i);
  if (mon < 0 || line.charCodeAt(i + 3) !== C.Space) return -1;
  let p = i + 4;
  let day: number;
  if (line.charCodeAt(p) === C.Space) {
    // space-padded day: `Nov  7`
    day = line.charCodeAt(p + 1) - C.Zero;
    if (day < 1 || day > 9) return -1;
    p += 2;
  } else if (line.charCodeAt(p + 1) === C.Space) {
    // unpadded day some relays write: `Nov 7`
    day = line.charCodeAt(p) - C.Zero;
    if (day < 1 || day > 9) return -1;
    p += 1;
  } else {
    day = d2(line, p);
    if (day < 1 || day > 31) return -1;
    p += 2;
  }
  if (line.charCodeAt(p) !== C.Space) return -1;
  p++;
  // Some daemons log `Mmm dd yyyy hh:mm:ss`.
  let year = -1;
  if (line.charCodeAt(p + 4) === C.Space && isDigit(line.charCodeAt(p + 3))) {
    year = d4(line, p);
    if (year < 0) return -1;
    p += 5;
  }
  const h = d2(line, p);
  const mi = d2(line, p + 3);
  const s = d2(line, p + 6);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60) return -1;
  if (line.charCodeAt(p + 2) !== C.Colon || line.charCodeAt(p + 5) !== C.Colon) return -1;
  p += 8;
  let ms = 0;
  if (line.charCodeAt(p) === 46 /* . */) {
    p++;
    let scale = 100;
    while (isDigit(line.charCodeAt(p))) {
      ms += (line.charCodeAt(p) - C.Zero) * scale;
      scale /= 10;
      p++;
    }
    ms = Math.floor(ms);
  }
  if (line.charCodeAt(p) !== C.Space) return -1;
  const y = year >= 0 ? year : ctx.years.yearFor(mon);
  rec.ts = ctx.zone.hourStart(y, mon + 1, day, h) + mi * 60_000 + s * 1000 + ms;
  return p + 1;
}

/**
 * ISO 8601 at i: `yyyy-mm-ddThh:mm:ss[.frac][Z|±hh:mm]` (or a space instead
 * of T). Returns the index after the time, or -1. `zimbraMs` accepts the
 * Java `,mmm` fraction.
 */
function isoTime(line: string, i: number, ctx: EnvelopeContext, rec: LogRecord): number {
  const y = d4(line, i);
  const mo = d2(line, i + 5);
  const d = d2(line, i + 8);
  const sep = line.charCodeAt(i + 10);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
  if (line.charCodeAt(i + 4) !== 45 || line.charCodeAt(i + 7) !== 45) return -1;
  if (sep !== 84 /* T */ && sep !== C.Space) return -1;
  const h = d2(line, i + 11);
  const mi = d2(line, i + 14);
  const s = d2(line, i + 17);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60) return -1;
  if (line.charCodeAt(i + 13) !== C.Colon || line.charCodeAt(i + 16) !== C.Colon) return -1;
  let p = i + 19;
  let ms = 0;
  const fc = line.charCodeAt(p);
  if (fc === 46 /* . */ || fc === 44 /* , */) {
    p++;
    let scale = 100;
    while (isDigit(line.charCodeAt(p))) {
      ms += (line.charCodeAt(p) - C.Zero) * scale;
      scale /= 10;
      p++;
    }
    ms = Math.floor(ms);
  }
  const z = line.charCodeAt(p);
  if (z === 90 /* Z */) {
    rec.ts = Date.UTC(y, mo - 1, d, h, mi, s, ms);
    p++;
  } else if (z === 43 /* + */ || z === 45 /* - */) {
    const oh = d2(line, p + 1);
    const colon = line.charCodeAt(p + 3) === C.Colon ? 1 : 0;
    const om = d2(line, p + 3 + colon);
    if (oh < 0 || om < 0) return -1;
    const off = (oh * 60 + om) * 60_000 * (z === 43 ? 1 : -1);
    rec.ts = Date.UTC(y, mo - 1, d, h, mi, s, ms) - off;
    p += 5 + colon;
  } else {
    rec.ts = ctx.zone.hourStart(y, mo, d, h) + mi * 60_000 + s * 1000 + ms;
  }
  return p;
}

/** TAI64N label `@4000000050000000xxxxxxxx` → epoch ms (TAI − 10 s, leap seconds ignored). */
function tai64nTime(line: string, i: number, rec: LogRecord): number {
  if (line.length < i + 26 || line.charCodeAt(i + 25) !== C.Space) return -1;
  const hex = line.slice(i + 1, i + 25);
  if (!/^4[0-9a-f]{23}$/i.test(hex)) return -1;
  const secs = parseInt(hex.slice(1, 16), 16);
  const nanos = parseInt(hex.slice(16), 16);
  rec.ts = (secs - 10) * 1000 + Math.floor(nanos / 1e6);
  return i + 26;
}

/** Zimbra Java log after its timestamp: ` LEVEL  [thread] [ctx] category - message`. */
function zimbraBody(line: string, p: number, rec: LogRecord, ctx: EnvelopeContext): boolean {
  if (line.charCodeAt(p) !== C.Space) return false;
  p++;
  const levelEnd = line.indexOf(' ', p);
  if (levelEnd < 0) return false;
  const level = line.slice(p, levelEnd);
  p = levelEnd;
  while (line.charCodeAt(p) === C.Space) p++;
  if (line.charCodeAt(p) !== C.LBracket) return false;
  const threadEnd = line.indexOf('] ', p);
  if (threadEnd < 0) return false;
  const thread = line.slice(p + 1, threadEnd);
  p = threadEnd + 2;
  let context = '';
  if (line.charCodeAt(p) === C.LBracket) {
    // The context ends with `;]` (or is `[]`); user agents inside may hold spaces and brackets.
    let end = line.indexOf(';] ', p);
    if (end >= 0) end += 1;
    else end = line.indexOf('] ', p);
    if (end < 0) return false;
    context = line.slice(p + 1, end);
    p = end + 2;
  }
  const dash = line.indexOf(' - ', p);
  let category: string;
  if (dash < 0) {
    category = '';
    rec.message = line.slice(p);
  } else {
    category = line.slice(p, dash);
    rec.message = line.slice(dash + 3);
  }
  rec.host = ctx.defaultHost;
  rec.program = 'zimbra-mailbox';
  rec.pid = -1;
  rec.zimbra = { level, thread, context, category };
  return true;
}

/** RFC 5424 after `<PRI>1 `. */
function rfc5424(line: string, p: number, ctx: EnvelopeContext, rec: LogRecord): boolean {
  if (line.charCodeAt(p) === 45 /* - */) {
    rec.ts = Number.NaN;
    p += 1;
  } else {
    p = isoTime(line, p, ctx, rec);
    if (p < 0) return false;
  }
  if (line.charCodeAt(p) !== C.Space) return false;
  const fields: string[] = [];
  p++;
  for (let k = 0; k < 4; k++) {
    const sp = line.indexOf(' ', p);
    if (sp < 0) {
      if (k < 3) return false;
      fields.push(line.slice(p));
      p = line.length;
      break;
    }
    fields.push(line.slice(p, sp));
    p = sp + 1;
  }
  const [host = '-', app = '-', procid = '-'] = fields;
  // Structured data: '-' or one or more [id k="v" ...] elements; ']' may be escaped inside values.
  if (line.charCodeAt(p) === 45) {
    p += 2;
  } else {
    while (line.charCodeAt(p) === C.LBracket) {
      let q = p + 1;
      let inQuote = false;
      for (; q < line.length; q++) {
        const c = line.charCodeAt(q);
        if (c === 92 /* \ */) { q++; continue; }
        if (c === 34 /* " */) inQuote = !inQuote;
        else if (c === C.RBracket && !inQuote) break;
      }
      p = q + 1;
    }
    if (line.charCodeAt(p) === C.Space) p++;
  }
  let msg = p < line.length ? line.slice(p) : '';
  if (msg.charCodeAt(0) === 0xfeff) msg = msg.slice(1);
  rec.host = host === '-' ? ctx.defaultHost : host;
  rec.program = app === '-' ? '' : app;
  const pidNum = Number(procid);
  rec.pid = Number.isInteger(pidNum) && pidNum >= 0 ? pidNum : -1;
  rec.message = msg;
  return !Number.isNaN(rec.ts);
}

/**
 * Parse one line. Returns undefined when the line has no recognisable
 * envelope (counted as malformed by the caller).
 */
export function parseEnvelope(line: string, offset: number, ctx: EnvelopeContext): LogRecord | undefined {
  const rec = newRecord(ctx, offset);
  const fmt = ctx.format;
  let i = 0;
  let c = line.charCodeAt(0);
  if (c === C.Lt && fmt !== 'zimbra') {
    // <PRI>, from a network syslog receiver that kept it.
    const gt = line.indexOf('>', 1);
    if (gt < 2 || gt > 4) return undefined;
    i = gt + 1;
    c = line.charCodeAt(i);
    if (c === 49 /* 1 */ && line.charCodeAt(i + 1) === C.Space) {
      if (fmt !== 'auto' && fmt !== 'rfc5424') return undefined;
      return rfc5424(line, i + 2, ctx, rec) ? rec : undefined;
    }
  }
  if (fmt === 'rfc5424') return undefined;
  if (isDigit(c)) {
    if (fmt === 'rfc3164') return undefined;
    const p = isoTime(line, i, ctx, rec);
    if (p < 0) return undefined;
    // Zimbra: `yyyy-mm-dd hh:mm:ss,mmm LEVEL`.
    if (line.charCodeAt(i + 10) === C.Space && line.charCodeAt(i + 19) === 44) {
      if (fmt !== 'auto' && fmt !== 'zimbra') return undefined;
      return zimbraBody(line, p, rec, ctx) ? rec : undefined;
    }
    if (fmt === 'zimbra') return undefined;
    if (line.charCodeAt(p) !== C.Space) return undefined;
    return parseTagged(line, p + 1, rec, ctx.defaultHost, false) ? rec : undefined;
  }
  if (fmt === 'zimbra' || fmt === 'iso') return undefined;
  if (c === 64 /* @ */) {
    const p = tai64nTime(line, i, rec);
    if (p < 0) return undefined;
    return parseTagged(line, p, rec, ctx.defaultHost, false) ? rec : undefined;
  }
  const p = memoRfc3164Time(line, i, ctx, rec);
  if (p < 0) return undefined;
  return parseTagged(line, p, rec, ctx.defaultHost, false) ? rec : undefined;
}
