import { describe, expect, it } from 'vitest';
import type { Event, EventOf } from '../src/core/events.js';
import { Correlator, type CorrelatorOptions } from '../src/correlator/correlator.js';
import type { Message } from '../src/correlator/message.js';

/** Builds events the way parsers would, with a running clock and offsets. */
function scenario(opts: CorrelatorOptions = {}) {
  const out: Message[] = [];
  const c = new Correlator((m) => out.push(m), opts);
  let ts = Date.UTC(2026, 10, 27, 10, 0, 0);
  let offset = 0;
  const base = (host = 'mx1', program = 'postfix/smtpd') => ({ ts, host, program, src: { file: 't.log', offset: offset++ } });
  const push = (e: Event) => c.push(e);
  const api = {
    out,
    c,
    advance(ms: number) {
      ts += ms;
    },
    client(q: string, ip: string, account?: string, host = 'mx1') {
      const e: EventOf<'smtp.client'> = { kind: 'smtp.client', ...base(host), queueId: q, ip, clientHost: 'unknown', service: 'submission' };
      if (account) Object.assign(e, { account, saslMethod: 'LOGIN' });
      push(e);
    },
    from(q: string, sender: string, nrcpt = 1, host = 'mx1') {
      push({ kind: 'queue.from', ...base(host, 'postfix/qmgr'), queueId: q, sender, size: 1000, nrcpt });
    },
    msgid(q: string, id: string) {
      push({ kind: 'queue.messageid', ...base('mx1', 'postfix/cleanup'), queueId: q, messageId: id });
    },
    deliver(q: string, to: string, status: 'sent' | 'deferred' | 'bounced', relay = 'mx.remote.example[192.0.2.25]:25', queuedAs?: string) {
      const relayIp = /\[([^\]]+)\]/.exec(relay)?.[1];
      const e: EventOf<'delivery'> = { kind: 'delivery', ...base('mx1', 'postfix/smtp'), queueId: q, agent: 'smtp', to, relay, status, reply: '250 ok', dsn: status === 'sent' ? '2.0.0' : '4.4.1' };
      if (relayIp) e.relayIp = relayIp;
      if (queuedAs) e.queuedAs = queuedAs;
      push(e);
    },
    removed(q: string, host = 'mx1') {
      push({ kind: 'queue.removed', ...base(host, 'postfix/qmgr'), queueId: q });
    },
    bounce(q: string, child: string) {
      push({ kind: 'bounce.notify', ...base('mx1', 'postfix/bounce'), queueId: q, childQueueId: child, notification: 'sender non-delivery notification' });
    },
    amavis(q: string, queuedAs: string[]) {
      push({ kind: 'amavis', ...base('mx1', 'amavis'), verdict: 'Passed', category: 'CLEAN', sender: 'a@example.com', recipients: ['x@gmail.com'], queueId: q, queuedAs, hits: -1 });
    },
  };
  return api;
}

describe('correlator', () => {
  it('joins one message with several recipients and emits on removed', () => {
    const s = scenario();
    s.client('AAA111', '203.0.113.9', 'alice@example.com');
    s.msgid('AAA111', '<m1@example.com>');
    s.from('AAA111', 'alice@example.com', 3);
    s.deliver('AAA111', 'x@gmail.com', 'sent');
    s.deliver('AAA111', 'y@yahoo.com', 'sent');
    s.deliver('AAA111', 'z@nowhere.invalid', 'bounced');
    expect(s.out).toHaveLength(0);
    s.removed('AAA111');
    expect(s.out).toHaveLength(1);
    const m = s.out[0]!;
    expect(m).toMatchObject({ host: 'mx1', queueId: 'AAA111', clientIp: '203.0.113.9', saslUser: 'alice@example.com', sender: 'alice@example.com', messageId: '<m1@example.com>', nrcpt: 3, complete: true, end: 'removed', origin: 'smtp' });
    expect(m.recipients.map((r) => [r.address, r.status])).toEqual([
      ['x@gmail.com', 'sent'],
      ['y@yahoo.com', 'sent'],
      ['z@nowhere.invalid', 'bounced'],
    ]);
  });

  it('keeps the last status of a recipient deferred then sent, counting attempts', () => {
    const s = scenario();
    s.client('BBB222', '198.51.100.7');
    s.from('BBB222', 'bob@example.com');
    s.deliver('BBB222', 'r@slow.example', 'deferred');
    s.advance(3600_000);
    s.deliver('BBB222', 'r@slow.example', 'sent');
    s.removed('BBB222');
    const r = s.out[0]!.recipients[0]!;
    expect(r).toMatchObject({ status: 'sent', dsn: '2.0.0', attempts: 2 });
  });

  it('links a bounce notification to the message it reports on', () => {
    const s = scenario();
    s.client('CCC333', '203.0.113.9', 'alice@example.com');
    s.from('CCC333', 'alice@example.com');
    s.deliver('CCC333', 'gone@remote.example', 'bounced');
    s.bounce('CCC333', 'DDD444');
    s.removed('CCC333');
    s.from('DDD444', '');
    s.deliver('DDD444', 'alice@example.com', 'sent', 'local');
    s.removed('DDD444');
    expect(s.out.map((m) => m.queueId)).toEqual(['CCC333', 'DDD444']);
    expect(s.out[0]!.bounces).toEqual(['DDD444']);
    expect(s.out[1]).toMatchObject({ bounceOf: 'CCC333', origin: 'bounce', sender: '' });
  });

  it('follows one amavis re-injection hop and attributes final deliveries to the original client', () => {
    const s = scenario();
    s.client('A1', '203.0.113.9', 'mallory@example.com');
    s.from('A1', 'x@yahoo.com.tw', 2);
    // Postfix logs the re-injected child's lines before the parent's hand-off line.
    s.client('B1', '127.0.0.1');
    s.from('B1', 'x@yahoo.com.tw', 2);
    s.amavis('A1', ['B1']);
    s.deliver('A1', 'v1@gmail.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.deliver('A1', 'v2@hotmail.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.removed('A1');
    expect(s.out).toHaveLength(0); // B1 is still in the queue
    s.deliver('B1', 'v1@gmail.com', 'sent', 'gmail-smtp-in.l.google.com[142.250.1.27]:25');
    s.deliver('B1', 'v2@hotmail.com', 'bounced', 'hotmail-com.olc.protection.outlook.com[52.101.1.1]:25');
    s.removed('B1');
    expect(s.out).toHaveLength(1);
    const m = s.out[0]!;
    expect(m).toMatchObject({ queueId: 'A1', clientIp: '203.0.113.9', saslUser: 'mallory@example.com', sender: 'x@yahoo.com.tw', complete: true, amavis: { verdict: 'Passed', category: 'CLEAN' } });
    expect(m.hops.map((h) => h.queueId)).toEqual(['A1', 'B1']);
    expect(m.recipients.map((r) => [r.address, r.status, r.relay, r.viaFilter])).toEqual([
      ['v1@gmail.com', 'sent', 'gmail-smtp-in.l.google.com[142.250.1.27]:25', undefined],
      ['v2@hotmail.com', 'bounced', 'hotmail-com.olc.protection.outlook.com[52.101.1.1]:25', undefined],
    ]);
  });

  it('follows a two-hop chain (amavis then DKIM signing) to the final delivery', () => {
    const s = scenario();
    s.client('H1', '203.0.113.50', 'carol@example.com');
    s.from('H1', 'carol@example.com');
    s.deliver('H1', 'friend@gmail.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'H2');
    s.removed('H1');
    s.client('H2', '127.0.0.1');
    s.from('H2', 'carol@example.com');
    s.deliver('H2', 'friend@gmail.com', 'sent', '127.0.0.1[127.0.0.1]:10030', 'H3');
    s.removed('H2');
    s.client('H3', '127.0.0.1');
    s.from('H3', 'carol@example.com');
    s.deliver('H3', 'friend@gmail.com', 'sent');
    expect(s.out).toHaveLength(0);
    s.removed('H3');
    expect(s.out).toHaveLength(1);
    expect(s.out[0]!.hops.map((h) => h.queueId)).toEqual(['H1', 'H2', 'H3']);
    expect(s.out[0]!.recipients[0]).toMatchObject({ address: 'friend@gmail.com', relay: 'mx.remote.example[192.0.2.25]:25', attempts: 3 });
    expect(s.out[0]!.saslUser).toBe('carol@example.com');
  });

  it('waits for a late hop link when the re-injected child finished first', () => {
    const s = scenario({ reinjectionGraceMs: 60_000 });
    s.client('P1', '203.0.113.9', 'dave@example.com');
    s.from('P1', 'dave@example.com');
    s.client('C1', '127.0.0.1');
    s.from('C1', 'dave@example.com');
    s.deliver('C1', 'out@gmail.com', 'sent');
    s.removed('C1');
    expect(s.out).toHaveLength(0); // held for its parent
    s.deliver('P1', 'out@gmail.com', 'sent', '127.0.0.1[127.0.0.1]:10024', 'C1');
    s.removed('P1');
    expect(s.out).toHaveLength(1);
    expect(s.out[0]).toMatchObject({ queueId: 'P1', saslUser: 'dave@example.com' });
    expect(s.out[0]!.recipients[0]).toMatchObject({ status: 'sent', relay: 'mx.remote.example[192.0.2.25]:25' });
  });

  it('emits a loopback submission with no parent after the grace period', () => {
    const s = scenario({ reinjectionGraceMs: 60_000 });
    s.client('W1', '127.0.0.1');
    s.from('W1', 'webmail@example.com');
    s.deliver('W1', 'x@gmail.com', 'sent');
    s.removed('W1');
    expect(s.out).toHaveLength(0);
    s.advance(61_000);
    s.client('OTHER', '192.0.2.1'); // any later line moves the clock
    expect(s.out.map((m) => m.queueId)).toEqual(['W1']);
    expect(s.out[0]!.complete).toBe(true);
  });

  it('treats a reused short queue id as a new message', () => {
    const s = scenario();
    s.client('REUSE1', '203.0.113.1', 'erin@example.com');
    s.from('REUSE1', 'erin@example.com');
    s.deliver('REUSE1', 'a@gmail.com', 'sent');
    // `removed` line lost; hours later the same id names another message
    s.advance(600_000);
    s.client('REUSE1', '198.51.100.2', 'frank@example.com');
    s.from('REUSE1', 'frank@example.com');
    s.removed('REUSE1');
    expect(s.out.map((m) => [m.saslUser, m.end, m.complete])).toEqual([
      ['erin@example.com', 'reused', false],
      ['frank@example.com', 'removed', true],
    ]);
    expect(s.out[1]!.recipients).toEqual([]);
  });

  it('keeps queue ids apart per host', () => {
    const s = scenario();
    s.client('SAME01', '203.0.113.1', 'u1@example.com', 'mx1');
    s.client('SAME01', '203.0.113.2', 'u2@example.com', 'mx2');
    s.removed('SAME01', 'mx2');
    s.removed('SAME01', 'mx1');
    expect(s.out.map((m) => [m.host, m.saslUser])).toEqual([
      ['mx2', 'u2@example.com'],
      ['mx1', 'u1@example.com'],
    ]);
  });

  it('expires idle entries by log time, not wall time', () => {
    const s = scenario({ idleTimeoutMs: 3600_000 });
    s.client('IDLE01', '203.0.113.1');
    s.from('IDLE01', 'a@example.com');
    s.advance(3599_000);
    s.client('FRESH1', '203.0.113.2');
    expect(s.out).toHaveLength(0);
    s.advance(2_000);
    s.client('FRESH2', '203.0.113.3');
    expect(s.out.map((m) => [m.queueId, m.end, m.complete])).toEqual([['IDLE01', 'idle', false]]);
    expect(s.c.stats.expiredIdle).toBe(1);
  });

  it('stamps a message let go idle more than 2 min after its last line with the log time it went (emittedTs); not one completed on time, nor a flush', () => {
    const s = scenario({ idleTimeoutMs: 3600_000 });
    s.client('IDLE01', '203.0.113.1', 'a@example.com');
    s.from('IDLE01', 'a@example.com');
    const last = s.out.length; // nothing yet
    s.client('DONE01', '203.0.113.2', 'b@example.com');
    s.from('DONE01', 'b@example.com');
    s.advance(90_000); // completed 90 s after its previous line: on time, no stamp
    s.removed('DONE01');
    s.advance(3600_000);
    s.client('FRESH1', '203.0.113.3'); // the idle timeout passes: IDLE01 goes now
    const sweepTs = Date.UTC(2026, 10, 27, 10, 0, 0) + 90_000 + 3600_000;
    expect(s.out.slice(last).map((m) => [m.queueId, m.end, m.emittedTs])).toEqual([
      ['DONE01', 'removed', undefined],
      ['IDLE01', 'idle', sweepTs],
    ]);
    s.client('OLD001', '203.0.113.4', 'c@example.com');
    s.advance(30 * 60_000);
    s.client('FRESH2', '203.0.113.5');
    s.c.flush(); // the end of input: OLD001's last line is 30 min back, yet no stamp
    expect(s.out.slice(-3).map((m) => [m.queueId, m.end, m.emittedTs])).toEqual([
      ['FRESH1', 'flush', undefined],
      ['OLD001', 'flush', undefined],
      ['FRESH2', 'flush', undefined],
    ]);
  });

  it('hands each authenticated message to onSubmission once: as qmgr takes it, or just before it is emitted if qmgr never logged it', () => {
    const got: { m: Message; emittedBefore: number }[] = [];
    const s = scenario({ onSubmission: (m) => got.push({ m: structuredClone(m), emittedBefore: s.out.length }) });
    s.client('A1', '203.0.113.9', 'mallory@example.com');
    expect(got).toHaveLength(0); // the sender is not known yet
    s.from('A1', 'x@yahoo.com.tw', 2);
    expect(got.map((g) => g.m)).toMatchObject([{ queueId: 'A1', saslUser: 'mallory@example.com', clientIp: '203.0.113.9', sender: 'x@yahoo.com.tw', nrcpt: 2, recipients: [] }]);
    // its amavis hop (no SASL user of its own), deferred deliveries, removal: nothing more
    s.client('B1', '127.0.0.1');
    s.from('B1', 'x@yahoo.com.tw', 2);
    s.deliver('A1', 'v1@yahoo.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.deliver('A1', 'v2@yahoo.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.removed('A1');
    s.deliver('B1', 'v1@yahoo.com', 'deferred');
    s.deliver('B1', 'v2@yahoo.com', 'deferred');
    s.deliver('B1', 'v1@yahoo.com', 'sent');
    s.deliver('B1', 'v2@yahoo.com', 'sent');
    s.removed('B1');
    expect(s.out).toHaveLength(1);
    expect(got).toHaveLength(1);
    // no SASL user: never a submission
    s.client('C1', '192.0.2.7');
    s.from('C1', 'someone@example.net');
    s.removed('C1');
    expect(got).toHaveLength(1);
    // no qmgr line in the log: handed over right before the message itself
    s.client('D1', '203.0.113.9', 'mallory@example.com');
    s.deliver('D1', 'v3@yahoo.com', 'sent');
    s.removed('D1');
    expect(got).toHaveLength(2);
    expect(got[1]!.m).toMatchObject({ queueId: 'D1', saslUser: 'mallory@example.com' });
    expect(got[1]!.emittedBefore).toBe(2);
    expect(s.out.map((m) => m.queueId)).toEqual(['A1', 'C1', 'D1']);
  });

  it('does not hand a message over again after a snapshot and restore', () => {
    const got: string[] = [];
    const onSubmission = (m: Message) => got.push(m.queueId);
    const s = scenario({ onSubmission });
    s.client('A1', '203.0.113.9', 'mallory@example.com');
    s.from('A1', 'x@yahoo.com.tw', 1);
    s.client('E1', '203.0.113.9', 'mallory@example.com'); // no qmgr line yet when the snapshot is taken
    const out: Message[] = [];
    const c = new Correlator((m) => out.push(m), { onSubmission });
    c.restore(JSON.parse(JSON.stringify(s.c.snapshot())) as ReturnType<Correlator['snapshot']>);
    const t = Date.UTC(2026, 10, 27, 11, 0, 0);
    c.push({ kind: 'delivery', ts: t, host: 'mx1', program: 'postfix/smtp', src: { file: 't.log', offset: 100 }, queueId: 'A1', agent: 'smtp', to: 'v@yahoo.com', relay: 'mx[192.0.2.25]:25', relayIp: '192.0.2.25', status: 'sent', reply: '250 ok', dsn: '2.0.0' });
    c.push({ kind: 'queue.removed', ts: t, host: 'mx1', program: 'postfix/qmgr', src: { file: 't.log', offset: 101 }, queueId: 'A1' });
    c.push({ kind: 'queue.removed', ts: t, host: 'mx1', program: 'postfix/qmgr', src: { file: 't.log', offset: 102 }, queueId: 'E1' });
    expect(out.map((m) => m.queueId)).toEqual(['A1', 'E1']);
    expect(got).toEqual(['A1', 'E1']); // A1 once (before the snapshot), E1 once (at its emission)
  });

  it('hands a held message\'s recipients to onSettled as they settle, each once, and only once a deferral outlasts heldAfterMs', () => {
    const got: Message[] = [];
    const s = scenario({ onSettled: (m) => got.push(structuredClone(m)), heldAfterMs: 10 * 60_000 });
    const MIN = 60_000;
    // the amavis hop links A1 to B1, whose deliveries are the real ones
    s.client('A1', '203.0.113.9', 'mallory@example.com');
    s.from('A1', 'mallory@example.com', 4);
    s.client('B1', '127.0.0.1');
    s.from('B1', 'mallory@example.com', 4);
    for (const to of ['a@x.example', 'b@x.example', 'c@y.example', 'd@z.example']) s.deliver('A1', to, 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.removed('A1');
    s.deliver('B1', 'a@x.example', 'sent');
    s.deliver('B1', 'b@x.example', 'bounced');
    s.deliver('B1', 'c@y.example', 'deferred');
    s.advance(5 * MIN); // Postfix's first retry: greylisting lets mail through here
    s.deliver('B1', 'c@y.example', 'deferred');
    expect(got).toEqual([]); // not held yet: 5 min < 10
    s.advance(5 * MIN);
    s.deliver('B1', 'd@z.example', 'deferred'); // d's first attempt, 10 min in
    s.advance(5 * MIN); // the second retry, 15 min after c's first deferral
    s.deliver('B1', 'c@y.example', 'deferred');
    // held now: with c, everything already known (a sent, b bounced); d, deferred for 5 min only, waits for its own outcome
    expect(got.map((m) => m.recipients.map((r) => `${r.address} ${r.status}`))).toEqual([['a@x.example sent', 'b@x.example bounced', 'c@y.example deferred']]);
    expect(got[0]).toMatchObject({ queueId: 'A1', saslUser: 'mallory@example.com', clientIp: '203.0.113.9', complete: false });
    expect(got[0]!.recipients.every((r) => r.settled === true)).toBe(true);
    s.deliver('B1', 'd@z.example', 'sent'); // held: settles at once
    s.deliver('B1', 'c@y.example', 'sent'); // settled already: nothing more
    expect(got.map((m) => m.recipients.map((r) => r.address))).toEqual([['a@x.example', 'b@x.example', 'c@y.example'], ['d@z.example']]);
    s.removed('B1');
    // the finished message has every recipient, with the marks (what readers skip)
    expect(s.out).toHaveLength(1);
    expect(s.out[0]!.recipients.map((r) => [r.address, r.status, r.settled])).toEqual([
      ['a@x.example', 'sent', true],
      ['b@x.example', 'bounced', true],
      ['c@y.example', 'sent', true],
      ['d@z.example', 'sent', true],
    ]);
    expect(got).toHaveLength(2);
  });

  it('never holds a message without a SASL user, nor one whose deferrals end in time', () => {
    const got: Message[] = [];
    const s = scenario({ onSettled: (m) => got.push(m) });
    s.client('C1', '192.0.2.7'); // inbound: no SASL user
    s.from('C1', 'someone@example.net', 1);
    s.deliver('C1', 'u@example.com', 'deferred');
    s.advance(3600_000);
    s.deliver('C1', 'u@example.com', 'deferred');
    s.client('D1', '203.0.113.9', 'anna@example.com');
    s.from('D1', 'anna@example.com', 2);
    s.deliver('D1', 'p@greylist.example', 'deferred');
    s.deliver('D1', 'q@other.example', 'sent');
    s.advance(5 * 60_000);
    s.deliver('D1', 'p@greylist.example', 'sent'); // greylisting: through on the first retry
    s.removed('D1');
    expect(got).toEqual([]);
    const d1 = s.out.find((m) => m.queueId === 'D1')!;
    expect(d1.recipients.some((r) => r.settled === true)).toBe(false);
  });

  it('keeps what it settled across a snapshot and restore: nothing is handed over twice', () => {
    const got: string[] = [];
    const onSettled = (m: Message) => got.push(...m.recipients.map((r) => r.address));
    const s = scenario({ onSettled });
    s.client('A1', '203.0.113.9', 'mallory@example.com');
    s.from('A1', 'mallory@example.com', 3);
    s.deliver('A1', 'a@x.example', 'sent');
    s.deliver('A1', 'b@x.example', 'deferred');
    s.advance(10 * 60_000);
    s.deliver('A1', 'c@x.example', 'deferred'); // 10:10
    s.advance(5 * 60_000);
    s.deliver('A1', 'b@x.example', 'deferred'); // 10:15: b held 15 min, c only 5
    expect(got).toEqual(['a@x.example', 'b@x.example']);
    const c = new Correlator(() => {}, { onSettled });
    c.restore(JSON.parse(JSON.stringify(s.c.snapshot())) as ReturnType<Correlator['snapshot']>);
    const t = Date.UTC(2026, 10, 27, 10, 16, 0);
    const line = (to: string, status: 'sent' | 'deferred', offset: number): Event => ({ kind: 'delivery', ts: t, host: 'mx1', program: 'postfix/smtp', src: { file: 't.log', offset }, queueId: 'A1', agent: 'smtp', to, relay: 'mx[192.0.2.25]:25', relayIp: '192.0.2.25', status, reply: '250 ok', dsn: '2.0.0' });
    c.push(line('b@x.example', 'sent', 100)); // settled before the snapshot
    c.push(line('a@x.example', 'sent', 101)); // a repeated line of a settled one
    expect(got).toEqual(['a@x.example', 'b@x.example']);
    c.push({ ...line('c@x.example', 'deferred', 102), ts: t + 5 * 60_000 }); // held (restored from the marks), and c deferred since 10:10: 11 min
    expect(got).toEqual(['a@x.example', 'b@x.example', 'c@x.example']);
  });

  it("names an account's mail still queued by its open queue ids: the filter hop's once linked, never another account's", () => {
    const s = scenario();
    s.client('A1', '203.0.113.9', 'Mallory@Example.com');
    s.from('A1', 'x1@yahoo.com.tw', 1);
    s.client('B1', '127.0.0.1'); // the amavis hop of A1
    s.from('B1', 'x1@yahoo.com.tw', 1);
    expect(s.c.queueIdsOf('mallory@example.com')).toEqual(['A1']); // B1 is not linked yet
    s.deliver('A1', 'v@yahoo.com', 'sent', '127.0.0.1[127.0.0.1]:10032', 'B1');
    s.removed('A1');
    s.deliver('B1', 'v@yahoo.com', 'deferred');
    s.client('C1', '203.0.113.9', 'mallory@example.com'); // the next one, not through the filter yet
    s.client('D1', '198.51.100.4', 'anna@example.com');
    s.client('E1', '192.0.2.9'); // inbound, no SASL user
    expect(s.c.queueIdsOf('MALLORY@example.com')).toEqual(['C1', 'B1']);
    expect(s.c.queueIdsOf('mallory@example.com', 1)).toEqual(['C1']);
    expect(s.c.queueIdsOf('anna@example.com')).toEqual(['D1']);
    s.deliver('B1', 'v@yahoo.com', 'sent');
    s.removed('B1');
    expect(s.c.queueIdsOf('mallory@example.com')).toEqual(['C1']);
  });

  it('sheds the least recently touched entries past the cap and counts them', () => {
    const s = scenario({ maxEntries: 3 });
    s.client('Q00001', '192.0.2.1');
    s.client('Q00002', '192.0.2.2');
    s.client('Q00003', '192.0.2.3');
    s.from('Q00001', 'a@example.com'); // touch: Q00002 is now the oldest
    s.client('Q00004', '192.0.2.4');
    expect(s.out.map((m) => [m.queueId, m.end])).toEqual([['Q00002', 'shed']]);
    expect(s.c.stats.shed).toBe(1);
    expect(s.c.size).toBe(3);
    s.c.flush();
    expect(s.out.map((m) => m.queueId).sort()).toEqual(['Q00001', 'Q00002', 'Q00003', 'Q00004']);
    expect(s.c.size).toBe(0);
  });
});
