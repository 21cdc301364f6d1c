/**
 * The correlator keeps open queue ids per host (a Map per host, the last host
 * at hand, a host dropped when nothing of it is open): hosts taking turns,
 * a host that empties and comes back, and the counts must all stay right.
 */
import { describe, expect, it } from 'vitest';
import type { Event } from '../src/core/events.js';
import { Correlator } from '../src/correlator/correlator.js';
import type { Message } from '../src/correlator/message.js';

const ts = Date.UTC(2026, 10, 27, 10, 0, 0);
let offset = 0;
const base = (host: string, program: string) => ({ ts, host, program, src: { file: 't.log', offset: offset++ } });
const client = (host: string, queueId: string, account: string): Event => ({ kind: 'smtp.client', ...base(host, 'postfix/smtpd'), queueId, ip: '203.0.113.1', clientHost: 'unknown', service: 'smtpd', account, saslMethod: 'LOGIN' });
const from = (host: string, queueId: string, sender: string): Event => ({ kind: 'queue.from', ...base(host, 'postfix/qmgr'), queueId, sender, size: 10, nrcpt: 1 });
const removed = (host: string, queueId: string): Event => ({ kind: 'queue.removed', ...base(host, 'postfix/qmgr'), queueId });

describe('correlator open queue ids per host', () => {
  it('joins lines of hosts taking turns, the same queue id on each, and counts what is open', () => {
    const out: Message[] = [];
    const c = new Correlator((m) => out.push(m));
    for (const h of ['a', 'b', 'c']) c.push(client(h, 'Q00001', `u@${h}`));
    for (const h of ['c', 'a', 'b']) c.push(from(h, 'Q00001', `s@${h}`));
    expect(c.size).toBe(3);
    expect(c.stats.open).toBe(3);
    c.push(removed('b', 'Q00001'));
    c.push(removed('a', 'Q00001'));
    expect(c.stats.open).toBe(1);
    expect(out.map((m) => [m.host, m.saslUser, m.sender])).toEqual([
      ['b', 'u@b', 's@b'],
      ['a', 'u@a', 's@a'],
    ]);
    c.flush();
    expect(out.map((m) => m.host)).toEqual(['b', 'a', 'c']);
  });

  it('opens a host again after everything of it was removed', () => {
    const out: Message[] = [];
    const c = new Correlator((m) => out.push(m));
    c.push(client('mx1', 'Q00001', 'one'));
    c.push(removed('mx1', 'Q00001'));
    expect(c.size).toBe(0);
    // The host's Map is gone; these must land in a new one, not in the dropped one.
    c.push(client('mx1', 'Q00002', 'two'));
    c.push(from('mx1', 'Q00002', 'two@x'));
    c.push(client('mx2', 'Q00003', 'three'));
    c.push(removed('mx1', 'Q00002'));
    expect(out.map((m) => [m.queueId, m.saslUser, m.sender, m.complete])).toEqual([
      ['Q00001', 'one', undefined, true],
      ['Q00002', 'two', 'two@x', true],
    ]);
    expect(c.size).toBe(1);
    expect(c.stats.peakOpen).toBe(2);
  });

  it('sheds the least recently touched queue id whatever its host', () => {
    const out: Message[] = [];
    const c = new Correlator((m) => out.push(m), { maxEntries: 2 });
    c.push(client('a', 'Q00001', 'one'));
    c.push(client('b', 'Q00002', 'two'));
    c.push(from('a', 'Q00001', 'x'));
    c.push(client('c', 'Q00003', 'three'));
    expect(out.map((m) => [m.host, m.queueId, m.end])).toEqual([['b', 'Q00002', 'shed']]);
    expect(c.size).toBe(2);
  });
});
