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

/**
 * A copy of `s` that does not keep a larger string alive. A substring or a
 * regex capture of 13+ characters is a view into its parent (the whole log
 * line, or the read chunk it came from): stored as a key for hours, it would
 * pin that parent. Used only when a key or value is first stored.
 */
export function own(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

/** Keys whose last activity is this much older than their window are dropped (out-of-order tolerance). */
const EXPIRY_SLACK_MS = 120_000;

class Keyed<V> {
  map = new Map<string, V>();
  evicted = 0;
  /** Latest time written (the store's "now" for expiry). */
  now = -Infinity;
  private writes = 0;

  /**
   * @param expired whether a value holds nothing at time `limit` = now - its window - slack
   *   (dropping it is then the same as keeping it: lookups would treat it as absent).
   * @param spanMs the structure's window / TTL (Infinity: never swept)
   */
  constructor(
    private readonly expired: (v: V, limit: number) => boolean,
    private readonly spanMs: number,
  ) {}

  /**
   * Mark key as most recently used. Eviction is batched: the map may overshoot
   * maxKeys by 1/16 and is then trimmed in one pass, because evicting one key
   * per insert with keys().next() walks V8's deleted-entry holes each time
   * (quadratic once a structure is full). Now and then, keys whose window
   * has passed are dropped from the least recently written end first, so a
   * short-window structure holds its live keys, not maxKeys of mostly dead ones.
   */
  touch(key: string, v: V, ts: number, maxKeys: number): void {
    const m = this.map;
    if (ts > this.now) this.now = ts;
    if (m.delete(key)) m.set(key, v);
    else m.set(own(key), v);
    if (m.size > maxKeys + (maxKeys >> 4) + 1) {
      let excess = m.size - maxKeys;
      for (const old of m.keys()) {
        if (excess-- <= 0) break;
        m.delete(old);
        this.evicted++;
      }
    }
    if (++this.writes >= (m.size >> 3) + 256) {
      this.writes = 0;
      this.sweep();
    }
  }

  private sweep(): void {
    if (!Number.isFinite(this.spanMs)) return;
    const limit = this.now - this.spanMs - EXPIRY_SLACK_MS;
    const m = this.map;
    for (const [key, v] of m) {
      if (!this.expired(v, limit)) break;
      m.delete(key);
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
  private readonly k: Keyed<CounterState>;
  private readonly bucketMs: number;
  private readonly n: number;

  constructor(private readonly opts: SlidingCounterOptions) {
    this.n = opts.buckets ?? 12;
    this.bucketMs = Math.max(1, Math.floor(opts.windowMs / this.n));
    const span = this.n * this.bucketMs;
    // every bucket is zero once the head bucket's start is `span` behind now (limit = now - windowMs - slack)
    this.k = new Keyed<CounterState>((s, limit) => s.t + span - opts.windowMs <= limit, opts.windowMs);
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
    this.k.touch(key, s, ts, this.opts.maxKeys);
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

/**
 * Small sets (most keys: an account's few networks, an IP's one or two
 * accounts) are two parallel arrays, oldest first; past SMALL values they
 * become a Map (value → last seen, insertion order = last-seen order).
 */
interface DistinctState {
  /** values, oldest first (small form), or null when `m` holds them */
  k: string[] | null;
  /** last seen (ms) of k[i] */
  t: number[] | null;
  m: Map<string, number> | null;
  /** newest last-seen time (for expiry) */
  l: number;
  capped: boolean;
}

const SMALL = 16;

export class DistinctCounter {
  private readonly k: Keyed<DistinctState>;

  constructor(private readonly opts: DistinctCounterOptions) {
    this.k = new Keyed<DistinctState>((s, limit) => s.l < limit, opts.windowMs);
  }

  /** Record `value` for key at `ts`; returns whether it was new within the window, and the distinct count. */
  add(key: string, value: string, ts: number): { isNew: boolean; count: number; capped: boolean } {
    let s = this.k.map.get(key);
    if (s === undefined) s = { k: [], t: [], m: null, l: ts, capped: false };
    else this.prune(s, ts);
    if (ts > s.l) s.l = ts;
    let had: boolean;
    let count: number;
    const ks = s.k;
    if (ks !== null) {
      const tt = s.t!;
      const i = ks.indexOf(value);
      had = i >= 0;
      if (had) {
        const last = ks.length - 1;
        if (i !== last) {
          ks.splice(i, 1);
          tt.splice(i, 1);
          ks.push(value);
          tt.push(ts);
        } else {
          tt[last] = ts;
        }
      } else if (ks.length < this.opts.maxPerKey) {
        if (ks.length < SMALL) {
          ks.push(own(value));
          tt.push(ts);
        } else {
          const m = new Map<string, number>();
          for (let j = 0; j < ks.length; j++) m.set(ks[j]!, tt[j]!);
          m.set(own(value), ts);
          s.m = m;
          s.k = null;
          s.t = null;
        }
      } else {
        s.capped = true;
      }
      count = s.k !== null ? s.k.length : s.m!.size;
    } else {
      const m = s.m!;
      had = m.has(value);
      if (had) {
        m.delete(value);
        m.set(value, ts);
      } else if (m.size < this.opts.maxPerKey) {
        m.set(own(value), ts);
      } else {
        s.capped = true;
      }
      count = m.size;
    }
    this.k.touch(key, s, ts, this.opts.maxKeys);
    return { isNew: !had, count, capped: s.capped };
  }

  count(key: string, ts: number): number {
    const s = this.k.map.get(key);
    if (s === undefined) return 0;
    this.prune(s, ts);
    return size(s);
  }

  /** The values currently in the window for key (newest last). */
  values(key: string, ts: number): string[] {
    const s = this.k.map.get(key);
    if (s === undefined) return [];
    this.prune(s, ts);
    return s.k !== null ? s.k.slice() : [...s.m!.keys()];
  }

  has(key: string, value: string, ts: number): boolean {
    const s = this.k.map.get(key);
    if (s === undefined) return false;
    this.prune(s, ts);
    return s.k !== null ? s.k.includes(value) : s.m!.has(value);
  }

  private prune(s: DistinctState, ts: number): void {
    const limit = ts - this.opts.windowMs;
    if (s.k !== null) {
      const tt = s.t!;
      let j = 0;
      while (j < tt.length && tt[j]! < limit) j++; // oldest first = last-seen order
      if (j > 0) {
        s.k.splice(0, j);
        tt.splice(0, j);
      }
    } else {
      const m = s.m!;
      for (const [val, seen] of m) {
        if (seen >= limit) break; // insertion order = last-seen order
        m.delete(val);
      }
    }
    if (size(s) < this.opts.maxPerKey) s.capped = false;
  }

  stats(): StoreStats {
    return { keys: this.k.map.size, evicted: this.k.evicted };
  }

  snapshot(): unknown {
    return { e: this.k.evicted, m: [...this.k.map].map(([k, s]) => [k, entries(s), s.capped]) };
  }

  restore(data: unknown): void {
    const d = data as { e: number; m: [string, [string, number][], boolean][] };
    this.k.map = new Map(d.m.map(([k, v, capped]) => [k, fromEntries(v, capped)]));
    this.k.evicted = d.e;
  }
}

function size(s: DistinctState): number {
  return s.k !== null ? s.k.length : s.m!.size;
}

function entries(s: DistinctState): [string, number][] {
  if (s.k === null) return [...s.m!];
  const tt = s.t!;
  return s.k.map((v, i) => [v, tt[i]!]);
}

function fromEntries(v: [string, number][], capped: boolean): DistinctState {
  const l = v.reduce((mx, e) => (e[1] > mx ? e[1] : mx), -Infinity);
  if (v.length <= SMALL) return { k: v.map((e) => e[0]), t: v.map((e) => e[1]), m: null, l, capped };
  return { k: null, t: null, m: new Map(v), l, capped };
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
  private readonly k = new Keyed<BaselineState>(() => false, Infinity);
  private readonly alphaPerPeriod: number;

  constructor(private readonly opts: BaselineOptions) {
    this.alphaPerPeriod = 1 - Math.pow(0.5, opts.periodMs / opts.halfLifeMs);
  }

  /** Count `by` for key at ts. */
  add(key: string, ts: number, by = 1): BaselineView {
    const s = this.state(key, ts);
    s.c += by;
    this.k.touch(key, s, ts, this.opts.maxKeys);
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
  // values held as unknown (Keyed is invariant in its value type; Recent<T> must fit Recent<unknown>)
  private readonly k: Keyed<{ t: number; v: unknown }>;

  constructor(private readonly opts: RecentOptions) {
    this.k = new Keyed<{ t: number; v: unknown }>((s, limit) => s.t < limit, opts.ttlMs);
  }

  get(key: string, ts: number): T | undefined {
    const s = this.k.map.get(key);
    if (s === undefined) return undefined;
    if (ts - s.t > this.opts.ttlMs) {
      this.k.map.delete(key);
      return undefined;
    }
    return s.v as T;
  }

  set(key: string, ts: number, v: T): void {
    const s = this.k.map.get(key);
    if (s !== undefined) {
      // reuse the entry (no allocation per update)
      s.t = ts;
      s.v = v;
      this.k.touch(key, s, ts, this.opts.maxKeys);
    } else {
      this.k.touch(key, { t: ts, v }, ts, this.opts.maxKeys);
    }
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
