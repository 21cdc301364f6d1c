/**
 * postfix/anvil: the connection/rate accounting server. It logs the peak of
 * each statistic once per anvil_status_update_time:
 *
 *   statistics: max connection rate 1/60s for (smtp:1.2.3.4) at Nov 27 10:00:00
 *   statistics: max connection count 1 for (smtp:1.2.3.4) at ...
 *   statistics: max message|recipient|newtls|auth rate 1/60s for (submission:1.2.3.4) at ...
 *   statistics: max cache size 3 at ...
 *
 * → anvil { statistic: `connection-rate` | `connection-count` | `message-rate`
 * | `recipient-rate` | `newtls-rate` | `auth-rate` | `cache-size` | ..., value,
 * period (seconds, for rates), service, ip }.
 */
import type { Event, EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import type { Parser } from '../types.js';
import { baseOf } from '../util.js';

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Split anvil's `service:address` ident. The service is a master.cf name
 * (`smtp`, `submission`) or `host:port` (`127.0.0.1:10025`); the address may
 * be IPv6, so: IPv4 address → split at the last colon; otherwise at the first
 * colon, or the second when the service is a `host:port` pair.
 */
function splitIdent(ident: string): { service: string; ip: string } | undefined {
  const last = ident.lastIndexOf(':');
  if (last <= 0) return undefined;
  if (ident.indexOf('.', last) > last) return { service: ident.slice(0, last), ip: ident.slice(last + 1) };
  let first = ident.indexOf(':');
  if (ident.lastIndexOf('.', first) >= 0) {
    const second = ident.indexOf(':', first + 1);
    if (second > 0) first = second;
  }
  return { service: ident.slice(0, first), ip: ident.slice(first + 1) };
}

function parse(rec: LogRecord, out: Event[]): boolean {
  const msg = rec.message;
  if (msg.startsWith('statistics: max ')) {
    const start = 16;
    // The statistic's name runs to the first token that starts with a digit.
    let i = start;
    while (i < msg.length) {
      const sp = msg.indexOf(' ', i);
      if (sp < 0) return false;
      if (isDigit(msg.charCodeAt(sp + 1))) {
        i = sp;
        break;
      }
      i = sp + 1;
    }
    const name = msg.slice(start, i);
    const vStart = i + 1;
    let j = vStart;
    while (j < msg.length && isDigit(msg.charCodeAt(j))) j++;
    const value = Number(msg.slice(vStart, j));
    if (j === vStart || !Number.isFinite(value)) return false;
    const ev: EventOf<'anvil'> = { kind: 'anvil', ...baseOf(rec), statistic: name.replace(/ /g, '-'), value };
    if (msg.charCodeAt(j) === 47 /* / */) {
      let k = j + 1;
      while (k < msg.length && isDigit(msg.charCodeAt(k))) k++;
      if (k > j + 1) ev.period = Number(msg.slice(j + 1, k));
      j = k;
      if (msg.charCodeAt(j) === 115 /* s */) j++;
    }
    if (msg.startsWith(' for (', j)) {
      const close = msg.indexOf(')', j + 6);
      if (close > 0) {
        const id = splitIdent(msg.slice(j + 6, close));
        if (id !== undefined) {
          ev.service = id.service;
          ev.ip = id.ip;
        }
      }
    }
    out.push(ev);
    return true;
  }
  return msg.startsWith('warning: ') || msg.startsWith('fatal: ') || msg.startsWith('error: ') || msg.startsWith('panic: ');
}

export const postfixAnvilParser: Parser = {
  id: 'postfix-anvil',
  programs: ['postfix/anvil'],
  parse,
};
