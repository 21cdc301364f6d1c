/**
 * Small, allocation-light scanners shared by the parsers. They use indexOf
 * and charCode checks instead of regular expressions: this is the hot path
 * (see DESIGN.md, "Hot path first"), and none of them can backtrack.
 */
import type { LogRecord, Source } from '../src/core/record.js';

/**
 * Event base fields copied from the record. For the rare events only: a
 * frequent event writes `ts, host, program, src: srcOf(rec)` out, because
 * spreading this object after `kind` takes V8's slow path (~50 ns and one
 * more object per event). Same fields, same order either way.
 */
export function baseOf(rec: LogRecord): { ts: number; host: string; program: string; src: Source } {
  return { ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec) };
}

/** Where an event's line is: its file and byte offset. */
export function srcOf(rec: LogRecord): Source {
  return { file: rec.file, offset: rec.offset };
}

function isQidChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/**
 * The Postfix queue id a message starts with (`3F2A1C0B4: ...`), or '' when
 * the message does not start with one. Short ids are hex (6+ chars); long ids
 * (enable_long_queue_ids) are up to ~20 base-52 chars. `NOQUEUE` is not an id.
 */
export function leadingQueueId(msg: string): string {
  const n = msg.length;
  let i = 0;
  while (i < n && i < 24 && isQidChar(msg.charCodeAt(i))) i++;
  if (i < 5 || i >= n || msg.charCodeAt(i) !== 58 /* : */) return '';
  if (i + 1 < n && msg.charCodeAt(i + 1) !== 32) return '';
  const id = msg.slice(0, i);
  if (id === 'NOQUEUE' || id === 'warning' || id === 'error' || id === 'fatal' || id === 'panic') return '';
  return id;
}

/** True when `id` looks like a Postfix queue id (short hex or long form). */
export function isQueueId(id: string): boolean {
  if (id.length < 5 || id.length > 24) return false;
  for (let i = 0; i < id.length; i++) if (!isQidChar(id.charCodeAt(i))) return false;
  return id !== 'NOQUEUE';
}

/**
 * Value of `key=<...>` in msg (without the brackets), or undefined. The
 * closing `>` is the first one followed by `,`, ` ` or end of line, so an
 * address holding `>` still round-trips.
 */
export function angleValue(msg: string, key: string, from = 0): string | undefined {
  const k = msg.indexOf(key + '=<', from);
  if (k < 0) return undefined;
  const start = k + key.length + 2;
  let end = msg.indexOf('>', start);
  while (end >= 0) {
    const next = msg.charCodeAt(end + 1);
    if (end + 1 >= msg.length || next === 44 || next === 32) return msg.slice(start, end);
    end = msg.indexOf('>', end + 1);
  }
  return msg.slice(start);
}

/**
 * Value of `key=value` up to the next `, ` / `,` / space / `;` (whichever
 * comes first), or undefined. Looks for the key at a word boundary.
 */
export function plainValue(msg: string, key: string, from = 0): string | undefined {
  const needle = key + '=';
  let k = msg.indexOf(needle, from);
  while (k > 0) {
    const prev = msg.charCodeAt(k - 1);
    if (prev === 32 || prev === 44 || prev === 59 || prev === 91 || prev === 40) break;
    k = msg.indexOf(needle, k + 1);
  }
  if (k < 0) return undefined;
  const start = k + needle.length;
  let end = start;
  const n = msg.length;
  while (end < n) {
    const c = msg.charCodeAt(end);
    if (c === 44 || c === 32 || c === 59) break;
    end++;
  }
  return msg.slice(start, end);
}

export interface ClientAddr {
  clientHost: string;
  ip: string;
  port?: number;
}

/**
 * Parse `host[ip]` or `host[ip]:port` at `start` (up to `end`, default end
 * of string). IPv6 appears as `[2001:db8::1]` or `[ipv6:2001:db8::1]` in
 * some contexts; the prefix is dropped.
 */
export function parseClient(s: string, start = 0, end = s.length): ClientAddr | undefined {
  const open = s.indexOf('[', start);
  if (open < 0 || open >= end) return undefined;
  const close = s.indexOf(']', open + 1);
  if (close < 0 || close > end) return undefined;
  let ip = s.slice(open + 1, close);
  if (ip.startsWith('ipv6:') || ip.startsWith('IPv6:')) ip = ip.slice(5);
  const out: ClientAddr = { clientHost: s.slice(start, open), ip };
  if (s.charCodeAt(close + 1) === 58 /* : */) {
    let p = 0;
    let i = close + 2;
    let digits = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      p = p * 10 + (c - 48);
      i++;
      digits++;
    }
    if (digits > 0) out.port = p;
  }
  return out;
}

/**
 * The postfix service of a program tag: `postfix/submission/smtpd` →
 * `submission`, `postfix-out/smtpd` → `smtpd`. Scans char codes rather than
 * using String#lastIndexOf (a slow path in V8): this runs for every smtpd event.
 */
export function postfixService(program: string): string {
  let last = program.length - 1;
  while (last >= 0 && program.charCodeAt(last) !== 47 /* / */) last--;
  if (last < 0) return program;
  let prev = last - 1;
  while (prev >= 0 && program.charCodeAt(prev) !== 47) prev--;
  return prev < 0 ? program.slice(last + 1) : program.slice(prev + 1, last);
}

/** Parse a decimal number; undefined when `s` is not one. */
export function num(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}
