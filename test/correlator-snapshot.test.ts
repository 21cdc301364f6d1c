import { describe, expect, it } from 'vitest';
import { generateLines } from '../bench/generate.js';
import type { Event } from '../src/core/events.js';
import { Correlator, type CorrelatorOptions, type CorrelatorSnapshot } from '../src/correlator/correlator.js';
import type { Message } from '../src/correlator/message.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { envelopeContext, LineParser } from '../src/pipeline/line-parser.js';

/** The events of a generated log (amavis hops, bounces, deferrals, a compromised-account burst). */
function generatedEvents(lines: number): Event[] {
  const lp = new LineParser();
  const ctx = envelopeContext({ file: 'gen.log', zone: new ZoneClock('UTC'), year: 2026, refTime: Date.UTC(2026, 11, 31) });
  const events: Event[] = [];
  let offset = 0;
  for (const line of generateLines({ lines, seed: 7 })) {
    lp.parseLine(line, offset, ctx, events);
    offset += Buffer.byteLength(line) + 1;
  }
  return events;
}

/** Hand-built stream where the cut lands between a re-injected child's removal and its parent's hop line. */
function lateLinkEvents(): Event[] {
  let ts = Date.UTC(2026, 10, 27, 10, 0, 0);
  let offset = 0;
  const base = (program: string) => ({ ts: (ts += 1000), host: 'mx1', program, src: { file: 't.log', offset: offset++ } });
  return [
    { kind: 'smtp.client', ...base('postfix/smtpd'), queueId: 'P1', ip: '203.0.113.9', clientHost: 'unknown', service: 'submission', account: 'dave@example.com', saslMethod: 'LOGIN' },
    { kind: 'queue.from', ...base('postfix/qmgr'), queueId: 'P1', sender: 'dave@example.com', size: 1000, nrcpt: 1 },
    { kind: 'smtp.client', ...base('postfix/smtpd'), queueId: 'C1', ip: '127.0.0.1', clientHost: 'localhost', service: 'smtpd' },
    { kind: 'queue.from', ...base('postfix/qmgr'), queueId: 'C1', sender: 'dave@example.com', size: 1200, nrcpt: 1 },
    { kind: 'delivery', ...base('postfix/smtp'), queueId: 'C1', agent: 'smtp', to: 'out@gmail.com', relay: 'mx[192.0.2.25]:25', relayIp: '192.0.2.25', status: 'sent', reply: '250 ok', dsn: '2.0.0' },
    { kind: 'queue.removed', ...base('postfix/qmgr'), queueId: 'C1' },
    // cut here: C1 waits for its parent link
    { kind: 'delivery', ...base('postfix/smtp'), queueId: 'P1', agent: 'smtp', to: 'out@gmail.com', relay: '127.0.0.1[127.0.0.1]:10024', relayIp: '127.0.0.1', status: 'sent', reply: '250 ok', dsn: '2.0.0', queuedAs: 'C1' },
    { kind: 'queue.removed', ...base('postfix/qmgr'), queueId: 'P1' },
  ] as Event[];
}

/** Feeds all events in one correlator, or cut at `cut` with a JSON round trip of the snapshot in between. */
function run(events: Event[], opts: CorrelatorOptions, cut?: number): { out: Message[]; snap?: CorrelatorSnapshot; stats: unknown } {
  const out: Message[] = [];
  const sink = (m: Message) => out.push(structuredClone(m)); // as emitted, before any later mutation
  let c = new Correlator(sink, opts);
  let snap: CorrelatorSnapshot | undefined;
  events.forEach((e, i) => {
    if (i === cut) {
      snap = JSON.parse(JSON.stringify(c.snapshot())) as CorrelatorSnapshot;
      c = new Correlator(sink, opts);
      c.restore(snap);
    }
    c.push(e);
  });
  c.flush();
  return { out, snap, stats: { ...c.stats } };
}

describe('correlator snapshot/restore', () => {
  const events = generatedEvents(30_000);

  it('a generated log cut anywhere gives exactly the messages of an uninterrupted run', () => {
    const whole = run(events, {});
    expect(whole.out.length).toBeGreaterThan(1000);
    expect(whole.out.some((m) => m.hops.length > 1)).toBe(true);
    for (const frac of [0.01, 0.25, 0.5, 0.731, 0.99]) {
      const cut = Math.floor(events.length * frac);
      const r = run(events, {}, cut);
      expect(r.snap!.entries.length).toBeGreaterThan(0);
      expect(r.out).toEqual(whole.out);
      expect(r.stats).toEqual(whole.stats);
    }
  });

  it('keeps shedding, idle expiry and hop roots exact under tight bounds', () => {
    const opts = { maxEntries: 6, idleTimeoutMs: 5_000, reinjectionGraceMs: 2_000 };
    const whole = run(events, opts);
    expect(whole.stats).toMatchObject({ shed: expect.any(Number), expiredIdle: expect.any(Number) });
    expect((whole.stats as { shed: number }).shed).toBeGreaterThan(0);
    expect((whole.stats as { expiredIdle: number }).expiredIdle).toBeGreaterThan(0);
    for (const frac of [0.1, 0.5, 0.9]) {
      const r = run(events, opts, Math.floor(events.length * frac));
      expect(r.out).toEqual(whole.out);
      expect(r.stats).toEqual(whole.stats);
    }
  });

  it('restores a finished re-injection still waiting for its parent link', () => {
    const evs = lateLinkEvents();
    const whole = run(evs, {});
    const r = run(evs, {}, 6);
    expect(r.snap!.waiting).toHaveLength(1);
    expect(r.out).toEqual(whole.out);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatchObject({ queueId: 'P1', saslUser: 'dave@example.com' });
    expect(r.out[0]!.hops.map((h) => h.queueId)).toEqual(['P1', 'C1']);
  });
});
