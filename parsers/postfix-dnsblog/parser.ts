/**
 * postfix/dnsblog: postscreen's DNS list look-up helper.
 *
 *   addr 1.2.3.4 listed by domain zen.spamhaus.org as 127.0.0.4   → dnsbl
 *
 * (`blocked by domain` is accepted too.) Warnings (look-up errors, timeouts)
 * are recognised without an event.
 */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf } from '../util.js';

function parse(rec: LogRecord, out: Event[]): boolean {
  const msg = rec.message;
  if (msg.startsWith('addr ')) {
    const sp = msg.indexOf(' ', 5);
    if (sp < 0) return false;
    let at: number;
    if (msg.startsWith(' listed by domain ', sp)) at = sp + 18;
    else if (msg.startsWith(' blocked by domain ', sp)) at = sp + 19;
    else return false;
    const as = msg.indexOf(' as ', at);
    if (as < 0) return false;
    out.push({
      kind: 'dnsbl',
      ...baseOf(rec),
      ip: msg.slice(5, sp),
      list: msg.slice(at, as),
      reply: msg.slice(as + 4),
    });
    return true;
  }
  return msg.startsWith('warning: ') || msg.startsWith('fatal: ') || msg.startsWith('error: ') || msg.startsWith('panic: ');
}

export const postfixDnsblogParser: Parser = {
  id: 'postfix-dnsblog',
  programs: ['postfix/dnsblog'],
  parse,
};
