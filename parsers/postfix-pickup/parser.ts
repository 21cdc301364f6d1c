/**
 * Postfix pickup: locally submitted mail (sendmail/postdrop) entering the queue.
 *
 *   QID: uid=1000 from=<a>   → queue.pickup
 *   warning: / fatal: ...    → recognised
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf, leadingQueueId } from '../util.js';
import { isDiagnostic } from '../postfix-delivery/line.js';

export const postfixPickupParser: Parser = {
  id: 'postfix-pickup',
  programs: ['postfix/pickup'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid === '') return isDiagnostic(msg);
    const p = qid.length + 2;
    if (!msg.startsWith('uid=', p)) return isDiagnostic(msg, p);
    let i = p + 4;
    let uid = 0;
    const dStart = i;
    while (i < msg.length) {
      const c = msg.charCodeAt(i);
      if (c < 48 || c > 57) break;
      uid = uid * 10 + (c - 48);
      i++;
    }
    if (i === dStart || !msg.startsWith(' from=<', i)) return false;
    // from= is the last field: the address runs to the last `>`, so one holding `>` round-trips.
    const start = i + 7;
    const end = msg.lastIndexOf('>');
    if (end < start) return false;
    out.push({ kind: 'queue.pickup', ...baseOf(rec), queueId: qid, uid, sender: msg.slice(start, end) });
    return true;
  },
};
