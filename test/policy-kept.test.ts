import { describe, expect, it } from 'vitest';
import { KeptStore } from '../src/policy/kept.js';
import { TextArena } from '../src/detect/text-arena.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('TextArena', () => {
  it('gives back every live text exactly through growth, frees and compactions', () => {
    const a = new TextArena();
    const live = new Map<number, string>();
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 20_000; i++) {
      if (live.size > 0 && rnd() < 0.45) {
        const victim = [...live.keys()][Math.floor(rnd() * live.size)]!;
        a.free(victim);
        live.delete(victim);
      } else {
        const s = `text ${i} ` + 'x'.repeat(Math.floor(rnd() * 900));
        live.set(a.put(bytes(s)), s);
      }
    }
    expect(a.size).toBe(live.size);
    expect(a.liveBytes).toBe([...live.values()].reduce((n, s) => n + s.length, 0));
    for (const [h, s] of live) expect(text(a.get(h))).toBe(s);
  });

  it('refuses a freed handle instead of returning another text', () => {
    const a = new TextArena();
    const h = a.put(bytes('one'));
    a.put(bytes('two'));
    a.free(h);
    expect(() => a.get(h)).toThrow(/free/);
    expect(() => a.free(h)).toThrow(/twice/);
  });
});

describe('KeptStore', () => {
  const finding = (ts: number, note = 'n') => ({
    ts,
    start: ts - 5,
    detector: 'send-flood',
    signals: ['volume' as const],
    score: 40,
    summary: `summary at ${ts}`,
    evidence: [{ file: '/var/log/mail.log', offset: ts * 10, ts, note }],
  });

  it('drops the least recently touched entity and its texts when full', () => {
    const s = new KeptStore(2);
    for (const [k, ts] of [['account:a', 1], ['account:b', 2]] as const) {
      const e = s.touch(k);
      s.setFindings(e, [s.add(finding(ts))]);
    }
    s.touch('account:a'); // b is now the oldest
    const c = s.touch('account:c');
    s.setFindings(c, [s.add(finding(3))]);
    expect([...s.entries()].map(([k]) => k)).toEqual(['account:a', 'account:c']);
    expect(s.find('account:b')).toBe(-1);
    // a's and c's texts remain, b's was freed
    expect(s.findings(s.find('account:a')).map((k) => k.summary)).toEqual(['summary at 1']);
    expect(s.textBytes).toBeLessThan(2 * 200);
  });

  it('reads a finding back with its numbers, summary and evidence, and frees what an entity no longer holds', () => {
    const s = new KeptStore(10);
    const e = s.touch('account:x');
    const first = s.add(finding(100, 'wide ☃ \ud800 note'));
    const second = s.add(finding(200));
    s.setFindings(e, [first, second]);
    const [a, b] = s.findings(e);
    expect(a!.ref()).toEqual({ ...finding(100, 'wide ☃ \ud800 note'), signals: ['volume'] });
    expect(b!.ts).toBe(200);
    const before = s.textBytes;
    s.setFindings(e, [b!]);
    expect(s.textBytes).toBeLessThan(before);
    expect(s.findings(e).map((k) => k.ts)).toEqual([200]);
  });

  it('keeps texts plain up to its limit and deflated beyond, reading both back the same', () => {
    const s = new KeptStore(100, 2000);
    const e = s.touch('account:x');
    const long = (ts: number) => ({ ...finding(ts, `note ${ts} ` + 'repeated words '.repeat(20)), summary: `summary ${ts} ` + 'more words '.repeat(10) });
    const kept = Array.from({ length: 12 }, (_, i) => s.add(long(i)));
    s.setFindings(e, kept);
    const sizes = kept.map((k) => (s as unknown as { texts: { get(h: number): Uint8Array } }).texts.get((s as unknown as { fText: Int32Array }).fText[k.row]!).length);
    // the first few are plain (over 300 bytes each), the rest deflated (far smaller)
    expect(sizes[0]).toBeGreaterThan(300);
    expect(sizes.at(-1)).toBeLessThan(sizes[0]! / 2);
    expect(s.findings(e).map((k) => k.ref())).toEqual(Array.from({ length: 12 }, (_, i) => ({ ...long(i), signals: ['volume'] })));
    // freeing plain texts makes room for plain ones again
    s.setFindings(e, []);
    const again = s.add(long(99));
    s.setFindings(e, [again]);
    expect((s as unknown as { texts: { get(h: number): Uint8Array } }).texts.get((s as unknown as { fText: Int32Array }).fText[again.row]!).length).toBeGreaterThan(300);
  });

  it('keeps evidence that JSON cannot carry exactly as it came', () => {
    const s = new KeptStore(10);
    const e = s.touch('ip:192.0.2.1');
    const odd = { ...finding(1), evidence: [{ file: 'f', offset: -0, ts: Number.NaN }] };
    s.setFindings(e, [s.add(odd)]);
    const ev = s.findings(e)[0]!.evidence;
    expect(Object.is(ev[0]!.offset, -0)).toBe(true);
    expect(ev[0]!.ts).toBeNaN();
  });
});
