import { describe, expect, it } from 'vitest';
import { Baseline, DistinctCounter, Recent, SlidingCounter, WindowStore } from '../src/detect/windows.js';

const H = 3600_000;
const t0 = Date.UTC(2026, 10, 27);

describe('SlidingCounter', () => {
  it('sums within the window and forgets what slid out', () => {
    const c = new SlidingCounter({ windowMs: 60_000, buckets: 6, maxKeys: 10 });
    c.add('a', t0);
    c.add('a', t0 + 15_000, 2);
    expect(c.add('a', t0 + 55_000)).toBe(4);
    expect(c.get('a', t0 + 65_000)).toBe(3); // the first bucket slid out
    expect(c.get('a', t0 + 200_000)).toBe(0);
    expect(c.get('nobody', t0)).toBe(0);
  });

  it('counts a slightly older event (interleaved files) in its own bucket', () => {
    const c = new SlidingCounter({ windowMs: 60_000, buckets: 6, maxKeys: 10 });
    c.add('a', t0 + 50_000);
    c.add('a', t0 + 20_000);
    expect(c.get('a', t0 + 75_000)).toBe(2); // 55 s old: still inside the 60 s window
    expect(c.get('a', t0 + 85_000)).toBe(1); // the late one expires on time
  });

  it('evicts the least recently used key past maxKeys and counts it', () => {
    const c = new SlidingCounter({ windowMs: 60_000, maxKeys: 2 });
    c.add('a', t0);
    c.add('b', t0);
    c.add('a', t0 + 1);
    c.add('c', t0 + 2);
    c.add('d', t0 + 2); // over the cap (2 + 1/16 slack): trimmed back to the 2 newest
    expect(c.get('b', t0 + 3)).toBe(0);
    expect(c.get('a', t0 + 3)).toBe(0);
    expect(c.get('d', t0 + 3)).toBe(1);
    expect(c.stats()).toEqual({ keys: 2, evicted: 2 });
    for (let i = 0; i < 100; i++) c.add(`k${i}`, t0 + 10 + i);
    expect(c.stats().keys).toBeLessThanOrEqual(3); // a 1/16 overshoot at most, trimmed in batches
  });
});

describe('DistinctCounter', () => {
  it('counts distinct values in the window with a per-key cap', () => {
    const d = new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 3 });
    expect(d.add('acct', 'x.com', t0)).toMatchObject({ isNew: true, count: 1 });
    expect(d.add('acct', 'x.com', t0 + 1)).toMatchObject({ isNew: false, count: 1 });
    d.add('acct', 'y.com', t0 + 2);
    d.add('acct', 'z.com', t0 + 3);
    expect(d.add('acct', 'w.com', t0 + 4)).toMatchObject({ count: 3, capped: true });
    expect(d.count('acct', t0 + 60_002)).toBe(2); // x.com (last seen t0+1) slid out
    expect(d.values('acct', t0 + 60_003)).toEqual(['z.com']);
  });
});

describe('Baseline', () => {
  it('learns a steady hourly rate and its spread, with quiet hours as zeros', () => {
    const b = new Baseline({ periodMs: H, halfLifeMs: 7 * 24 * H, maxKeys: 10 });
    for (let h = 0; h < 72; h++) for (let i = 0; i < 500; i++) b.add('news', t0 + h * H + i * 1000);
    const v = b.get('news', t0 + 72 * H + 1)!;
    expect(v.mean).toBeGreaterThan(450);
    expect(v.mean).toBeLessThan(501);
    expect(v.weight).toBeGreaterThan(60);
    const quiet = new Baseline({ periodMs: H, halfLifeMs: 7 * 24 * H, maxKeys: 10 });
    quiet.add('u', t0, 5);
    quiet.add('u', t0 + 48 * H, 5); // two busy hours two days apart
    const q = quiet.get('u', t0 + 49 * H)!;
    expect(q.mean).toBeLessThan(1);
    expect(q.std).toBeGreaterThan(0);
  });
});

describe('Recent', () => {
  it('expires values by log time', () => {
    const r = new Recent<number>({ ttlMs: 1000, maxKeys: 5 });
    r.set('k', t0, 42);
    expect(r.get('k', t0 + 1000)).toBe(42);
    expect(r.get('k', t0 + 1001)).toBeUndefined();
  });
});

describe('WindowStore', () => {
  it('snapshots to JSON and restores every structure into a fresh store', () => {
    const build = (s: WindowStore) => {
      const sc = s.scope('det');
      return {
        c: sc.counter('c', { windowMs: 60_000, maxKeys: 10 }),
        d: sc.distinct('d', { windowMs: 60_000, maxKeys: 10, maxPerKey: 10 }),
        b: sc.baseline('b', { periodMs: H, halfLifeMs: 24 * H, maxKeys: 10 }),
        r: sc.recent<string[]>('r', { ttlMs: H, maxKeys: 10 }),
      };
    };
    const a = new WindowStore();
    const x = build(a);
    x.c.add('k', t0, 3);
    x.d.add('k', 'v1', t0);
    x.d.add('k', 'v2', t0);
    for (let h = 0; h < 5; h++) x.b.add('k', t0 + h * H, 10);
    x.r.set('k', t0, ['one']);
    const json = JSON.parse(JSON.stringify(a.snapshot())) as Record<string, unknown>;
    const b = new WindowStore();
    const y = build(b);
    b.restore(json);
    expect(y.c.get('k', t0 + 1)).toBe(3);
    expect(y.d.values('k', t0 + 1)).toEqual(['v1', 'v2']);
    expect(y.b.get('k', t0 + 5 * H)).toEqual(x.b.get('k', t0 + 5 * H));
    expect(y.r.get('k', t0 + 1)).toEqual(['one']);
    expect(Object.keys(b.stats())).toEqual(['det.c', 'det.d', 'det.b', 'det.r']);
  });
});
