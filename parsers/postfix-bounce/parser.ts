/**
 * Postfix bounce: the notifications it creates about a message.
 *
 *   QID: sender non-delivery notification: NEWQID      → bounce.notify
 *   QID: sender delivery status notification: NEWQID   → bounce.notify
 *   QID: sender delay notification: NEWQID             → bounce.notify
 *   QID: postmaster non-delivery notification: NEWQID  → bounce.notify
 *   warning: / fatal: ...                              → recognised
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf, isQueueId, leadingQueueId } from '../util.js';
import { isDiagnostic } from '../postfix-delivery/line.js';

const NOTIFICATION = ' notification: ';

export const postfixBounceParser: Parser = {
  id: 'postfix-bounce',
  programs: ['postfix/bounce'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid === '') return isDiagnostic(msg);
    const p = qid.length + 2;
    const k = msg.indexOf(NOTIFICATION, p);
    if (k < 0) return isDiagnostic(msg, p);
    const childQueueId = msg.slice(k + NOTIFICATION.length).trimEnd();
    if (!isQueueId(childQueueId)) return false;
    out.push({
      kind: 'bounce.notify',
      ...baseOf(rec),
      queueId: qid,
      childQueueId,
      notification: msg.slice(p, k + NOTIFICATION.length - 2),
    });
    return true;
  },
};
