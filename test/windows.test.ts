import { describe, expect, it } from 'vitest';
import { Baseline, DistinctCounter, hash32, Recent, Samples, scrambleCode, SlidingCounter, StringTable, unscrambleCode, WindowStore } from '../src/detect/windows.js';

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

  it('keeps counts past 16 bits exact: buckets widen from 16 to 32 bits, other keys and snapshots unchanged', () => {
    const c = new SlidingCounter({ windowMs: 60_000, buckets: 6, maxKeys: 10 });
    c.add('small', t0, 3);
    for (let i = 0; i < 3; i++) c.add('big', t0 + i, 30_000);
    c.add('small', t0 + 10_000, 65_535);
    expect(c.get('big', t0 + 20_000)).toBe(90_000);
    expect(c.get('small', t0 + 20_000)).toBe(65_538);
    const r = new SlidingCounter({ windowMs: 60_000, buckets: 6, maxKeys: 10 });
    r.restore(JSON.parse(JSON.stringify(c.snapshot())));
    expect(r.get('big', t0 + 20_000)).toBe(90_000);
    expect(r.add('big', t0 + 61_000, 1)).toBe(1); // the 90,000 bucket slid out whole
    expect(r.get('small', t0 + 65_000)).toBe(65_535);
  });

  it('keeps counts of 2^31 and more, and fractions, exact (buckets widen once from 32-bit)', () => {
    const c = new SlidingCounter({ windowMs: 60_000, buckets: 6, maxKeys: 10 });
    const packed = 1 + 3000 * 2 ** 21; // a message with 3000 recipients, packed as send-flood does
    c.add('a', t0, 7);
    c.add('b', t0, packed);
    c.add('b', t0 + 1, packed);
    c.add('a', t0 + 20_000, 0.5);
    expect(c.get('b', t0 + 30_000)).toBe(2 * packed);
    expect(c.get('a', t0 + 30_000)).toBe(7.5);
    expect(c.add('b', t0 + 30_000, 1)).toBe(2 * packed + 1);
    expect(c.get('b', t0 + 65_000)).toBe(1); // the packed bucket slid out whole
    expect(c.get('a', t0 + 65_000)).toBe(0.5);
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

/** V8's hash of an integer Map key (ComputeUnseededHash, src/utils/utils.h), in uint32 arithmetic. */
function v8IntHash(key: number): number {
  let h = key >>> 0;
  h = (~h + (h << 15)) >>> 0;
  h = (h ^ (h >>> 12)) >>> 0;
  h = (h + (h << 2)) >>> 0;
  h = (h ^ (h >>> 4)) >>> 0;
  h = Math.imul(h, 2057) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h & 0x3fffffff;
}

/** The most keys sharing the low 11 bits of their V8 hash (one bucket of a Map of 2048+ buckets). */
function largestBucket(keys: number[]): number {
  const n = new Map<number, number>();
  for (const k of keys) {
    const b = v8IntHash(k) & 0x7ff;
    n.set(b, (n.get(b) ?? 0) + 1);
  }
  return Math.max(...n.values());
}

describe('DistinctCounter big-set keys (hash flooding)', () => {
  it('unscrambleCode undoes scrambleCode for any int32 and secret, and the scramble is no identity', () => {
    // the inverse multipliers unscrambleCode relies on
    expect(Math.imul(0x85ebca6b, 0xa5cb9243)).toBe(1);
    expect(Math.imul(0xc2b2ae35, 0x7ed1b41d)).toBe(1);
    let r = 0x2545f491; // xorshift32: reproducible "random" int32
    const next = () => {
      r ^= r << 13;
      r ^= r >>> 17;
      r ^= r << 5;
      return r | 0;
    };
    const edges = [0, 1, -1, 2, -2, 0x7fffffff, -0x80000000, 0x55555555, -0x55555556];
    const secrets = [...edges, ...Array.from({ length: 8 }, next)];
    const xs = [...edges, ...Array.from({ length: 20_000 }, next)];
    for (const secret of secrets) {
      const wrong: number[] = []; // (x, secret) pairs that do not round-trip as int32
      let moved = 0;
      for (const x of xs) {
        const k = scrambleCode(x, secret);
        const u = unscrambleCode(x, secret);
        if ((k | 0) !== k || unscrambleCode(k, secret) !== x || (u | 0) !== u || scrambleCode(u, secret) !== x) wrong.push(x, secret);
        if (k !== x) moved++;
      }
      expect(wrong).toEqual([]);
      expect(moved).toBeGreaterThan(xs.length - 10);
    }
    // a different secret gives different keys
    expect(xs.filter((x) => scrambleCode(x, 1) === scrambleCode(x, 2)).length).toBeLessThan(10);
  });

  it('a big set snapshotted and restored into a counter with another secret answers and snapshots the same', () => {
    for (const keepValues of [true, false]) {
      const make = () => new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 100, keepValues });
      const a = make();
      const vals = Array.from({ length: 40 }, (_, i) => `rcpt${i}@example.net`);
      for (let i = 0; i < vals.length; i++) a.add('k', vals[i]!, t0 + i * 1000);
      a.add('k', vals[5]!, t0 + 40_000); // seen again: now the newest
      for (let i = 0; i < 5; i++) a.add('small', vals[i]!, t0 + i);
      const json = JSON.stringify(a.snapshot());
      // the snapshot holds values (kept) or their seed-0 hash32, never the scrambled keys
      const row = (JSON.parse(json) as { m: unknown[][] }).m.find((x) => x[0] === 'k')!;
      const order = [...vals.slice(0, 5), ...vals.slice(6), vals[5]!];
      expect(row.filter((_, i) => i >= 3 && i % 2 === 1)).toEqual(keepValues ? order : order.map((v) => hash32(v)));

      const b = make();
      b.restore(JSON.parse(json));
      // both in the big form, under different secrets
      const ka = a.bigMapKeysForTest('k');
      const kb = b.bigMapKeysForTest('k');
      expect(ka).toHaveLength(40);
      expect(kb).toHaveLength(40);
      expect(kb).not.toEqual(ka);
      expect(JSON.stringify(b.snapshot())).toBe(json);
      const at = t0 + 40_000;
      for (const d of [a, b]) {
        expect(d.count('k', at)).toBe(40);
        expect(d.count('small', at)).toBe(5);
        for (const v of vals) expect(d.has('k', v, at)).toBe(true);
        expect(d.has('k', 'rcpt40@example.net', at)).toBe(false);
        if (keepValues) expect(d.values('k', at)).toEqual(order);
      }
      // they go on alike: a repeat, a new value, then most slide out (back to chunks)
      for (const [v, ts] of [[vals[7]!, at + 1], ['new@example.net', at + 2]] as const) {
        expect(b.add('k', v, ts)).toEqual(a.add('k', v, ts));
      }
      expect(JSON.stringify(b.snapshot())).toBe(JSON.stringify(a.snapshot()));
      expect(b.count('k', t0 + 95_000)).toBe(a.count('k', t0 + 95_000));
      expect(a.bigMapKeysForTest('k')).toEqual([]);
      expect(JSON.stringify(b.snapshot())).toBe(JSON.stringify(a.snapshot()));
    }
  });

  it('spreads over V8 Map buckets the codes of values crafted to share one bucket', () => {
    // reference values of V8's C++ ComputeUnseededHash, so the model above is V8's
    const ref: [number, number][] = [[0, 178506403], [1, 316017654], [-1, 1029045272], [0x7fffffff, 942127466], [-0x80000000, 626124113], [123456789, 679814312], [-987654321, 151735623]];
    for (const [x, h] of ref) expect(v8IntHash(x)).toBe(h);
    // What an attacker can do offline (hash32 seed 0 is public): recipients
    // whose codes all land in one bucket of a Map of 2048 buckets.
    const N = 2000;
    const crafted: string[] = [];
    const bucket = (v: string) => v8IntHash(hash32(v)) & 0x7ff;
    const target = bucket('0@victim.example');
    for (let i = 0; crafted.length < N; i++) {
      const v = `${i}@victim.example`;
      if (bucket(v) === target) crafted.push(v);
    }
    expect(largestBucket(crafted.map((v) => hash32(v)))).toBe(N); // keyed by code, one chain of N
    const counters = [0, 1].map(() => new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 3000, keepValues: false }));
    for (const d of counters) {
      for (const v of crafted) d.add('spammer', v, t0);
      expect(d.count('spammer', t0)).toBe(N);
      const keys = d.bigMapKeysForTest('spammer');
      expect(keys).toHaveLength(N);
      expect(largestBucket(keys)).toBeLessThan(64);
    }
    expect(counters[1]!.bigMapKeysForTest('spammer')).not.toEqual(counters[0]!.bigMapKeysForTest('spammer'));
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

  it('answers for the right key after a key is dropped and its slot reused, while another structure still holds that key', () => {
    const sc = new WindowStore().scope('det');
    const other = sc.recent<string>('other', { ttlMs: H, maxKeys: 10 });
    const r = sc.recent<string>('r', { ttlMs: H, maxKeys: 10 });
    other.set('a', t0, 'kept'); // 'a' stays in the store's string table
    r.set('a', t0, 'A');
    expect(r.get('a', t0)).toBe('A');
    r.delete('a');
    expect(r.get('a', t0)).toBeUndefined();
    r.set('b', t0, 'B'); // takes the freed slot
    expect(r.get('a', t0)).toBeUndefined();
    expect(r.get('b', t0)).toBe('B');
    r.set('a', t0, 'A2');
    expect(r.get('b', t0)).toBe('B');
    expect(r.get('a', t0)).toBe('A2');
    expect(other.get('a', t0)).toBe('kept');
    const c = sc.counter('c', { windowMs: H, maxKeys: 10 });
    c.add('a', t0, 5);
    c.reset('a');
    expect(c.get('a', t0)).toBe(0);
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

/** A deterministic stream of operations on all four structures; returns every result. */
function drive(x: ReturnType<typeof buildAll>, from: number, to: number): unknown[] {
  const out: unknown[] = [];
  let seed = 7 + from;
  const pick = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
  for (let i = from; i < to; i++) {
    // mostly forward in time, sometimes late (interleaved files), now and then a gap
    const ts = t0 + i * 700 - (pick(5) === 0 ? pick(90_000) : 0) + (i > 3000 ? 600_000 : 0);
    const key = `account-${pick(40)}@example.com`;
    const value = `${pick(2) === 0 ? 'd' : 'domain-'}${pick(pick(3) === 0 ? 40 : 6)}.example.net`;
    switch (pick(10)) {
      case 0:
        out.push(x.c.add(key, ts, 1 + pick(3)));
        break;
      case 1:
        out.push(x.c.get(key, ts));
        break;
      case 2:
      case 3:
        out.push(x.d.add(key, value, ts));
        break;
      case 4:
        out.push(x.d.values(key, ts));
        break;
      case 5:
        out.push(x.b.add(key, ts, pick(4)));
        break;
      case 6:
        x.r.set(key, ts, [value, i]);
        break;
      case 7:
        out.push(x.r.get(key, ts));
        break;
      case 8:
        if (pick(2) === 0) x.s.add(key, ts, [value, i, ts]);
        else out.push(x.s.get(key, ts));
        break;
      default:
        out.push(x.h.add(key, value, ts));
    }
  }
  out.push(x.store.stats());
  return out;
}

function buildAll(store = new WindowStore()) {
  const sc = store.scope('det');
  return {
    store,
    c: sc.counter('c', { windowMs: 60_000, buckets: 6, maxKeys: 30 }),
    d: sc.distinct('d', { windowMs: 45_000, maxKeys: 30, maxPerKey: 24 }),
    h: sc.distinct('h', { windowMs: 45_000, maxKeys: 30, maxPerKey: 24, keepValues: false }),
    b: sc.baseline('b', { periodMs: 10_000, halfLifeMs: 100_000, maxKeys: 30 }),
    r: sc.recent<[string, number]>('r', { ttlMs: 20_000, maxKeys: 30 }),
    s: sc.samples('s', { ttlMs: 20_000, maxKeys: 30, size: 3, fields: 'snn' }),
  };
}

describe('WindowStore snapshot/restore', () => {
  it('a store restored from its JSON snapshot continues exactly as the original (sums, sets, order, evictions, expiry)', () => {
    const a = buildAll();
    drive(a, 0, 2500);
    const json = JSON.stringify(a.store.snapshot());
    const b = buildAll();
    b.store.restore(JSON.parse(json) as Record<string, unknown>);
    expect(b.store.stats()).toEqual(a.store.stats());
    const ra = drive(a, 2500, 6000);
    const rb = drive(b, 2500, 6000);
    expect(rb).toEqual(ra);
    expect(JSON.stringify(b.store.snapshot())).toBe(JSON.stringify(a.store.snapshot()));
    // the run did evict and expire, so those paths were compared too
    const s = a.store.stats();
    expect(Object.values(s).some((x) => x.evicted > 0)).toBe(true);
  });

  it('is compact: one row per key, times relative to the structure clock', () => {
    const c = new SlidingCounter({ windowMs: 3600_000, maxKeys: 10_000 });
    for (let i = 0; i < 1000; i++) c.add(`user${i}@example.com`, t0 + i * 1000);
    const json = JSON.stringify(c.snapshot());
    expect(json.length / 1000).toBeLessThan(70); // key (~20 chars) + time offset + 12 buckets
    const d = new DistinctCounter({ windowMs: 3600_000, maxKeys: 10_000, maxPerKey: 50 });
    for (let i = 0; i < 1000; i++) for (let j = 0; j < 5; j++) d.add(`user${i}@example.com`, `net${j}`, t0 + i * 1000 + j);
    expect(JSON.stringify(d.snapshot()).length / 1000).toBeLessThan(120);
  });

  it('restores a snapshot written before the compact format', () => {
    const legacy = {
      'det.c': { e: 1, m: [['k', { t: t0, head: 2, b: [1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0], sum: 5 }]] },
      'det.d': { e: 0, m: [['k', [['v1', t0], ['v2', t0 + 5]], true]] },
      'det.b': { e: 0, m: [['k', { p: t0, c: 3, mean: 2, m2: 8, w: 2 }]] },
      'det.r': { e: 0, m: [['k', { t: t0, v: ['one', 1] }]] },
    };
    const x = buildAll();
    x.store.restore(legacy);
    expect(x.c.get('k', t0 + 1)).toBe(5);
    expect(x.d.values('k', t0 + 6)).toEqual(['v1', 'v2']);
    expect(x.d.add('k', 'v3', t0 + 6)).toEqual({ isNew: true, count: 3, capped: false }); // below maxPerKey: the old flag clears
    expect(x.b.get('k', t0 + 1)).toEqual({ mean: 2, std: 2, weight: 2, current: 3 });
    expect(x.r.get('k', t0 + 1)).toEqual(['one', 1]);
    expect(x.store.stats()['det.c']).toEqual({ keys: 1, evicted: 1 });
  });
});

describe('StringTable', () => {
  it('agrees with a reference count model through growth, reuse of ids and deletions', () => {
    const t = new StringTable();
    const model = new Map<string, { id: number; refs: number }>();
    const gone: string[] = [];
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
    for (let step = 0; step < 60_000; step++) {
      // short and long strings, Latin-1 (held as bytes) and not (held as strings), one a prefix of another
      const s = `v${rnd(5000)}.${'x'.repeat(rnd(20))}${['', 'é', 'Ω', '\u{1F600}', '\ud800'][rnd(5)]}`;
      const m = model.get(s);
      if (m === undefined || rnd(3) > 0) {
        const id = t.acquire(s);
        if (m === undefined) model.set(s, { id, refs: 1 });
        else {
          expect(id).toBe(m.id);
          m.refs++;
        }
      } else {
        t.release(m.id);
        if (--m.refs === 0) {
          model.delete(s);
          gone.push(s);
        }
      }
      if (step % 997 === 0) {
        expect(t.size).toBe(model.size);
        // one expect for all entries: tens of thousands of expect calls take seconds
        const wrong: string[] = [];
        for (const [k, v] of model) if (t.find(k) !== v.id || t.str(v.id) !== k) wrong.push(k);
        // released since the last check, and not added again: unknown (not served from the lookup memo)
        for (const k of gone) if (!model.has(k) && t.find(k) !== -1) wrong.push(k);
        gone.length = 0;
        expect(wrong).toEqual([]);
      }
    }
    expect(t.find('never added')).toBe(-1);
    for (const [k, v] of model) while (v.refs-- > 0) t.release(t.find(k));
    expect(t.size).toBe(0);
    for (const k of model.keys()) expect(t.find(k)).toBe(-1);
  });

  it('forgets a released string even when its id goes to a string of another length', () => {
    const t = new StringTable();
    const a = t.acquire('alice@example.com');
    expect(t.find('alice@example.com')).toBe(a);
    t.release(a);
    const b = t.acquire('192.0.2.1'); // the freed id again
    expect(b).toBe(a);
    expect(t.find('alice@example.com')).toBe(-1);
    expect(t.str(b)).toBe('192.0.2.1');
    expect(t.acquire('alice@example.com')).not.toBe(b);
    expect(t.size).toBe(2);
  });

  it('keeps probe runs short for strings crafted to collide under a known seed (hash flooding)', () => {
    // User names an attacker could precompute against seed 0: all share one
    // home cell in a table of 4096 cells (and so in every smaller one).
    const N = 1500;
    const crafted: string[] = [];
    const home = (s: string) => Math.imul(hash32(s, 0), 0x9e3779b1) >>> 20;
    const target = home('admin');
    for (let i = 0; crafted.length < N; i++) {
      const s = `admin${i}`;
      if (home(s) === target) crafted.push(s);
    }
    const known = new StringTable(0);
    const secret = new StringTable(0x5eed1234);
    for (const s of crafted) {
      known.acquire(s);
      secret.acquire(s);
    }
    expect(known.size).toBe(N);
    expect(secret.size).toBe(N);
    // one run of all of them when the seed is known; short runs when it is not
    expect(known.longestRun()).toBeGreaterThanOrEqual(N);
    expect(secret.longestRun()).toBeLessThan(64);
    for (const s of crafted) expect(secret.find(s)).toBe(known.find(s));
  });

  it('finds an equal string that is a different object (a field of the next event)', () => {
    const t = new StringTable();
    const line1 = 'sasl_username=bob@example.com';
    const line2 = 'sasl_username=bob@example.com, x';
    const id = t.acquire(line1.slice(14));
    expect(t.find(line2.slice(14, 29))).toBe(id);
    expect(t.find('bob@example.org')).toBe(-1); // same length, other string
  });
});

describe('compact layout', () => {
  it('holds each key string once for the whole store and lets it go when no structure holds it', () => {
    const x = buildAll();
    const line = 'Nov 27 10:00:00 mx1 postfix/smtpd[1]: client=a, sasl_username=someone.long@example.com';
    const key = line.slice(line.indexOf('=', 50) + 1); // a view into the line, as parsers produce
    x.c.add(key, t0);
    x.d.add(key, 'v', t0);
    x.b.add(key, t0);
    x.r.set(key, t0, ['x', 1]);
    expect(x.store.strings.size).toBe(2); // the key and 'v'
    x.c.reset(key);
    x.r.delete(key);
    expect(x.store.strings.size).toBe(2);
    // the distinct set and the baseline still hold it; expiry of the set lets 'v' go
    expect(x.d.count(key, t0 + 46_000)).toBe(0);
    expect(x.store.strings.size).toBe(1);
  });

  it('drops keys whose window has passed before evicting live ones', () => {
    const c = new SlidingCounter({ windowMs: 60_000, maxKeys: 1000 });
    for (let i = 0; i < 600; i++) c.add(`old${i}`, t0);
    for (let i = 0; i < 600; i++) c.add(`new${i}`, t0 + 10 * 60_000 + i);
    expect(c.stats()).toEqual({ keys: 600, evicted: 0 });
    expect(c.get('new0', t0 + 10 * 60_000 + 600)).toBe(1);
  });

  it('keeps the last-seen order when a set grows past the small form and shrinks back', () => {
    const d = new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 100 });
    for (let i = 0; i < 30; i++) d.add('k', `v${i}`, t0 + i * 1000);
    d.add('k', 'v3', t0 + 30_000); // seen again: now the newest
    const vals = d.values('k', t0 + 30_000);
    expect(vals).toHaveLength(30);
    expect(vals.slice(0, 3)).toEqual(['v0', 'v1', 'v2']);
    expect(vals.at(-1)).toBe('v3');
    // v0..v24 except v3 slide out: 5 left plus v3, back in the small form, same order
    expect(d.values('k', t0 + 85_000)).toEqual(['v25', 'v26', 'v27', 'v28', 'v29', 'v3']);
    expect(d.add('k', 'v26', t0 + 85_000)).toEqual({ isNew: false, count: 6, capped: false });
    expect(d.values('k', t0 + 85_000)).toEqual(['v25', 'v27', 'v28', 'v29', 'v3', 'v26']);
  });

  it('without kept values counts and tests membership by hash, and refuses to list values', () => {
    const h = new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 3, keepValues: false });
    expect(h.add('k', 'a.example', t0)).toEqual({ isNew: true, count: 1, capped: false });
    expect(h.add('k', 'a.example', t0 + 1)).toEqual({ isNew: false, count: 1, capped: false });
    h.add('k', 'b.example', t0 + 2);
    h.add('k', 'c.example', t0 + 3);
    expect(h.add('k', 'd.example', t0 + 4)).toEqual({ isNew: true, count: 3, capped: true });
    expect(h.has('k', 'b.example', t0 + 5)).toBe(true);
    expect(h.has('k', 'd.example', t0 + 5)).toBe(false);
    expect(() => h.values('k', t0)).toThrow(/keepValues/);
  });

  it('with a codec holds coded values as numbers (no string), others as strings, the same to every caller and snapshot', () => {
    // codes for `n<digits>` without leading zeros; anything else stays a string
    const codec = { encode: (v: string) => (/^n(0|[1-9]\d{0,5})$/.test(v) ? Number(v.slice(1)) : -1), decode: (c: number) => `n${c}` };
    const make = () => {
      const store = new WindowStore();
      return { store, d: store.scope('x').distinct('d', { windowMs: 60_000, maxKeys: 10, maxPerKey: 40, codec }) };
    };
    const a = make();
    const plain = new DistinctCounter({ windowMs: 60_000, maxKeys: 10, maxPerKey: 40 });
    // 30 values: past the small form and back, mixed coded and not
    const vals = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? `s${i}` : `n${i}`));
    for (let i = 0; i < 30; i++) {
      expect(a.d.add('k', vals[i]!, t0 + i * 1000)).toEqual(plain.add('k', vals[i]!, t0 + i * 1000));
    }
    expect(a.d.add('k', 'n4', t0 + 30_000)).toEqual(plain.add('k', 'n4', t0 + 30_000));
    expect(a.d.add('k', 'n04', t0 + 30_000)).toEqual(plain.add('k', 'n04', t0 + 30_000)); // not coded: a different value
    expect(a.store.strings.size).toBe(1 + 10 + 1); // the key, s0..s27, n04
    expect(a.d.values('k', t0 + 30_000)).toEqual(plain.values('k', t0 + 30_000));
    expect(a.d.has('k', 'n7', t0 + 30_000)).toBe(true);
    expect(a.d.has('k', 'n99', t0 + 30_000)).toBe(false);
    // the snapshot lists the values as strings, as without a codec
    const snap = JSON.parse(JSON.stringify(a.store.snapshot())) as Record<string, unknown>;
    expect((snap['x.d'] as { m: unknown[][] }).m[0]).toContain('n4');
    const b = make();
    b.store.restore(snap);
    expect(b.d.values('k', t0 + 30_000)).toEqual(plain.values('k', t0 + 30_000));
    expect(b.store.strings.size).toBe(a.store.strings.size);
    // expiry lets the strings go, codes held nothing
    for (const x of [a, b]) {
      expect(x.d.values('k', t0 + 88_000)).toEqual(plain.values('k', t0 + 88_000));
      expect(x.store.strings.size).toBe(1 + 1); // the key, n04
      expect(x.d.count('k', t0 + 200_000)).toBe(0);
      expect(x.store.strings.size).toBe(1);
    }
  });
});

describe('Samples', () => {
  it('keeps the newest samples per key, oldest first, and starts over after the TTL', () => {
    const s = new Samples({ ttlMs: 60_000, maxKeys: 10, size: 3, fields: 'snsn' });
    for (let i = 0; i < 5; i++) s.add('k', t0 + i * 1000, [`f${i}`, i, `q${i}`, i * 1.5]);
    expect(s.get('k', t0 + 5000)).toEqual([
      ['f2', 2, 'q2', 3],
      ['f3', 3, 'q3', 4.5],
      ['f4', 4, 'q4', 6],
    ]);
    expect(s.get('k', t0 + 4000 + 60_001)).toBeUndefined(); // nothing added for longer than the TTL
    s.add('k', t0 + 200_000, ['g', 1, 'h', 2]);
    expect(s.get('k', t0 + 200_000)).toEqual([['g', 1, 'h', 2]]);
    expect(s.get('nobody', t0)).toBeUndefined();
  });

  it('gives back short (c) strings as added: in bytes when short and one-byte, else as given; snapshots alike', () => {
    const make = () => {
      const store = new WindowStore();
      return { store, s: store.scope('d').samples('s', { ttlMs: 60_000, maxKeys: 4, size: 2, fields: 'cnc' }) };
    };
    const a = make();
    const vals = ['', 'A1B2C3D4E5', '123456789012345', '1234567890123456', '2001:db8::dead:beef:1', 'ümlaut', 'ŉ-two-byte', '\u0000\u00ff'];
    for (let i = 0; i < vals.length; i++) a.s.add(`k${i % 3}`, t0 + i, [vals[i]!, i, vals[(i + 3) % vals.length]!]);
    const expected = (i: number) => [vals[i]!, i, vals[(i + 3) % vals.length]!];
    expect(a.s.get('k0', t0 + 10)).toEqual([expected(3), expected(6)]);
    expect(a.s.get('k1', t0 + 10)).toEqual([expected(4), expected(7)]);
    expect(a.s.get('k2', t0 + 10)).toEqual([expected(2), expected(5)]);
    const b = make();
    b.store.restore(JSON.parse(JSON.stringify(a.store.snapshot())) as Record<string, unknown>);
    for (const k of ['k0', 'k1', 'k2']) expect(b.s.get(k, t0 + 10)).toEqual(a.s.get(k, t0 + 10));
    // long values let go with their key (a reused slot starts clean)
    for (let i = 0; i < 20; i++) a.s.add(`n${i}`, t0 + 100 + i, ['q', i, 'r']);
    expect((a.s as unknown as { long: Map<number, string> }).long.size).toBe(0);
  });

  it('holds shared (s) strings once in the store, one reference per sample, let go when overwritten or dropped', () => {
    const store = new WindowStore();
    const s = store.scope('d').samples('s', { ttlMs: 60_000, maxKeys: 2, size: 2, fields: 'sn' });
    const c = store.scope('d').counter('c', { windowMs: 60_000, maxKeys: 10 });
    c.add('mail.log', t0); // the file name is also some key
    for (let i = 0; i < 5; i++) s.add('k', t0 + i, [i < 3 ? 'mail.log' : `other${i}.log`, i]);
    expect(s.get('k', t0 + 5)).toEqual([
      ['other3.log', 3],
      ['other4.log', 4],
    ]);
    expect(store.strings.size).toBe(4); // mail.log, k, other3.log, other4.log
    s.add('j', t0 + 6, ['mail.log', 6]);
    s.add('m', t0 + 7, ['mail.log', 7]); // evicts k (maxKeys 2, after the batch overshoot of 1)
    s.add('n', t0 + 8, ['mail.log', 8]);
    expect(s.get('k', t0 + 8)).toBeUndefined();
    expect(store.strings.find('other3.log')).toBe(-1);
    c.reset('mail.log');
    expect(store.strings.find('mail.log')).toBeGreaterThanOrEqual(0); // still in samples
    expect(s.get('n', t0 + 200_000)).toBeUndefined(); // expired: dropped
    s.add('z', t0 + 400_000, ['x', 1]); // sweeps what expired
    for (const k of ['j', 'm']) s.get(k, t0 + 400_000);
    expect(store.strings.find('mail.log')).toBe(-1);
  });

  it('gives back integer (i) fields exactly, also numbers that are not 32-bit integers', () => {
    const s = new Samples({ ttlMs: 60_000, maxKeys: 2, size: 3, fields: 'in' });
    const vals = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 1.5, -0, Number.NaN, 1e300, 7];
    for (let i = 0; i < vals.length; i++) s.add('k', t0 + i, [vals[i]!, i]);
    const got = s.get('k', t0 + 20)!;
    expect(got.map((r) => r[1])).toEqual([8, 9, 10]);
    expect(Object.is(got[0]![0], Number.NaN)).toBe(true);
    expect(got.slice(1).map((r) => r[0])).toEqual([1e300, 7]);
    for (let i = 0; i < vals.length; i++) {
      s.add('j', t0 + 100 + i, [vals[i]!, i]);
      expect(Object.is(s.get('j', t0 + 100 + i)!.at(-1)![0], vals[i])).toBe(true);
    }
    // values held aside let go with their key
    for (let i = 0; i < 10; i++) s.add(`n${i}`, t0 + 200 + i, [1, 1]);
    expect((s as unknown as { wide: Map<number, number> }).wide.size).toBe(0);
  });

  it('gives back offsets (u) and times (t) exactly, in 32 bits when they fit and aside when not, across snapshots', () => {
    const DAY = 86_400_000;
    const s = new Samples({ ttlMs: 60 * DAY, maxKeys: 2, size: 4, fields: 'ut' });
    const wide = () => (s as unknown as { wide: Map<number, number> }).wide.size;
    const offsets = [0, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 1.5, -1, -0, 7];
    for (let i = 0; i < offsets.length; i++) {
      s.add('o', t0 + i, [offsets[i]!, t0 + i]);
      const last = s.get('o', t0 + i)!.at(-1)!;
      expect(Object.is(last[0], offsets[i])).toBe(true);
      expect(last[1]).toBe(t0 + i);
    }
    s.delete('o');
    expect(wide()).toBe(0);
    // a key sampled for seven weeks: its base moves, old samples stay exact (aside once 24 days away)
    const times = [0, 0.25, 10 * DAY, 35 * DAY, 40 * DAY, 49 * DAY].map((d) => t0 + d);
    for (const t of times) s.add('t', t, [1, t]);
    expect(s.get('t', times.at(-1)!)!.map((r) => r[1])).toEqual(times.slice(-4));
    expect(wide()).toBeGreaterThan(0);
    const again = new WindowStore();
    const r = again.scope('d').samples('x', { ttlMs: 60 * DAY, maxKeys: 2, size: 4, fields: 'ut' });
    const store = new WindowStore();
    const w = store.scope('d').samples('x', { ttlMs: 60 * DAY, maxKeys: 2, size: 4, fields: 'ut' });
    for (const t of times) w.add('t', t, [2 ** 32 + 5, t]);
    again.restore(JSON.parse(JSON.stringify(store.snapshot())) as Record<string, unknown>);
    expect(r.get('t', times.at(-1)!)).toEqual(times.slice(-4).map((t) => [2 ** 32 + 5, t]));
  });

  it('latest() reads the newest sample into a row in either keep mode, and nothing past the TTL', () => {
    for (const keep of ['newest', 'first-and-newest'] as const) {
      const s = new Samples({ ttlMs: 60_000, maxKeys: 10, size: 3, fields: 'sti', keep });
      const into: (string | number)[] = ['', 0, 0];
      expect(s.latest('k', t0, into)).toBe(false);
      for (let i = 0; i < 5; i++) {
        s.add('k', t0 + i, [`f${i}`, t0 + i, i]);
        expect(s.latest('k', t0 + i, into)).toBe(true);
        expect(into).toEqual([`f${i}`, t0 + i, i]);
        expect(into).toEqual(s.get('k', t0 + i)!.at(-1));
      }
      expect(s.latest('k', t0 + 4 + 60_001, into)).toBe(false);
    }
  });

  it("'first-and-newest' keeps how it started and where it is now", () => {
    const s = new Samples({ ttlMs: 60_000, maxKeys: 10, size: 3, fields: 'sn', keep: 'first-and-newest' });
    for (let i = 0; i < 6; i++) s.add('k', t0 + i, [`ip${i}`, i]);
    expect(s.get('k', t0 + 6)).toEqual([
      ['ip0', 0],
      ['ip1', 1],
      ['ip5', 5],
    ]);
  });

  it('restores the rows of a Recent it replaced through fromRecent, and its own rows as usual', () => {
    const store = new WindowStore();
    const opts = { ttlMs: 60_000, maxKeys: 10, size: 1, fields: 'ni', fromRecent: (v: unknown) => ((v as { bad?: true }).bad ? undefined : [(v as { a: number }).a, (v as { b: number }).b]) };
    const s = store.scope('d').samples('h', opts);
    // a v2 snapshot of the Recent this replaced: [key, time - now, value]
    store.restore({ 'd.h': { v: 2, e: 0, n: t0, w: 0, m: [['old', -5, { a: 7.5, b: 3 }], ['odd', 0, { bad: true }]] } });
    expect(s.get('old', t0)).toEqual([[7.5, 3]]);
    expect(s.get('odd', t0)).toEqual([]);
    s.add('new', t0 + 1, [1, 2]);
    s.delete('old');
    const again = new WindowStore();
    const r = again.scope('d').samples('h', opts);
    again.restore(JSON.parse(JSON.stringify(store.snapshot())) as Record<string, unknown>);
    expect(r.get('new', t0 + 1)).toEqual([[1, 2]]);
    expect(r.get('old', t0 + 1)).toBeUndefined();
  });

  it('restores the Recent rings and flat sample lists of snapshots before the Samples structure', () => {
    const store = new WindowStore();
    const ring = store.scope('d').samples('ring', { ttlMs: 60_000, maxKeys: 10, size: 2, fields: 'sn' });
    const flat = store.scope('d').samples('flat', { ttlMs: 60_000, maxKeys: 10, size: 4, fields: 'sn', keep: 'first-and-newest' });
    store.restore({
      // ring of 3 slots, next = 1, count = 3: oldest is slot 1
      'd.ring': { e: 0, m: [['k', { t: t0, v: [1, 3, 2, 'c', 3, 'a', 1, 'b', 2] }]] },
      'd.flat': { e: 0, m: [['k', { t: t0, v: ['x', 1, 'y', 2] }]] },
    });
    expect(ring.get('k', t0)).toEqual([
      ['b', 2],
      ['c', 3],
    ]);
    expect(flat.get('k', t0)).toEqual([
      ['x', 1],
      ['y', 2],
    ]);
  });
});
