/**
 * The window store: the only place detector state lives. Every structure is
 * keyed (account, IP, ...), bounded (a key cap with least-recently-used
 * eviction, counted), expires by *log* time, and holds plain data, so the
 * whole store can be snapshotted to JSON and restored in another process.
 *
 * Structures:
 * - SlidingCounter: per-key sum over a sliding window, in fixed buckets.
 * - DistinctCounter: per-key distinct values seen within a window (capped per key).
 * - Baseline: per-key decayed rate (mean and variance of per-bucket counts).
 * - Recent: per-key small JSON value with a TTL (e.g. "last failures").
 */

export interface Bounds {
  /** Most keys kept; the least recently touched beyond it are evicted. */
  maxKeys: number;
}

export interface StoreStats {
  keys: number;
  evicted: number;
}

interface Keyed<V> {
  map: Map<string, V>;
  evicted: number;
}

/**
 * Mark key as most recently used. Eviction is batched: the map may overshoot
 * maxKeys by 1/16 and is then trimmed in one pass, because evicting one key
 * per insert with keys().next() walks V8's deleted-entry holes each time
 * (quadratic once a structure is full).
 */
function touch<V>(k: Keyed<V>, key: string, v: V, maxKeys: number): void {
  const m = k.map;
  m.delete(key);
  m.set(key, v);
  if (m.size > maxKeys + (maxKeys >> 4) + 1) {
    let excess = m.size - maxKeys;
    for (const old of m.keys()) {
      if (excess-- <= 0) break;
      m.delete(old);
      k.evicted++;
    }
  }
}

// --- SlidingCounter ------------------------------------------------------------

interface CounterState {
  /** Start (ms) of the bucket at `head`. */
  t: number;
  head: number;
  b: number[];
  sum: number;
}

export interface SlidingCounterOptions extends Bounds {
  windowMs: number;
  /** Resolution: the window is split into this many buckets. Default 12. */
  buckets?: number;
}

export class SlidingCounter {
  private readonly k: Keyed<CounterState> = { map: new Map(), evicted: 0 };
  private readonly bucketMs: number;
  private readonly n: number;

  constructor(private readonly opts: SlidingCounterOptions) {
    this.n = opts.buckets ?? 12;
    this.bucketMs = Math.max(1, Math.floor(opts.windowMs / this.n));
  }

  /** Add `by` to key at time `ts`; returns the window sum after adding. */
  add(key: string, ts: number, by = 1): number {
    let s = this.k.map.get(key);
    const start = ts - (ts % this.bucketMs);
    if (s === undefined) {
      s = { t: start, head: 0, b: new Array<number>(this.n).fill(0), sum: 0 };
    } else {
      this.advance(s, start);
    }
    if (start >= s.t - (this.n - 1) * this.bucketMs) {
      // ts may be slightly older than head (interleaved files): put it in its bucket if still in the window
      const back = Math.round((s.t - start) / this.bucketMs);
      const idx = (s.head - back + this.n) % this.n;
      s.b[idx] = (s.b[idx] ?? 0) + by;
      s.sum += by;
    }
    touch(this.k, key, s, this.opts.maxKeys);
    return s.sum;
  }

  /** Window sum for key as of `ts` (0 for unknown keys). */
  get(key: string, ts: number): number {
    const s = this.k.map.get(key);
    if (s === undefined) return 0;
    this.advance(s, ts - (ts % this.bucketMs));
    return s.sum;
  }

  /** Zero a key (e.g. a failure streak that a success ends). */
  reset(key: string): void {
    this.k.map.delete(key);
  }

  private advance(s: CounterState, start: number): void {
    if (start <= s.t) return;
    let steps = Math.round((start - s.t) / this.bucketMs);
    if (steps >= this.n) {
      s.b.fill(0);
      s.sum = 0;
      s.head = 0;
      s.t = start;
      return;
    }
    while (steps-- > 0) {
      s.head = (s.head + 1) % this.n;
      s.sum -= s.b[s.head] ?? 0;
      s.b[s.head] = 0;
      s.t += this.bucketMs;
    }
  }

  stats(): StoreStats {
    return { keys: this.k.map.size, evicted: this.k.evicted };
  }

  snapshot(): unknown {
    return { e: this.k.evicted, m: [...this.k.map] };
  }

  restore(data: unknown): void {
    const d = data as { e: number; m: [string, CounterState][] };
    this.k.map = new Map(d.m);
    this.k.evicted = d.e;
  }
}

// --- DistinctCounter -----------------------------------------------------------

export interface DistinctCounterOptions extends Bounds {
  windowMs: number;
  /** Most distinct values remembered per key; past it `capped` is reported and the count is a lower bound. */
  maxPerKey: number;
}

interface DistinctState {
  /** value → last seen (ms) */
  v: Map<string, number>;
  capped: boolean;
}

export class DistinctCounter {
  private readonly k: Keyed<DistinctState> = { map: new Map(), evicted: 0 };

  constructor(private readonly opts: DistinctCounterOptions) {}

  /** Record `value` for key at `ts`; returns whether it was new within the window, and the distinct count. */
  add(key: string, value: string, ts: number): { isNew: boolean; count: number; capped: boolean } {
    let s = this.k.map.get(key);
    if (s === undefined) s = { v: new Map(), capped: false };
    this.prune(s, ts);
    const had = s.v.has(value);
    if (had) {
      s.v.delete(value);
      s.v.set(value, ts);
    } else if (s.v.size < this.opts.maxPerKey) {
      s.v.set(value, ts);
    } else {
      s.capped = true;
    }
    touch(this.k, key, s, this.opts.maxKeys);
    return { isNew: !had, count: s.v.size, capped: s.capped };
  }

  count(key: string, ts: number): number {
    const s = this.k.map.get(key);
    if (s === undefined) return 0;
    this.prune(s, ts);
    return s.v.size;
  }

  /** The values currently in the window for key (newest last). */
  values(key: string, ts: number): string[] {
    const s = this.k.map.get(key);
    if (s === undefined) return [];
    this.prune(s, ts);
    return [...s.v.keys()];
  }

  has(key: string, value: string, ts: number): boolean {
    const s = this.k.map.get(key);
    if (s === undefined) return false;
    this.prune(s, ts);
    return s.v.has(value);
  }

  private prune(s: DistinctState, ts: number): void {
    const limit = ts - this.opts.windowMs;
    for (const [val, seen] of s.v) {
      if (seen >= limit) break; // insertion order = last-seen order
      s.v.delete(val);
    }
    if (s.v.size < this.opts.maxPerKey) s.capped = false;
  }

  stats(): StoreStats {
    return { keys: this.k.map.size, evicted: this.k.evicted };
  }

  snapshot(): unknown {
    return { e: this.k.evicted, m: [...this.k.map].map(([k, s]) => [k, [...s.v], s.capped]) };
  }

  restore(data: unknown): void {
    const d = data as { e: number; m: [string, [string, number][], boolean][] };
    this.k.map = new Map(d.m.map(([k, v, capped]) => [k, { v: new Map(v), capped }]));
    this.k.evicted = d.e;
  }
}

// --- Baseline ----------------------------------------------------------------------

export interface BaselineOptions extends Bounds {
  /** Length of one observation period (e.g. 1 h): the baseline learns the count per period. */
  periodMs: number;
  /** Half-life of the decay (e.g. 7 days): older periods weigh half as much after this long. */
  halfLifeMs: number;
}

interface BaselineState {
  /** Start of the current period. */
  p: number;
  /** Count in the current period so far. */
  c: number;
  /** Decayed weighted mean and sum of squared deviations (variance = m2 / w) of completed periods' counts. */
  mean: number;
  m2: number;
  /** Decayed weight: how much history stands behind the mean (≈ periods observed). */
  w: number;
}

export interface BaselineView {
  mean: number;
  std: number;
  /** Periods of history behind the mean (decayed). */
  weight: number;
  current: number;
}

/**
 * Learns, per key, the usual count per period with exponentially decayed
 * mean and variance (West's weighted incremental algorithm). Quiet periods
 * count as zeros, so an account that sends 5 mails on one day a week keeps a
 * low mean.
 */
export class Baseline {
  private readonly k: Keyed<BaselineState> = { map: new Map(), evicted: 0 };
  private readonly alphaPerPeriod: number;

  constructor(private readonly opts: BaselineOptions) {
    this.alphaPerPeriod = 1 - Math.pow(0.5, opts.periodMs / opts.halfLifeMs);
  }

  /** Count `by` for key at ts. */
  add(key: string, ts: number, by = 1): BaselineView {
    const s = this.state(key, ts);
    s.c += by;
    touch(this.k, key, s, this.opts.maxKeys);
    return this.view(s);
  }

  get(key: string, ts: number): BaselineView | undefined {
    const s = this.k.map.get(key);
    if (s === undefined) return undefined;
    this.roll(s, ts);
    return this.view(s);
  }

  private state(key: string, ts: number): BaselineState {
    let s = this.k.map.get(key);
    const p = ts - (ts % this.opts.periodMs);
    if (s === undefined) s = { p, c: 0, mean: 0, m2: 0, w: 0 };
    else this.roll(s, ts);
    return s;
  }

  private roll(s: BaselineState, ts: number): void {
    const p = ts - (ts % this.opts.periodMs);
    if (p <= s.p) return;
    const periods = Math.round((p - s.p) / this.opts.periodMs);
    // close the current period, then any quiet ones (zeros), at most ~10 half-lives' worth
    const quiet = Math.min(periods - 1, Math.ceil((10 * this.opts.halfLifeMs) / this.opts.periodMs));
    this.observe(s, s.c);
    for (let i = 0; i < quiet; i++) this.observe(s, 0);
    s.c = 0;
    s.p = p;
  }

  /**
   * Weighted incremental mean/variance (West 1979) where every older
   * period's weight decays by (1 - alpha) per period. Unlike a plain EWMA
   * seeded with the first value, one busy first hour followed by quiet ones
   * does not dominate the mean.
   */
  private observe(s: BaselineState, x: number): void {
    const keep = 1 - this.alphaPerPeriod;
    const w = s.w * keep + 1;
    s.m2 *= keep;
    const diff = x - s.mean;
    s.mean += diff / w;
    s.m2 += diff * (x - s.mean);
    s.w = w;
  }

  private view(s: BaselineState): BaselineView {
    return { mean: s.mean, std: s.w > 0 ? Math.sqrt(Math.max(0, s.m2 / s.w)) : 0, weight: s.w, current: s.c };
  }

  stats(): StoreStats {
    return { keys: this.k.map.size, evicted: this.k.evicted };
  }

  snapshot(): unknown {
    return { e: this.k.evicted, m: [...this.k.map] };
  }

  restore(data: unknown): void {
    const d = data as { e: number; m: [string, BaselineState][] };
    this.k.map = new Map(d.m);
    this.k.evicted = d.e;
  }
}

// --- Recent ----------------------------------------------------------------------------

export interface RecentOptions extends Bounds {
  ttlMs: number;
}

/** Per-key small JSON value that expires `ttlMs` after it was last set. */
export class Recent<T> {
  private readonly k: Keyed<{ t: number; v: T }> = { map: new Map(), evicted: 0 };

  constructor(private readonly opts: RecentOptions) {}

  get(key: string, ts: number): T | undefined {
    const s = this.k.map.get(key);
    if (s === undefined) return undefined;
    if (ts - s.t > this.opts.ttlMs) {
      this.k.map.delete(key);
      return undefined;
    }
    return s.v;
  }

  set(key: string, ts: number, v: T): void {
    touch(this.k, key, { t: ts, v }, this.opts.maxKeys);
  }

  delete(key: string): void {
    this.k.map.delete(key);
  }

  stats(): StoreStats {
    return { keys: this.k.map.size, evicted: this.k.evicted };
  }

  snapshot(): unknown {
    return { e: this.k.evicted, m: [...this.k.map] };
  }

  restore(data: unknown): void {
    const d = data as { e: number; m: [string, { t: number; v: T }][] };
    this.k.map = new Map(d.m);
    this.k.evicted = d.e;
  }
}

// --- the store ------------------------------------------------------------------------------

type Structure = SlidingCounter | DistinctCounter | Baseline | Recent<unknown>;

/**
 * Hands each detector its named structures. Names are scoped by the
 * detector id, so two detectors never share state by accident, and the
 * whole store snapshots to one JSON object.
 */
export class WindowStore {
  private readonly structures = new Map<string, Structure>();

  scope(prefix: string): ScopedStore {
    return new ScopedStore(this, prefix);
  }

  register<S extends Structure>(name: string, make: () => S): S {
    const existing = this.structures.get(name);
    if (existing) return existing as S;
    const s = make();
    this.structures.set(name, s);
    return s;
  }

  stats(): Record<string, StoreStats> {
    return Object.fromEntries([...this.structures].map(([n, s]) => [n, s.stats()]));
  }

  snapshot(): Record<string, unknown> {
    return Object.fromEntries([...this.structures].map(([n, s]) => [n, s.snapshot()]));
  }

  /** Restore structures registered so far (detectors register theirs when created). */
  restore(snap: Record<string, unknown>): void {
    for (const [name, data] of Object.entries(snap)) this.structures.get(name)?.restore(data);
  }
}

export class ScopedStore {
  constructor(
    private readonly store: WindowStore,
    private readonly prefix: string,
  ) {}

  counter(name: string, opts: SlidingCounterOptions): SlidingCounter {
    return this.store.register(`${this.prefix}.${name}`, () => new SlidingCounter(opts));
  }

  distinct(name: string, opts: DistinctCounterOptions): DistinctCounter {
    return this.store.register(`${this.prefix}.${name}`, () => new DistinctCounter(opts));
  }

  baseline(name: string, opts: BaselineOptions): Baseline {
    return this.store.register(`${this.prefix}.${name}`, () => new Baseline(opts));
  }

  recent<T>(name: string, opts: RecentOptions): Recent<T> {
    return this.store.register(`${this.prefix}.${name}`, () => new Recent<T>(opts)) as Recent<T>;
  }
}
