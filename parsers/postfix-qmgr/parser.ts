/**
 * Postfix queue manager (qmgr, and oqmgr/nqmgr, its older names):
 *
 *   QID: from=<a>, size=N, nrcpt=N (queue active)      → queue.from
 *   QID: removed                                       → queue.removed
 *   QID: from=<a>, status=expired, returned to sender  → queue.expired
 *   QID: to=<x>, relay=none, ..., status=deferred (...) → delivery (agent qmgr)
 *   QID: skipped, still being delivered / warning: ...  → recognised
 *
 * `from=` and `removed` are two of the most frequent lines in a mail log:
 * indexOf/startsWith only, no regex.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf, leadingQueueId } from '../util.js';
import { angleEnd, isDiagnostic, parseDeliveryLine } from '../postfix-delivery/line.js';

const AFTER_FROM = [', size=', ', status='] as const;

/** Non-negative decimal integer starting at `i`, up to a non-digit; -1 when none. */
function intAt(msg: string, i: number): number {
  let v = 0;
  let digits = 0;
  while (i < msg.length) {
    const c = msg.charCodeAt(i);
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    i++;
    digits++;
  }
  return digits > 0 ? v : -1;
}

function isBlankFrom(msg: string, i: number): boolean {
  for (; i < msg.length; i++) {
    const c = msg.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}

function parseFrom(rec: LogRecord, msg: string, queueId: string, p: number, out: Event[]): boolean {
  const start = p + 6;
  const end = angleEnd(msg, start, AFTER_FROM);
  if (end < 0 || end + 1 >= msg.length) return false;
  const sender = msg.slice(start, end);
  if (msg.startsWith(', size=', end + 1)) {
    const e: Extract<Event, { kind: 'queue.from' }> = { kind: 'queue.from', ts: rec.ts, host: rec.host, program: rec.program, src: { file: rec.file, offset: rec.offset }, queueId, sender };
    const size = intAt(msg, end + 8);
    if (size >= 0) e.size = size;
    const k = msg.indexOf(', nrcpt=', end + 8);
    if (k >= 0) {
      const nrcpt = intAt(msg, k + 8);
      if (nrcpt >= 0) e.nrcpt = nrcpt;
    }
    out.push(e);
    return true;
  }
  // `, status=expired, returned to sender` / `, status=force-expired, ...`
  const sStart = end + 10;
  let sEnd = msg.indexOf(',', sStart);
  if (sEnd < 0) sEnd = msg.length;
  const reason = msg.slice(sStart, sEnd).trim();
  if (reason !== 'expired' && reason !== 'force-expired') return false;
  out.push({ kind: 'queue.expired', ...baseOf(rec), queueId, sender, reason });
  return true;
}

export const postfixQmgrParser: Parser = {
  id: 'postfix-qmgr',
  programs: ['postfix/qmgr', 'postfix/oqmgr', 'postfix/nqmgr'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid === '') return isDiagnostic(msg);
    const p = qid.length + 2;
    switch (msg.charCodeAt(p)) {
      case 102: // f
        if (msg.startsWith('from=<', p)) return parseFrom(rec, msg, qid, p, out);
        return false;
      case 114: // r
        if (msg.startsWith('removed', p) && isBlankFrom(msg, p + 7)) {
          out.push({ kind: 'queue.removed', ts: rec.ts, host: rec.host, program: rec.program, src: { file: rec.file, offset: rec.offset }, queueId: qid });
          return true;
        }
        return false;
      case 116: // t
        if (msg.startsWith('to=<', p)) return parseDeliveryLine(rec, msg, qid, p, 'qmgr', out);
        return false;
      case 115: // s
        return msg.startsWith('skipped, still being delivered', p);
      default:
        return isDiagnostic(msg, p);
    }
  },
};
