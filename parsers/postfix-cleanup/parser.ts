/**
 * Postfix cleanup:
 *
 *   QID: message-id=<id>                         → queue.messageid (the id as logged)
 *   QID: resent-message-id=<id>                  → recognised
 *   QID: ACTION: CLASS CONTENT from ORIGIN; from=<a> to=<b> proto=P helo=<h>[: TEXT]
 *                                                → cleanup.action (header/body checks)
 *   QID: milter-ACTION: STAGE from ORIGIN: REPLY; from=<a> to=<b> proto=P helo=<h>
 *                                                → cleanup.action (check milter)
 *   warning: / fatal: ...                        → recognised
 *
 * `message-id=` is on every message: startsWith only. The check lines are
 * rarer and are scanned with indexOf too (their content is attacker text,
 * so nothing here can backtrack).
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf, leadingQueueId, parseClient } from '../util.js';
import { angleEnd, isDiagnostic } from '../postfix-delivery/line.js';

type CleanupAction = Extract<Event, { kind: 'cleanup.action' }>;

/** header_checks / body_checks actions as cleanup logs them (`WARN` logs as `warning`). */
function isCheckAction(a: string): boolean {
  switch (a) {
    case 'reject':
    case 'warning':
    case 'hold':
    case 'discard':
    case 'redirect':
    case 'replace':
    case 'filter':
    case 'prepend':
    case 'info':
    case 'bcc':
    case 'strip':
      return true;
    default:
      return false;
  }
}

const AFTER_FROM = [' to=<', ' proto=', ' helo=<', ': '] as const;
const AFTER_TO = [' proto=', ' helo=<', ': '] as const;
const AFTER_HELO = [': '] as const;

/** Word of lowercase letters and `-` at `p` followed by `: `; its end, or -1. */
function actionEnd(msg: string, p: number): number {
  let i = p;
  while (i < msg.length) {
    const c = msg.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || c === 45)) break;
    i++;
  }
  if (i === p || msg.charCodeAt(i) !== 58 || msg.charCodeAt(i + 1) !== 32) return -1;
  return i;
}

function setOrigin(e: CleanupAction, origin: string): void {
  const c = parseClient(origin);
  if (c !== undefined) {
    e.ip = c.ip;
    e.clientHost = c.clientHost;
  } else {
    e.clientHost = origin;
  }
}

/**
 * The envelope tail ` from=<a> to=<b> proto=P helo=<h>` starting at `pos`
 * (every part optional); returns the position after it.
 */
function parseEnvelope(msg: string, pos: number, e: CleanupAction): number {
  if (msg.startsWith(' from=<', pos)) {
    const end = angleEnd(msg, pos + 7, AFTER_FROM);
    if (end < 0) return pos;
    e.from = msg.slice(pos + 7, end);
    pos = end + 1;
  }
  if (msg.startsWith(' to=<', pos)) {
    const end = angleEnd(msg, pos + 5, AFTER_TO);
    if (end < 0) return pos;
    e.to = msg.slice(pos + 5, end);
    pos = end + 1;
  }
  if (msg.startsWith(' proto=', pos)) {
    let end = pos + 7;
    while (end < msg.length) {
      const c = msg.charCodeAt(end);
      if (c === 32 || c === 58 || c === 59) break;
      end++;
    }
    e.proto = msg.slice(pos + 7, end);
    pos = end;
  }
  if (msg.startsWith(' helo=<', pos)) {
    const end = angleEnd(msg, pos + 7, AFTER_HELO);
    if (end < 0) return pos;
    e.helo = msg.slice(pos + 7, end);
    pos = end + 1;
  }
  return pos;
}

/**
 * Find ` from ORIGIN;` after `from`: ORIGIN has no spaces and is `host[ip]`,
 * `local` or `unknown`. The content before it is the (truncated) header or
 * body line that matched, which may itself contain ` from `.
 */
function findOrigin(msg: string, from: number): [number, number] | undefined {
  let k = msg.indexOf(' from ', from);
  while (k >= 0) {
    const s = k + 6;
    let i = s;
    while (i < msg.length) {
      const c = msg.charCodeAt(i);
      if (c === 32 || c === 59) break;
      i++;
    }
    if (i > s && msg.charCodeAt(i) === 59 /* ; */ && (i + 1 === msg.length || msg.charCodeAt(i + 1) === 32 || msg.charCodeAt(i + 1) === 58)) {
      const last = msg.charCodeAt(i - 1);
      if (last === 93 /* ] */ || msg.startsWith('local', s) || msg.startsWith('unknown', s)) return [s, i];
    }
    k = msg.indexOf(' from ', k + 1);
  }
  return undefined;
}

/** `QID: ACTION: CLASS CONTENT from ORIGIN; ...[: TEXT]` with ACTION already at `p..aEnd`. */
function parseCheck(rec: LogRecord, msg: string, queueId: string, action: string, aEnd: number, out: Event[]): boolean {
  const cStart = aEnd + 2;
  const sp = msg.indexOf(' ', cStart);
  if (sp < 0) return false;
  const check = msg.slice(cStart, sp);
  const origin = findOrigin(msg, sp);
  if (origin === undefined) return false;
  const [oStart, oEnd] = origin;
  const e: CleanupAction = {
    kind: 'cleanup.action',
    ...baseOf(rec),
    queueId,
    action,
    check,
    detail: msg.slice(sp + 1, oStart - 6),
  };
  setOrigin(e, msg.slice(oStart, oEnd));
  const pos = parseEnvelope(msg, oEnd + 1, e);
  if (msg.startsWith(': ', pos)) e.reason = msg.slice(pos + 2);
  out.push(e);
  return true;
}

/** `QID: milter-ACTION: STAGE from ORIGIN: REPLY; from=<a> to=<b> proto=P helo=<h>`. */
function parseMilter(rec: LogRecord, msg: string, queueId: string, action: string, aEnd: number, out: Event[]): boolean {
  const sStart = aEnd + 2;
  // ORIGIN is the first ` from X: ` whose X has no spaces.
  let k = msg.indexOf(' from ', sStart);
  let oEnd = -1;
  while (k >= 0) {
    let i = k + 6;
    while (i < msg.length) {
      const c = msg.charCodeAt(i);
      if (c === 32 || c === 58) break;
      i++;
    }
    // host[ip] may be IPv6 (colons inside the brackets): step to the `]`.
    const open = msg.indexOf('[', k + 6);
    if (open >= 0 && open < i) {
      const close = msg.indexOf(']', open);
      if (close > 0) {
        i = close + 1;
        while (i < msg.length && msg.charCodeAt(i) !== 58 && msg.charCodeAt(i) !== 32) i++;
      }
    }
    if (i > k + 6 && msg.charCodeAt(i) === 58 && msg.charCodeAt(i + 1) === 32) {
      oEnd = i;
      break;
    }
    k = msg.indexOf(' from ', k + 1);
  }
  if (oEnd < 0) return false;
  const rStart = oEnd + 2;
  let semi = msg.indexOf('; from=<', rStart);
  if (semi < 0) semi = msg.indexOf('; to=<', rStart);
  if (semi < 0) semi = msg.indexOf('; proto=', rStart);
  if (semi < 0) semi = msg.indexOf('; helo=<', rStart);
  const rEnd = semi >= 0 ? semi : msg.charCodeAt(msg.length - 1) === 59 ? msg.length - 1 : msg.length;
  const e: CleanupAction = {
    kind: 'cleanup.action',
    ...baseOf(rec),
    queueId,
    action,
    check: 'milter',
    detail: msg.slice(sStart, k),
    reason: msg.slice(rStart, rEnd),
  };
  setOrigin(e, msg.slice(k + 6, oEnd));
  if (semi >= 0) parseEnvelope(msg, semi + 1, e);
  out.push(e);
  return true;
}

export const postfixCleanupParser: Parser = {
  id: 'postfix-cleanup',
  programs: ['postfix/cleanup'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid === '') return isDiagnostic(msg);
    const p = qid.length + 2;
    if (msg.startsWith('message-id=', p)) {
      out.push({
        kind: 'queue.messageid',
        ts: rec.ts,
        host: rec.host,
        program: rec.program,
        src: { file: rec.file, offset: rec.offset },
        queueId: qid,
        messageId: msg.slice(p + 11),
      });
      return true;
    }
    if (msg.startsWith('resent-message-id=', p)) return true;
    const aEnd = actionEnd(msg, p);
    if (aEnd < 0) return false;
    if (msg.startsWith('milter-', p)) {
      const action = msg.slice(p + 7, aEnd);
      if (action !== 'reject' && action !== 'discard' && action !== 'hold') return false;
      return parseMilter(rec, msg, qid, action, aEnd, out);
    }
    const action = msg.slice(p, aEnd);
    if (!isCheckAction(action)) return false;
    return parseCheck(rec, msg, qid, action, aEnd, out);
  },
};
