/**
 * Postfix postsuper: an administrator (or floodgate's hold action) working on the queue.
 *
 *   QID: removed / placed on hold / released from hold / requeued / expired → postsuper (queueId)
 *   Deleted: 3 messages / Placed on hold: 2 messages / Released from hold: 1 message /
 *   Requeued: 4 messages / Expired: N messages                             → postsuper (count)
 *   warning: / fatal: ..., Renamed to match inode number: N messages       → recognised
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf, leadingQueueId } from '../util.js';
import { isDiagnostic } from '../postfix-delivery/line.js';

type Action = Extract<Event, { kind: 'postsuper' }>['action'];

function perMessage(s: string): Action | undefined {
  switch (s) {
    case 'removed':
      return 'removed';
    case 'placed on hold':
      return 'hold';
    case 'released from hold':
      return 'released';
    case 'requeued':
      return 'requeued';
    case 'expired':
    case 'force-expired':
      return 'expired';
    default:
      return undefined;
  }
}

function summary(s: string): Action | undefined {
  switch (s) {
    case 'Deleted':
      return 'removed';
    case 'Placed on hold':
      return 'hold';
    case 'Released from hold':
      return 'released';
    case 'Requeued':
      return 'requeued';
    case 'Expired':
    case 'Force-expired':
      return 'expired';
    default:
      return undefined;
  }
}

export const postfixPostsuperParser: Parser = {
  id: 'postfix-postsuper',
  programs: ['postfix/postsuper'],
  parse(rec: LogRecord, out: Event[]): boolean {
    const msg = rec.message;
    const qid = leadingQueueId(msg);
    if (qid !== '') {
      const action = perMessage(msg.slice(qid.length + 2).trimEnd());
      if (action !== undefined) {
        out.push({ kind: 'postsuper', ...baseOf(rec), queueId: qid, action });
        return true;
      }
      if (isDiagnostic(msg, qid.length + 2)) return true;
      // `Deleted: 3 messages` also looks like `QID: ...`: fall through to the summaries.
    }
    if (isDiagnostic(msg)) return true;
    const colon = msg.indexOf(': ');
    if (colon < 0) return false;
    const m = /^(\d+) messages?\s*$/.exec(msg.slice(colon + 2));
    if (m === null) return false;
    if (msg.startsWith('Renamed to match inode number', 0)) return true;
    const action = summary(msg.slice(0, colon));
    if (action === undefined) return false;
    out.push({ kind: 'postsuper', ...baseOf(rec), action, count: Number(m[1]) });
    return true;
  },
};
