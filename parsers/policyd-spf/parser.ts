/**
 * SPF policy daemons for Postfix.
 *
 * - `policyd-spf`: the Python daemon (pypolicyd-spf / spf-engine). One line per
 *   check: `prepend Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=...;
 *   helo=...; envelope-from=...; receiver=...`, the `Pass; identity=...` form, or the
 *   reject text `550 5.7.23 Message rejected due to: SPF fail - not authorized. ...`.
 * - `postfix/policy-spf`: the Perl daemon (postfix-policyd-spf-perl). The check is
 *   `[queue id]: SPF pass (Mechanism 'ip4:...' matched): Envelope-from: a@b` (or
 *   `HELO-name: h`); the `Policy action=...` line that follows restates it (it is
 *   recognised without a second event).
 */
import { spfResults, type Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { leadingQueueId, srcOf } from '../util.js';

type SpfEvent = Extract<Event, { kind: 'spf' }>;
type SpfResult = SpfEvent['result'];

const resultSet = new Set<string>(spfResults);

/** Lowercased SPF result, or undefined when `word` is not one. */
function spfResult(word: string): SpfResult | undefined {
  const w = word.toLowerCase();
  if (resultSet.has(w)) return w as SpfResult;
  if (w === 'error' || w === 'temporary error') return 'temperror';
  if (w === 'permanent error') return 'permerror';
  return undefined;
}

/**
 * `key=value` in a `; `-separated list, searched from `from` at a word
 * boundary (start, space or `;`); value ends at `;` or end. Surrounding
 * double quotes are dropped (the Perl daemon quotes envelope-from).
 */
function kv(msg: string, key: string, from: number): string | undefined {
  const needle = key + '=';
  let k = msg.indexOf(needle, from);
  while (k >= 0) {
    const prev = k === 0 ? 32 : msg.charCodeAt(k - 1);
    if (prev === 32 || prev === 59 || prev === 63 /* ? */) break;
    k = msg.indexOf(needle, k + 1);
  }
  if (k < 0) return undefined;
  const start = k + needle.length;
  let end = msg.indexOf(';', start);
  if (end < 0) end = msg.length;
  let v = msg.slice(start, end);
  if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
  return v;
}

/** Fill ip/helo/sender/receiver/identity from a key=value list (Received-SPF style). */
function fillFields(ev: SpfEvent, msg: string, from: number): void {
  const ip = kv(msg, 'client-ip', from);
  if (ip) ev.ip = ip;
  const helo = kv(msg, 'helo', from);
  if (helo) ev.helo = helo;
  const sender = kv(msg, 'envelope-from', from);
  if (sender && sender !== '<>') ev.sender = sender;
  const receiver = kv(msg, 'receiver', from);
  if (receiver && receiver !== '<UNKNOWN>') ev.receiver = receiver;
  const identity = kv(msg, 'identity', from);
  if (identity) ev.identity = identity;
}

function newEvent(rec: LogRecord, daemon: 'python' | 'perl', result: SpfResult): SpfEvent {
  return { kind: 'spf', ts: rec.ts, host: rec.host, program: rec.program, src: srcOf(rec), daemon, result };
}

/** `Pass (reason) identity=...` or `Pass; identity=...` at i (Python daemon). */
function pythonResult(rec: LogRecord, msg: string, i: number, out: Event[]): boolean {
  let e = i;
  const n = msg.length;
  while (e < n) {
    const c = msg.charCodeAt(e);
    if (c === 32 || c === 59) break;
    e++;
  }
  const result = spfResult(msg.slice(i, e));
  if (result === undefined) return false;
  const ev = newEvent(rec, 'python', result);
  let p = e;
  let reason: string | undefined;
  if (msg.charCodeAt(p) === 32 && msg.charCodeAt(p + 1) === 40 /* ( */) {
    const close = msg.indexOf(') ', p + 2);
    const end = close >= 0 ? close : msg.lastIndexOf(')');
    if (end > p) {
      reason = msg.slice(p + 2, end);
      p = end + 1;
    }
  }
  fillFields(ev, msg, p);
  // `Pass (mailfrom) identity=mailfrom`: the comment only repeats the identity.
  if (reason !== undefined && reason !== ev.identity) ev.reason = reason;
  out.push(ev);
  return true;
}

/** First words of the Python daemon's debug / housekeeping lines. */
const pythonRoutine = [
  'ERROR', 'Error', 'WARNING', 'Warning', 'Starting', 'Config:', 'spfcheck:', 'Cached data', 'Action:',
  'Header field not prepended', 'Read line:', 'Found the end of entry', 'Found data', 'Found end',
  'Exiting', 'Exiting:', '_get_resultcodes', 'Whitelist', 'skip_addresses', 'Not checking',
  'None - no SPF record', 'HELO check', 'Mail From check', 'Mail From', 'IP Address', 'Domain ',
  'Lookup', 'Policy', 'Result', 'Header', 'dunno', 'DUNNO', 'spf_result', 'End', 'Traceback',
  'Skipped', 'Skipping', 'Scoping', 'Received-SPF', 'debugLevel', 'sys.argv', 'Found entry',
];

function parsePython(rec: LogRecord, msg: string, out: Event[]): boolean {
  if (msg.startsWith('prepend ')) {
    // `prepend Received-SPF: Pass (...) identity=...` or `prepend Authentication-Results: host; spf=pass ...`.
    if (msg.startsWith('Received-SPF: ', 8)) return pythonResult(rec, msg, 22, out);
    if (msg.startsWith('Authentication-Results: ', 8)) {
      const k = msg.indexOf('spf=', 32);
      if (k < 0) return true;
      let e = k + 4;
      while (e < msg.length && msg.charCodeAt(e) !== 32 && msg.charCodeAt(e) !== 59) e++;
      const result = spfResult(msg.slice(k + 4, e));
      if (result === undefined) return false;
      const ev = newEvent(rec, 'python', result);
      const mf = msg.indexOf('smtp.mailfrom=', e);
      if (mf >= 0) {
        let me = msg.indexOf(' ', mf);
        if (me < 0) me = msg.length;
        const v = msg.slice(mf + 14, me).replace(/;$/, '');
        if (v) ev.sender = v;
        ev.identity = 'mailfrom';
      }
      const hl = msg.indexOf('smtp.helo=', e);
      if (hl >= 0) {
        let he = msg.indexOf(' ', hl);
        if (he < 0) he = msg.length;
        const v = msg.slice(hl + 10, he).replace(/;$/, '');
        if (v) ev.helo = v;
        if (mf < 0) ev.identity = 'helo';
      }
      out.push(ev);
      return true;
    }
    return true;
  }
  if (msg.startsWith('Received-SPF: ')) return pythonResult(rec, msg, 14, out);
  // Reject/defer action text: `550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see ...`.
  const due = msg.indexOf('due to: SPF ');
  if (due >= 0 || msg.startsWith('SPF ')) {
    const s = due >= 0 ? due + 12 : 4;
    let e = s;
    while (e < msg.length) {
      const c = msg.charCodeAt(e);
      if (c === 32 || c === 46 || c === 58 || c === 59) break;
      e++;
    }
    let word = msg.slice(s, e);
    if (word === 'Permanent' || word === 'Temporary') {
      const e2 = msg.indexOf(' ', e + 1);
      word = msg.slice(s, e2 < 0 ? msg.length : e2).replace(/[.:;]+$/, '');
    }
    const result = spfResult(word);
    if (result === undefined) return false;
    const ev = newEvent(rec, 'python', result);
    // Newer spf-engine: `...;identity=mailfrom;client-ip=...`; older: `Why?s=mfrom;id=a@b;ip=...;r=...`.
    fillFields(ev, msg, e);
    if (ev.ip === undefined) {
      const ip = kv(msg, 'ip', e);
      if (ip) ev.ip = ip;
      const id = kv(msg, 'id', e);
      if (id && ev.sender === undefined) ev.sender = id;
      const r = kv(msg, 'r', e);
      if (r && r !== '<UNKNOWN>' && ev.receiver === undefined) ev.receiver = r;
      const sc = kv(msg, 's', e);
      if (sc && ev.identity === undefined) ev.identity = sc === 'mfrom' ? 'mailfrom' : sc;
    }
    let re = msg.indexOf('. Please see', e);
    if (re < 0) re = msg.indexOf(';', e);
    if (re < 0) re = msg.length;
    const dash = msg.indexOf(' - ', e);
    if (dash >= 0 && dash < re) ev.reason = msg.slice(dash + 3, re);
    out.push(ev);
    return true;
  }
  // `Pass; identity=mailfrom; client-ip=...` or `Permerror (why) identity=...` (result first).
  let w = 0;
  while (w < msg.length && w < 16) {
    const c = msg.charCodeAt(w);
    if (c === 59 || c === 32) break;
    w++;
  }
  if (w > 0 && (msg.charCodeAt(w) === 59 || msg.startsWith(' (', w)) && spfResult(msg.slice(0, w)) !== undefined) {
    return pythonResult(rec, msg, 0, out);
  }
  for (const w of pythonRoutine) if (msg.startsWith(w)) return true;
  return false;
}

function parsePerl(rec: LogRecord, msg: string, out: Event[]): boolean {
  // Optional queue id, then `: ` (the id is empty before DATA, leaving a bare `: `).
  let p = 0;
  const qid = leadingQueueId(msg);
  if (qid !== '') p = qid.length + 2;
  else if (msg.startsWith(': ')) p = 2;
  if (msg.startsWith('SPF ', p)) {
    const s = p + 4;
    const paren = msg.indexOf(' (', s);
    const colon = msg.indexOf(': ', s);
    const wordEnd = paren >= 0 && (colon < 0 || paren < colon) ? paren : colon;
    if (wordEnd < 0) return false;
    const result = spfResult(msg.slice(s, wordEnd));
    if (result === undefined) return false;
    const ev = newEvent(rec, 'perl', result);
    // The reason may hold `): ` itself; the identity label is the last `): Envelope-from: ` / `): HELO-name: `.
    let label = msg.lastIndexOf(': Envelope-from: ');
    let identity = 'mailfrom';
    let labelLen = 17;
    const helo = msg.lastIndexOf(': HELO-name: ');
    if (helo > label) {
      label = helo;
      identity = 'helo';
      labelLen = 13;
    }
    if (label < 0) return false;
    const value = msg.slice(label + labelLen);
    if (identity === 'helo') {
      if (value) ev.helo = value;
    } else if (value && value !== '<>') ev.sender = value;
    ev.identity = identity;
    if (wordEnd === paren && msg.charCodeAt(label - 1) === 41 /* ) */ && label - 1 > paren + 2) {
      ev.reason = msg.slice(paren + 2, label - 1);
    }
    out.push(ev);
    return true;
  }
  if (msg.startsWith('Policy action=', p)) return true;
  if (msg.startsWith('handler ', p)) return true;
  if (msg.startsWith('Attribute', p) || msg.startsWith('Starting', p) || msg.startsWith('Exiting', p)) return true;
  return false;
}

export const policydSpfParser: Parser = {
  id: 'policyd-spf',
  programs: ['policyd-spf', 'postfix/policy-spf'],
  parse(rec: LogRecord, out: Event[]): boolean {
    // The Perl daemon logs as postfix/policy-spf (any instance prefix); the Python one as policyd-spf.
    return rec.program.startsWith('postfix') ? parsePerl(rec, rec.message, out) : parsePython(rec, rec.message, out);
  },
};
