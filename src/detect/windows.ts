/**
 * The window store: the only place detector state lives. Every structure is
 * keyed (account, IP, ...), bounded (a key cap with least-recently-used
 * eviction, counted), expires by *log* time, and snapshots to compact JSON
 * that restores in another process and continues identically.
 *
 * Structures:
 * - SlidingCounter: per-key sum over a sliding window, in fixed buckets.
 * - DistinctCounter: per-key distinct values seen within a window (capped per key).
 * - Baseline: per-key decayed rate (mean and variance of per-bucket counts).
 * - Recent: per-key small JSON value with a TTL (e.g. "last failures").
 * - Samples: per-key last few evidence samples (fixed fields), with a TTL.
 *
 * Layout (why it is not a Map of objects): with 100,000 accounts and
 * 1,000,000 IPs the store holds millions of (structure, key) entries, and an
 * object per entry, a copy of the key per structure and boxed doubles cost
 * ~1 KB per account per detector. So:
 * - every key and every distinct value is held once per store, in a
 *   reference-counted StringTable, and known to structures by its integer id;
 * - each structure maps key id → slot with an open-addressing Int32Array
 *   index, keeps its least-recently-used order as a doubly linked list of
 *   slots, and stores per-key numbers in typed-array columns by slot;
 * - a DistinctCounter's small sets are runs of (value id, last seen) in
 *   linked typed-array chunks of 4 entries; larger sets are a Map.
 * Nothing is allocated per key beyond the shared key string, and a key whose
 * window has passed is dropped (its slot reused) before live keys are evicted.
 */

import { randomInt } from 'node:crypto';
import { TextArena } from './text-arena.js';

export interface Bounds {
  /** Most keys kept; the least recently touched beyond it are evicted. */
  maxKeys: number;
}

export interface StoreStats {
  keys: number;
  evicted: number;
}

/**
 * A flat copy of `s` that does not keep a larger string alive. A substring
 * or a regex capture of 13+ characters is a view into its parent (the whole
 * log line, or the read chunk it came from), and a template literal of 13+
 * is a tree of its parts: stored as a key for hours, either pins what it
 * came from. (`(' ' + s).slice(1)`, the usual idiom, is again a view: 32
 * bytes more per string, on top of its flat parent.) The JSON round trip
 * gives one sequential string, exact for any string (lone surrogates
 * included). Shorter strings are always flat copies already. Used when a
 * key or value is first stored, not per line.
 */
export function own(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/**
 * 32-bit hash of a string (FNV-1a over UTF-16 units, then murmur3's
 * finaliser so that near-identical strings spread over all bits). Used by
 * DistinctCounters that keep no values: two different values collide with
 * probability 2^-32, so a set of n values mistakes a new value for a known
 * one with probability ≈ n / 2^32 (one in 200 million for n = 20). A
 * collision can only under-count (never invent a value). Those hashes are
 * in snapshots: seed 0 there, always. `seed` varies the starting state
 * (StringTable's index, which no snapshot holds). Seed-0 hashes being
 * predictable, DistinctCounter does not key a Map by them: see scrambleCode.
 */
export function hash32(s: string, seed = 0): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit; a bijection of int32 (unscrambleCode undoes it). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * The key under which a DistinctCounter's big set holds a value code: a
 * bijection of int32 chosen by `secret` (murmur3's finaliser of code ^
 * secret; xorshifts and odd multipliers, each invertible). V8 hashes integer
 * Map keys with a fixed, unseeded function, and codes are predictable (seed-0
 * hash32 of values an attacker picks, such as the recipients a spammer
 * sends to): offline one could pick thousands of values whose codes share
 * one bucket of a Map, and each insert or lookup in that key's set would
 * then walk all of them. Under a secret the attacker does not know, the
 * keys are spread like any others. Only the Map sees the scrambled form:
 * snapshots, references and callers see codes (unscrambleCode).
 */
export function scrambleCode(code: number, secret: number): number {
  return fmix32(code ^ secret);
}

/** The code scrambleCode(code, secret) came from: its steps undone in reverse (0x7ed1b41d, 0xa5cb9243: the multipliers' inverses mod 2^32). */
export function unscrambleCode(key: number, secret: number): number {
  let h = key ^ (key >>> 16);
  h = Math.imul(h, 0x7ed1b41d);
  h ^= (h >>> 13) ^ (h >>> 26); // undoes h ^= h >>> 13 on 32 bits
  h = Math.imul(h, 0xa5cb9243);
  h ^= h >>> 16;
  return (h ^ secret) | 0;
}

/** Length classes of StringTable's lookup memo (a power of two). */
const MEMO = 16;

/** Keys whose last activity is this much older than their window are dropped (out-of-order tolerance). */
const EXPIRY_SLACK_MS = 120_000;

/** A copy of `a` resized to n (new places hold `fill`). The typed columns of this file and of the policy's KeptStore grow with these. */
export function grownI32(a: Int32Array, n: number, fill = 0): Int32Array<ArrayBuffer> {
  const b = new Int32Array(n);
  if (fill !== 0 && n > a.length) b.fill(fill, a.length);
  b.set(a.length <= n ? a : a.subarray(0, n));
  return b;
}

export function grownF64(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a.length <= n ? a : a.subarray(0, n));
  return b;
}

function grownU16(a: Uint16Array, n: number): Uint16Array<ArrayBuffer> {
  const b = new Uint16Array(n);
  b.set(a);
  return b;
}

export function grownU8(a: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  b.set(a.length <= n ? a : a.subarray(0, n));
  return b;
}

// --- string table ---------------------------------------------------------------

/**
 * Each distinct key or value string once, with an integer id and a count of
 * the structures (and set entries) holding it; dropped when the last lets
 * go. One per WindowStore, so `alice@example.com` is one string however many
 * detectors track her, and an IP that is a key in one structure and a value
 * in another is stored once.
 */
export class StringTable {
  /**
   * This table's hash seed, random unless given. Keys and values come from
   * the logs, and some of them are chosen by attackers (the user names a
   * password-guessing run tries, the domains a spammer sends to): with a
   * known hash they could pick thousands of strings that share one probe
   * run, and each lookup would then scan all of them. Nothing outside the
   * process depends on the seed: snapshots hold strings, not cells.
   */
  private readonly seed: number;

  constructor(seed: number = randomInt(0x7fffffff)) {
    this.seed = seed | 0;
  }

  /**
   * id + 1 per cell (0 = empty), open addressing by hash32 with linear
   * probing, at most half full. Not a Map<string, number>: with a million
   * IPs passing through in a day and a few hundred thousand held, a Map's
   * entries (~50 bytes each) and its rehashes (a new table of several MB
   * each time its deleted entries fill it) dominated the table's memory.
   */
  private index = new Int32Array(1024);
  private shift = 22; // 32 - log2(index.length)
  private count = 0;
  /** ids ever handed out (ids below it are held or free) */
  private ids = 0;
  /**
   * The strings, as bytes outside the JS heap (a TextArena handle per id):
   * held keys are long-lived, and a million IPs passing through as heap
   * strings were old-generation garbage that let the heap grow to several
   * times its live size. A string with a character past U+00FF is kept as
   * itself in `other` (handle -1).
   */
  private readonly bytes = new TextArena();
  private handle = new Int32Array(1024);
  private readonly other = new Map<number, string>();
  private refs = new Int32Array(1024);
  /** hash32 of each held string, so that deletion and growth need not rehash the strings */
  private hashes = new Int32Array(1024);
  private readonly freeIds: number[] = [];
  /**
   * Strings recently looked up, one per length class (length mod MEMO), with
   * their ids: detectors ask several structures about the same account or IP
   * in a row, and put a file or protocol name into samples between keys, and
   * an event's fields come back as equal strings event after event. A hit
   * (`===`: the same string, or an equal one of that length) skips hashing,
   * probing and comparing bytes. Indexed by length, which costs nothing to
   * read, so strings of different lengths (an IP and an address) do not
   * push each other out. Entries of a released id are cleared.
   * On the bench log (2M lines, 2.96M lookups) the last two strings
   * answered 60% of lookups, this answers 70% (strings hashed: 1.18M → 0.88M).
   */
  private readonly memoS: (string | undefined)[] = new Array<string | undefined>(MEMO).fill(undefined);
  private readonly memoId = new Int32Array(MEMO).fill(-1);

  get size(): number {
    return this.count;
  }

  /** The longest run of occupied index cells: how far a lookup may have to probe (a diagnostic). */
  longestRun(): number {
    const index = this.index;
    let best = 0;
    let run = 0;
    // twice round, so a run that wraps past the end is counted whole
    for (let i = 0; i < 2 * index.length; i++) {
      run = index[i & (index.length - 1)] !== 0 ? run + 1 : 0;
      if (run > best) best = run;
    }
    return Math.min(best, this.count);
  }

  private home(h: number): number {
    return Math.imul(h, 0x9e3779b1) >>> this.shift;
  }

  /** Id of s if held (no reference taken), else -1. */
  find(s: string): number {
    const m = s.length & (MEMO - 1);
    if (s === this.memoS[m]) return this.memoId[m]!;
    const id = this.lookup(s, hash32(s, this.seed));
    if (id < 0) return -1;
    this.memoS[m] = s;
    this.memoId[m] = id;
    return id;
  }

  private lookup(s: string, h: number): number {
    const index = this.index;
    const mask = index.length - 1;
    for (let p = this.home(h); ; p = (p + 1) & mask) {
      const c = index[p]!;
      if (c === 0) return -1;
      if (this.hashes[c - 1] === h && this.holds(c - 1, s)) return c - 1;
    }
  }

  private holds(id: number, s: string): boolean {
    const hd = this.handle[id]!;
    return hd >= 0 ? this.bytes.equalsLatin1(hd, s) : this.other.get(id) === s;
  }

  /** Take a reference to s (adding it if new); returns its id. */
  acquire(s: string): number {
    const m = s.length & (MEMO - 1);
    if (s === this.memoS[m]) {
      const id = this.memoId[m]!;
      this.refs[id]!++;
      return id;
    }
    const h = hash32(s, this.seed);
    const found = this.lookup(s, h);
    if (found >= 0) {
      this.refs[found]!++;
      this.memoS[m] = s;
      this.memoId[m] = found;
      return found;
    }
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.ids++;
    if (id >= this.refs.length) {
      this.refs = grownI32(this.refs, this.refs.length * 2);
      this.hashes = grownI32(this.hashes, this.hashes.length * 2);
      this.handle = grownI32(this.handle, this.handle.length * 2);
    }
    const hd = this.bytes.putLatin1(s);
    this.handle[id] = hd;
    if (hd < 0) this.other.set(id, own(s));
    this.refs[id] = 1;
    this.hashes[id] = h;
    if ((this.count + 1) * 2 > this.index.length) this.rehash(this.index.length * 2);
    this.place(id);
    this.count++;
    this.memoS[m] = s;
    this.memoId[m] = id;
    return id;
  }

  private place(id: number): void {
    const index = this.index;
    const mask = index.length - 1;
    let p = this.home(this.hashes[id]!);
    while (index[p] !== 0) p = (p + 1) & mask;
    index[p] = id + 1;
  }

  private rehash(cells: number): void {
    this.index = new Int32Array(cells);
    this.shift = 32 - Math.log2(cells);
    for (let id = 0; id < this.ids; id++) if (this.refs[id]! > 0) this.place(id);
  }

  /** One more reference to a held id. */
  ref(id: number): void {
    this.refs[id]!++;
  }

  release(id: number): void {
    if (--this.refs[id]! > 0) return;
    this.unindex(id);
    const hd = this.handle[id]!;
    if (hd >= 0) this.bytes.free(hd);
    else this.other.delete(id);
    this.count--;
    this.freeIds.push(id);
    const memoId = this.memoId;
    for (let m = 0; m < MEMO; m++) {
      if (memoId[m] === id) {
        memoId[m] = -1;
        this.memoS[m] = undefined;
      }
    }
  }

  /** Remove id's cell (backward-shift deletion keeps probe runs unbroken; as Keyed.unindex). */
  private unindex(id: number): void {
    const index = this.index;
    const mask = index.length - 1;
    let p = this.home(this.hashes[id]!);
    while (index[p] !== id + 1) p = (p + 1) & mask;
    let q = p;
    for (;;) {
      q = (q + 1) & mask;
      const c = index[q]!;
      if (c === 0) break;
      const h = this.home(this.hashes[c - 1]!);
      // leave c where it is when its home lies cyclically in (p, q]
      const stays = p <= q ? h > p && h <= q : h > p || h <= q;
      if (!stays) {
        index[p] = c;
        p = q;
      }
    }
    index[p] = 0;
  }

  /** The string of a held id (a new string each call when it is kept as bytes, except for one recently looked up). */
  str(id: number): string {
    const memoId = this.memoId;
    for (let m = 0; m < MEMO; m++) if (memoId[m] === id) return this.memoS[m]!;
    const hd = this.handle[id]!;
    return hd >= 0 ? this.bytes.latin1(hd) : this.other.get(id)!;
  }
}

// --- keyed slots ------------------------------------------------------------------

interface SnapshotV2 {
  v: 2;
  /** evicted */
  e: number;
  /** the structure's "now" (null before the first write); times in rows are relative to it */
  n: number | null;
  /** writes since the last sweep (so a restored store sweeps when the original would have) */
  w: number;
  /** one row per key, least recently used first, key first */
  m: unknown[][];
}

/** A pre-v2 snapshot: `[key, state][]` in LRU order. */
interface SnapshotV1 {
  e: number;
  m: unknown[][];
}

function isV2(d: unknown): d is SnapshotV2 {
  return (d as { v?: unknown }).v === 2;
}

/** What a structure does with its own per-slot columns, for its Slots. */
interface SlotColumns {
  /** Resize the per-slot columns to `cap` slots (keeping slots below it). */
  grow(cap: number): void;
  /** Whether the slot holds nothing at time `limit` = now - span - slack (dropping it is then the same as keeping it). */
  expired(slot: number, limit: number): boolean;
  /** Let go of what a slot holds beyond its numbers (values, references). */
  drop(slot: number): void;
}

/**
 * The key bookkeeping every structure shares: key id → slot through an
 * open-addressing index (linear probing, ≤ 1/2 full), LRU order as a linked
 * list of slots, and the batched eviction / expiry policy. Structures keep
 * their per-key numbers in typed arrays indexed by slot.
 *
 * A class that each structure holds, not their base class: the five
 * structure classes have five hidden classes, and a field load in a method
 * they inherit sees all five; past four V8 serves it from its megamorphic
 * cache, a lookup per load instead of one compare. These methods run
 * several times per event (Recent.get+set: ~1.5x slower megamorphic).
 */
class Slots {
  /** slot + 1 per cell, 0 = empty */
  private index = new Int32Array(16);
  private shift = 28; // 32 - log2(index.length)
  size = 0;
  /** key id per slot (-1 = free) */
  kid = new Int32Array(0);
  private prev = new Int32Array(0);
  /** the next more recently used slot (-1 after the newest) */
  next = new Int32Array(0);
  /** least recently used slot, -1 when empty */
  head = -1;
  private tail = -1;
  private readonly freeSlots: number[] = [];
  private used = 0;
  private cap = 0;
  private readonly maxSlots: number;
  evicted = 0;
  /** Latest time written (the structure's "now" for expiry). */
  now = -Infinity;
  /**
   * The key id and slot of the last find or create: a structure is often
   * asked about the same key twice in a row (get then set, latest then
   * add), and the second time needs no probe of the index. Reset when
   * that slot is removed.
   */
  private lastKid = -1;
  private lastSlot = -1;
  /** writes since the last sweep */
  writes = 0;

  /** @param spanMs the structure's window / TTL (Infinity: never swept) */
  constructor(
    private readonly table: StringTable,
    private readonly maxKeys: number,
    private readonly spanMs: number,
    private readonly cols: SlotColumns,
  ) {
    // the most keys held at once: maxKeys plus the batch overshoot (see touch)
    this.maxSlots = maxKeys + (maxKeys >> 4) + 2;
  }

  /** Slot of key, or -1. */
  find(key: string): number {
    const id = this.table.find(key);
    if (id < 0) return -1;
    if (id === this.lastKid) return this.lastSlot;
    const slot = this.findId(id);
    if (slot >= 0) {
      this.lastKid = id;
      this.lastSlot = slot;
    }
    return slot;
  }

  private home(id: number): number {
    return Math.imul(id, 0x9e3779b1) >>> this.shift;
  }

  private findId(id: number): number {
    const index = this.index;
    const mask = index.length - 1;
    const kid = this.kid;
    let p = this.home(id);
    for (;;) {
      const s = index[p]!;
      if (s === 0) return -1;
      if (kid[s - 1] === id) return s - 1;
      p = (p + 1) & mask;
    }
  }

  private place(slot: number): void {
    const index = this.index;
    const mask = index.length - 1;
    let p = this.home(this.kid[slot]!);
    while (index[p] !== 0) p = (p + 1) & mask;
    index[p] = slot + 1;
  }

  private rehash(cells: number): void {
    this.index = new Int32Array(cells);
    this.shift = 32 - Math.log2(cells);
    for (let s = this.head; s >= 0; s = this.next[s]!) this.place(s);
  }

  /** Remove the index cell of slot (backward-shift deletion keeps probe runs unbroken). */
  private unindex(slot: number): void {
    const index = this.index;
    const mask = index.length - 1;
    const kid = this.kid;
    let p = this.home(kid[slot]!);
    while (index[p] !== slot + 1) p = (p + 1) & mask;
    let q = p;
    for (;;) {
      q = (q + 1) & mask;
      const s = index[q]!;
      if (s === 0) break;
      const h = this.home(kid[s - 1]!);
      // leave s where it is when its home lies cyclically in (p, q]
      const stays = p <= q ? h > p && h <= q : h > p || h <= q;
      if (!stays) {
        index[p] = s;
        p = q;
      }
    }
    index[p] = 0;
  }

  /** A new slot for key (not yet in the structure), linked as most recent. Columns may be reallocated. */
  create(key: string): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      if (this.used === this.cap) this.growSlots();
      slot = this.used++;
    }
    const id = this.table.acquire(key);
    this.kid[slot] = id;
    if ((this.size + 1) * 2 > this.index.length) this.rehash(this.index.length * 2);
    this.place(slot);
    this.lastKid = id;
    this.lastSlot = slot;
    this.size++;
    this.prev[slot] = this.tail;
    this.next[slot] = -1;
    if (this.tail >= 0) this.next[this.tail] = slot;
    else this.head = slot;
    this.tail = slot;
    return slot;
  }

  private growSlots(): void {
    const cap = this.cap;
    let n = cap === 0 ? 16 : cap * 2;
    if (n > this.maxSlots && cap < this.maxSlots) n = this.maxSlots;
    this.kid = grownI32(this.kid, n);
    this.prev = grownI32(this.prev, n);
    this.next = grownI32(this.next, n);
    this.cols.grow(n);
    this.cap = n;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
  }

  /** Forget a key (no eviction counted). */
  remove(slot: number): void {
    if (slot === this.lastSlot) this.lastKid = -1;
    this.unlink(slot);
    this.unindex(slot);
    this.cols.drop(slot);
    this.table.release(this.kid[slot]!);
    this.kid[slot] = -1;
    this.freeSlots.push(slot);
    this.size--;
  }

  /**
   * Mark slot most recently used, at log time ts. Eviction is batched: the
   * structure may overshoot maxKeys by 1/16 and is then trimmed in one pass
   * (fewer, larger trims). Now and then, keys whose window has passed are
   * dropped from the least recently written end first, so a short-window
   * structure holds its live keys, not maxKeys of mostly dead ones.
   * Callers read what they need from the slot first: the sweep may drop it
   * (a write far older than the structure's now).
   */
  touch(slot: number, ts: number): void {
    if (ts > this.now) this.now = ts;
    if (slot !== this.tail) {
      this.unlink(slot);
      this.prev[slot] = this.tail;
      this.next[slot] = -1;
      this.next[this.tail] = slot;
      this.tail = slot;
    }
    const maxKeys = this.maxKeys;
    if (this.size > maxKeys + (maxKeys >> 4) + 1) {
      let excess = this.size - maxKeys;
      while (excess-- > 0) {
        this.remove(this.head);
        this.evicted++;
      }
    }
    if (++this.writes >= (this.size >> 3) + 256) {
      this.writes = 0;
      this.sweep();
    }
  }

  private sweep(): void {
    if (!Number.isFinite(this.spanMs)) return;
    const limit = this.now - this.spanMs - EXPIRY_SLACK_MS;
    while (this.head >= 0 && this.cols.expired(this.head, limit)) this.remove(this.head);
  }

  clear(): void {
    while (this.head >= 0) this.remove(this.head);
  }
}

/**
 * A structure: its Slots, its per-slot columns (in the subclass), and
 * snapshots of both.
 */
abstract class Keyed {
  protected readonly slots: Slots;

  /** @param spanMs the structure's window / TTL (Infinity: never swept) */
  constructor(
    protected readonly table: StringTable,
    maxKeys: number,
    spanMs: number,
  ) {
    this.slots = new Slots(table, maxKeys, spanMs, {
      grow: (cap) => this.grow(cap),
      expired: (slot, limit) => this.expired(slot, limit),
      drop: (slot) => this.drop(slot),
    });
  }

  /** Resize the per-slot columns to `cap` slots (keeping slots below it). */
  protected abstract grow(cap: number): void;
  /** Whether the slot holds nothing at time `limit` = now - span - slack (dropping it is then the same as keeping it). */
  protected abstract expired(slot: number, limit: number): boolean;
  /** Let go of what a slot holds beyond its numbers (values, references). */
  protected abstract drop(slot: number): void;
  /** A snapshot row for slot: the key is prepended by the caller; times relative to `base`. */
  protected abstract row(slot: number, base: number): unknown[];
  /** Fill a freshly created slot from a snapshot row (key removed); times relative to `base`. */
  protected abstract fromRow(slot: number, row: unknown[], base: number): void;
  /** Fill a freshly created slot from a pre-v2 state object. */
  protected abstract fromV1(slot: number, state: unknown): void;

  stats(): StoreStats {
    return { keys: this.slots.size, evicted: this.slots.evicted };
  }

  snapshot(): unknown {
    const sl = this.slots;
    const finite = Number.isFinite(sl.now);
    const base = finite ? sl.now : 0;
    const m: unknown[][] = [];
    for (let s = sl.head; s >= 0; s = sl.next[s]!) {
      const r = this.row(s, base);
      r.unshift(this.table.str(sl.kid[s]!));
      m.push(r);
    }
    const snap: SnapshotV2 = { v: 2, e: sl.evicted, n: finite ? sl.now : null, w: sl.writes, m };
    return snap;
  }

  restore(data: unknown): void {
    const sl = this.slots;
    sl.clear();
    if (isV2(data)) {
      sl.evicted = data.e;
      sl.now = data.n ?? -Infinity;
      sl.writes = data.w;
      const base = data.n ?? 0;
      for (const r of data.m) this.fromRow(sl.create(r[0] as string), r.slice(1), base);
    } else {
      // before v2: [key, state] pairs, no "now"
      const d = data as SnapshotV1;
      sl.evicted = d.e;
      for (const [k, st] of d.m) this.fromV1(sl.create(k as string), st);
    }
  }
}

// --- SlidingCounter ------------------------------------------------------------

export interface SlidingCounterOptions extends Bounds {
  windowMs: number;
  /** Resolution: the window is split into this many buckets. Default 12. */
  buckets?: number;
}

export class SlidingCounter extends Keyed {
  private readonly bucketMs: number;
  private readonly n: number;
  private readonly span: number;
  /** start (ms) of the bucket at head */
  private t = new Float64Array(0);
  private hd = new Int32Array(0);
  private sum = new Float64Array(0);
  /**
   * n buckets per slot: 16-bit counts (a quarter of the memory of floats)
   * until a bucket holds more than 65,535, then 32-bit integers until one
   * holds anything else (a fraction, or a packed count of 2^31 or more),
   * then 64-bit floats; each step once, for the whole structure.
   */
  private b: Uint16Array | Int32Array | Float64Array = new Uint16Array(0);

  constructor(
    private readonly opts: SlidingCounterOptions,
    table: StringTable = new StringTable(),
  ) {
    super(table, opts.maxKeys, opts.windowMs);
    this.n = opts.buckets ?? 12;
    this.bucketMs = Math.max(1, Math.floor(opts.windowMs / this.n));
    this.span = this.n * this.bucketMs;
  }

  protected grow(cap: number): void {
    this.t = grownF64(this.t, cap);
    this.hd = grownI32(this.hd, cap);
    this.sum = grownF64(this.sum, cap);
    const b = this.b;
    this.b = b instanceof Uint16Array ? grownU16(b, cap * this.n) : b instanceof Int32Array ? grownI32(b, cap * this.n) : grownF64(b, cap * this.n);
  }

  // every bucket is zero once the head bucket's start is `span` behind now (limit = now - windowMs - slack)
  protected expired(slot: number, limit: number): boolean {
    return this.t[slot]! + this.span - this.opts.windowMs <= limit;
  }

  protected drop(): void {}

  /** Add `by` to key at time `ts`; returns the window sum after adding. */
  add(key: string, ts: number, by = 1): number {
    const n = this.n;
    const bucketMs = this.bucketMs;
    let s = this.slots.find(key);
    const start = ts - (ts % bucketMs);
    if (s < 0) {
      s = this.slots.create(key);
      this.t[s] = start;
      this.hd[s] = 0;
      this.sum[s] = 0;
      this.b.fill(0, s * n, s * n + n);
    } else {
      this.advance(s, start);
    }
    const t = this.t[s]!;
    if (start >= t - (n - 1) * bucketMs) {
      // ts may be slightly older than head (interleaved files): put it in its bucket if still in the window
      const back = Math.round((t - start) / bucketMs);
      const i = s * n + ((this.hd[s]! - back + n) % n);
      this.setBucket(i, this.b[i]! + by);
      this.sum[s] = this.sum[s]! + by;
    }
    const sum = this.sum[s]!;
    this.slots.touch(s, ts);
    return sum;
  }

  /** Window sum for key as of `ts` (0 for unknown keys). */
  get(key: string, ts: number): number {
    const s = this.slots.find(key);
    if (s < 0) return 0;
    this.advance(s, ts - (ts % this.bucketMs));
    return this.sum[s]!;
  }

  /** Zero a key (e.g. a failure streak that a success ends). */
  reset(key: string): void {
    const s = this.slots.find(key);
    if (s >= 0) this.slots.remove(s);
  }

  private advance(s: number, start: number): void {
    const t = this.t[s]!;
    if (start <= t) return;
    const n = this.n;
    const bucketMs = this.bucketMs;
    const b = this.b;
    const o = s * n;
    let steps = Math.round((start - t) / bucketMs);
    if (steps >= n) {
      b.fill(0, o, o + n);
      this.sum[s] = 0;
      this.hd[s] = 0;
      this.t[s] = start;
      return;
    }
    let head = this.hd[s]!;
    let sum = this.sum[s]!;
    let tt = t;
    while (steps-- > 0) {
      head = (head + 1) % n;
      sum -= b[o + head]!;
      b[o + head] = 0;
      tt += bucketMs;
    }
    this.hd[s] = head;
    this.sum[s] = sum;
    this.t[s] = tt;
  }

  protected row(s: number, base: number): unknown[] {
    const o = s * this.n;
    return [this.t[s]! - base, this.hd[s]!, this.sum[s]!, ...this.b.subarray(o, o + this.n)];
  }

  protected fromRow(s: number, r: unknown[], base: number): void {
    this.t[s] = (r[0] as number) + base;
    this.hd[s] = r[1] as number;
    this.sum[s] = r[2] as number;
    this.fill(s, r.slice(3) as number[]);
  }

  protected fromV1(s: number, st: unknown): void {
    const v = st as { t: number; head: number; b: number[]; sum: number };
    this.t[s] = v.t;
    this.hd[s] = v.head;
    this.sum[s] = v.sum;
    this.fill(s, v.b);
  }

  private fill(s: number, buckets: number[]): void {
    const o = s * this.n;
    for (let i = 0; i < this.n; i++) this.setBucket(o + i, buckets[i] ?? 0);
  }

  /** Bucket i = v, widening the buckets' type first when v does not fit it. */
  private setBucket(i: number, v: number): void {
    const b = this.b;
    if (b instanceof Uint16Array ? (v & 0xffff) !== v : b instanceof Int32Array && (v | 0) !== v) {
      this.b = b instanceof Uint16Array && (v | 0) === v ? Int32Array.from(b) : Float64Array.from(b);
    }
    this.b[i] = v;
  }
}

// --- DistinctCounter -----------------------------------------------------------

export interface DistinctCounterOptions extends Bounds {
  windowMs: number;
  /** Most distinct values remembered per key; past it `capped` is reported and the count is a lower bound. */
  maxPerKey: number;
  /**
   * Keep the values themselves (default): needed for values(). Without,
   * a set holds 32-bit hashes of its values (see hash32 for the collision
   * rate): for counters that only count and test membership.
   */
  keepValues?: boolean;
  /**
   * Kept values that have a small number form (an IPv4 /24 network, say):
   * held as that number instead of a string in the StringTable (~100 bytes
   * less per value). Values it gives no code keep the string form.
   */
  codec?: ValueCodec;
}

/**
 * A one-to-one number form for some strings: encode(v) is a code in
 * [0, 2^30) for the strings it knows, -1 for the others, and
 * decode(encode(v)) === v. Two different strings never share a code.
 */
export interface ValueCodec {
  encode(value: string): number;
  decode(code: number): string;
}

/** Largest set kept in chunks; past it a key's set is a Map. */
const SMALL = 16;
/** Entries per chunk. */
const CHUNK = 4;
/** `first` of a key whose set is in `big`. */
const BIG = -2;

/**
 * Chunks of CHUNK (value code, last seen) entries, linked into one run per
 * key, with a free list. One pool per counter, so a chunk freed by any key
 * serves any other (a set that grows leaves no blocks of a smaller size behind).
 */
class Chunks {
  codes = new Int32Array(0);
  times = new Float64Array(0);
  /** next chunk of the same run, -1 at its end */
  link = new Int32Array(0);
  private readonly freed: number[] = [];
  private used = 0;

  alloc(): number {
    const f = this.freed.pop();
    if (f !== undefined) return f;
    const c = this.used++;
    if (c >= this.link.length) {
      const n = Math.max(64, Math.ceil(this.link.length * 1.5)); // 1.5x: less slack in a pool that ends up holding most of the counter
      this.link = grownI32(this.link, n);
      this.codes = grownI32(this.codes, n * CHUNK);
      this.times = grownF64(this.times, n * CHUNK);
    }
    return c;
  }

  free(c: number): void {
    this.freed.push(c);
  }
}

/**
 * Per key, the distinct values seen within the window, oldest last-seen
 * first. A value is its StringTable id (or its hash32 with keepValues:
 * false). Up to SMALL values are a run of chunks; beyond, a Map
 * (scrambled code → last seen; insertion order = last-seen order). The Map
 * is keyed by scrambleCode under this counter's secret, not by the code, so
 * that values chosen to collide in V8's integer hash do not (see there).
 */
export class DistinctCounter extends Keyed {
  private readonly keep: boolean;
  private readonly codec: ValueCodec | undefined;
  private readonly chunks = new Chunks();
  /** values held (small form) */
  private len = new Int32Array(0);
  /** first chunk of the run (-1: none yet, BIG: in `big`) */
  private first = new Int32Array(0);
  /** newest last-seen (for expiry) */
  private last = new Float64Array(0);
  private capped = new Uint8Array(0);
  /** per big-form slot: scrambleCode(code, secret) → last seen */
  private readonly big = new Map<number, Map<number, number>>();
  /**
   * This counter's scrambling secret, random like StringTable's seed and for
   * the same reason; nothing outside the process depends on it (snapshots
   * hold codes).
   */
  private readonly secret = randomInt(0x100000000) | 0;
  // scratch for rewriting a run (≤ SMALL entries)
  private readonly sc = new Int32Array(SMALL);
  private readonly st = new Float64Array(SMALL);

  constructor(
    private readonly opts: DistinctCounterOptions,
    table: StringTable = new StringTable(),
  ) {
    super(table, opts.maxKeys, opts.windowMs);
    this.keep = opts.keepValues ?? true;
    this.codec = this.keep ? opts.codec : undefined;
  }

  protected grow(cap: number): void {
    this.len = grownI32(this.len, cap);
    this.first = grownI32(this.first, cap);
    this.last = grownF64(this.last, cap);
    this.capped = grownU8(this.capped, cap);
  }

  protected expired(s: number, limit: number): boolean {
    return this.last[s]! < limit;
  }

  protected drop(s: number): void {
    if (this.first[s] === BIG) {
      if (this.keep) for (const k of this.big.get(s)!.keys()) this.release(unscrambleCode(k, this.secret));
      this.big.delete(s);
    } else {
      const ch = this.chunks;
      let n = this.len[s]!;
      for (let c = this.first[s]!; c >= 0; c = ch.link[c]!) {
        if (this.keep) for (let i = c * CHUNK, e = i + Math.min(n, CHUNK); i < e; i++) this.release(ch.codes[i]!);
        n -= CHUNK;
        ch.free(c);
      }
    }
    this.first[s] = -1;
    this.len[s] = 0;
  }

  /**
   * The code of value if it may be in some set (-1 with kept values:
   * certainly in none). Kept values: a StringTable id (≥ 0), or -2 - the
   * codec's code (≤ -2), which holds no string.
   */
  private codeOf(value: string): number {
    if (!this.keep) return hash32(value);
    if (this.codec !== undefined) {
      const c = this.codec.encode(value);
      if (c >= 0) return -2 - c;
    }
    return this.table.find(value);
  }

  /** The value of a kept code. */
  private value(code: number): string {
    return code >= 0 ? this.table.str(code) : this.codec!.decode(-2 - code);
  }

  /** Let go of the string a kept code holds (a codec's code holds none). */
  private release(code: number): void {
    if (code >= 0) this.table.release(code);
  }

  /** Record `value` for key at `ts`; returns whether it was new within the window, and the distinct count. */
  add(key: string, value: string, ts: number): { isNew: boolean; count: number; capped: boolean } {
    let s = this.slots.find(key);
    if (s < 0) {
      s = this.slots.create(key);
      this.len[s] = 0;
      this.first[s] = -1;
      this.last[s] = ts;
      this.capped[s] = 0;
    } else {
      this.prune(s, ts);
    }
    if (ts > this.last[s]!) this.last[s] = ts;
    const maxPerKey = this.opts.maxPerKey;
    const code = this.codeOf(value);
    const absent = code === -1 && this.keep;
    let had = false;
    let count: number;
    if (this.first[s] !== BIG) {
      const n = this.len[s]!;
      const i = absent ? -1 : this.indexIn(s, code);
      if (i >= 0) {
        had = true;
        this.moveToEnd(s, i, ts);
      } else if (n < maxPerKey) {
        if (n < SMALL) this.append(s, this.hold(code, value), ts);
        else this.toBig(s).set(scrambleCode(this.hold(code, value), this.secret), ts);
      } else {
        this.capped[s] = 1;
      }
      count = this.sizeOf(s);
    } else {
      const m = this.big.get(s)!;
      const k = scrambleCode(code, this.secret);
      had = !absent && m.has(k);
      if (had) {
        m.delete(k);
        m.set(k, ts);
      } else if (m.size < maxPerKey) {
        const held = this.hold(code, value);
        m.set(held === code ? k : scrambleCode(held, this.secret), ts); // a new code only for a string the table lacked
      } else {
        this.capped[s] = 1;
      }
      count = m.size;
    }
    const capped = this.capped[s] === 1;
    this.slots.touch(s, ts);
    return { isNew: !had, count, capped };
  }

  count(key: string, ts: number): number {
    const s = this.slots.find(key);
    if (s < 0) return 0;
    this.prune(s, ts);
    return this.sizeOf(s);
  }

  /** The values currently in the window for key (newest last). Needs keepValues. */
  values(key: string, ts: number): string[] {
    if (!this.keep) throw new Error('DistinctCounter.values: this counter keeps hashes only (keepValues: false)');
    const s = this.slots.find(key);
    if (s < 0) return [];
    this.prune(s, ts);
    const out: string[] = [];
    this.each(s, (code) => out.push(this.value(code)));
    return out;
  }

  has(key: string, value: string, ts: number): boolean {
    const s = this.slots.find(key);
    if (s < 0) return false;
    this.prune(s, ts);
    const code = this.codeOf(value);
    if (code === -1 && this.keep) return false;
    return this.first[s] === BIG ? this.big.get(s)!.has(scrambleCode(code, this.secret)) : this.indexIn(s, code) >= 0;
  }

  /** The keys of key's big-set Map as held (scrambled codes; empty in the small form): for tests of the scrambling only. */
  bigMapKeysForTest(key: string): number[] {
    const s = this.slots.find(key);
    return s >= 0 && this.first[s] === BIG ? [...this.big.get(s)!.keys()] : [];
  }

  private sizeOf(s: number): number {
    return this.first[s] === BIG ? this.big.get(s)!.size : this.len[s]!;
  }

  /** Each (code, last seen) of slot s, oldest first. */
  private each(s: number, f: (code: number, seen: number) => void): void {
    if (this.first[s] === BIG) {
      for (const [k, seen] of this.big.get(s)!) f(unscrambleCode(k, this.secret), seen);
      return;
    }
    const ch = this.chunks;
    let n = this.len[s]!;
    for (let c = this.first[s]!; c >= 0 && n > 0; c = ch.link[c]!) {
      for (let i = c * CHUNK, e = i + Math.min(n, CHUNK); i < e; i++) f(ch.codes[i]!, ch.times[i]!);
      n -= CHUNK;
    }
  }

  /** Take the reference a set entry holds (kept values); returns the code to store. */
  private hold(code: number, value: string): number {
    if (!this.keep || code < -1) return code;
    if (code === -1) return this.table.acquire(value);
    this.table.ref(code);
    return code;
  }

  private indexIn(s: number, code: number): number {
    const ch = this.chunks;
    const codes = ch.codes;
    const n = this.len[s]!;
    let k = 0;
    for (let c = this.first[s]!; c >= 0; c = ch.link[c]!) {
      for (let i = c * CHUNK, e = i + CHUNK; i < e && k < n; i++, k++) if (codes[i] === code) return k;
    }
    return -1;
  }

  /** Copy slot s's run into the scratch arrays; returns its length. */
  private gather(s: number): number {
    const ch = this.chunks;
    const n = this.len[s]!;
    let k = 0;
    for (let c = this.first[s]!; c >= 0 && k < n; c = ch.link[c]!) {
      for (let i = c * CHUNK, e = i + CHUNK; i < e && k < n; i++, k++) {
        this.sc[k] = ch.codes[i]!;
        this.st[k] = ch.times[i]!;
      }
    }
    return n;
  }

  /** Write scratch entries from `from` on back as slot s's run of n entries, freeing chunks it no longer needs. */
  private scatter(s: number, from: number, n: number): void {
    const ch = this.chunks;
    let k = 0;
    let prev = -1;
    let c = this.first[s]!;
    while (k < n) {
      for (let i = c * CHUNK, e = i + CHUNK; i < e && k < n; i++, k++) {
        ch.codes[i] = this.sc[from + k]!;
        ch.times[i] = this.st[from + k]!;
      }
      prev = c;
      c = ch.link[c]!;
    }
    // the rest of the chain is no longer needed
    if (prev >= 0) ch.link[prev] = -1;
    else this.first[s] = -1;
    for (let f = c; f >= 0; ) {
      const next = ch.link[f]!;
      ch.free(f);
      f = next;
    }
    this.len[s] = n;
  }

  /** Entry i becomes the newest (seen at ts): the later ones move one place down, in their chunks. */
  private moveToEnd(s: number, i: number, ts: number): void {
    const n = this.len[s]!;
    const ch = this.chunks;
    const codes = ch.codes;
    const times = ch.times;
    let c = this.first[s]!;
    for (let k = CHUNK; k <= i; k += CHUNK) c = ch.link[c]!;
    let at = c * CHUNK + (i % CHUNK);
    const code = codes[at]!;
    for (let k = i + 1; k < n; k++) {
      let from = at + 1;
      if (k % CHUNK === 0) {
        c = ch.link[c]!;
        from = c * CHUNK;
      }
      codes[at] = codes[from]!;
      times[at] = times[from]!;
      at = from;
    }
    codes[at] = code;
    times[at] = ts;
  }

  private append(s: number, code: number, ts: number): void {
    const ch = this.chunks;
    const n = this.len[s]!;
    let c = this.first[s]!;
    if (c < 0) {
      c = ch.alloc();
      ch.link[c] = -1;
      this.first[s] = c;
    } else {
      while (ch.link[c]! >= 0) c = ch.link[c]!;
      if (n % CHUNK === 0) {
        const d = ch.alloc();
        ch.link[d] = -1;
        ch.link[c] = d;
        c = d;
      }
    }
    const at = c * CHUNK + (n % CHUNK);
    ch.codes[at] = code;
    ch.times[at] = ts;
    this.len[s] = n + 1;
  }

  private toBig(s: number): Map<number, number> {
    const m = new Map<number, number>();
    this.each(s, (code, seen) => m.set(scrambleCode(code, this.secret), seen));
    this.scatter(s, 0, 0); // frees the chain
    this.big.set(s, m);
    this.first[s] = BIG;
    return m;
  }

  private prune(s: number, ts: number): void {
    const limit = ts - this.opts.windowMs;
    if (this.first[s] === BIG) {
      const m = this.big.get(s)!;
      for (const [k, seen] of m) {
        if (seen >= limit) break; // insertion order = last-seen order
        m.delete(k);
        if (this.keep) this.release(unscrambleCode(k, this.secret));
      }
      if (m.size <= SMALL / 2) this.fromBig(s, m);
    } else {
      const first = this.first[s]!;
      // oldest first = last-seen order: nothing to drop unless the oldest is out
      if (first >= 0 && this.len[s]! > 0 && this.chunks.times[first * CHUNK]! < limit) {
        const n = this.gather(s);
        let j = 0;
        while (j < n && this.st[j]! < limit) j++;
        if (this.keep) for (let i = 0; i < j; i++) this.release(this.sc[i]!);
        this.scatter(s, j, n - j);
      }
    }
    if (this.sizeOf(s) < this.opts.maxPerKey) this.capped[s] = 0;
  }

  /** A big set that shrank back into chunks (same order). */
  private fromBig(s: number, m: Map<number, number>): void {
    this.big.delete(s);
    this.first[s] = -1;
    this.len[s] = 0;
    for (const [k, seen] of m) this.append(s, unscrambleCode(k, this.secret), seen);
  }

  /** Row: capped (0/1), newest last-seen, then value and last seen per value, oldest first. */
  protected row(s: number, base: number): unknown[] {
    const r: unknown[] = [this.capped[s]!, this.last[s]! - base];
    this.each(s, (code, seen) => r.push(this.keep ? this.value(code) : code, seen - base));
    return r;
  }

  protected fromRow(s: number, r: unknown[], base: number): void {
    const entries: [string | number, number][] = [];
    for (let i = 2; i + 1 < r.length; i += 2) entries.push([r[i] as string | number, (r[i + 1] as number) + base]);
    this.load(s, entries, r[0] === 1, (r[1] as number) + base);
  }

  protected fromV1(s: number, st: unknown): void {
    // before v2 a row was [key, [value, seen][], capped]: `st` is the entries (restore() sets the flag)
    const entries = st as [string, number][];
    const l = entries.reduce((mx, e) => (e[1] > mx ? e[1] : mx), -Infinity);
    this.load(s, entries, false, l);
  }

  override restore(data: unknown): void {
    super.restore(data);
    if (isV2(data)) return;
    for (const r of (data as SnapshotV1).m) if (r[2] === true) this.capped[this.slots.find(r[0] as string)] = 1;
  }

  private load(s: number, entries: [string | number, number][], capped: boolean, last: number): void {
    this.len[s] = 0;
    this.first[s] = -1;
    this.capped[s] = capped ? 1 : 0;
    this.last[s] = last;
    const codes = entries.map(([v]) => (!this.keep ? (typeof v === 'number' ? v : hash32(v)) : this.hold(this.codeOf(String(v)), String(v))));
    if (entries.length <= SMALL) {
      for (let i = 0; i < entries.length; i++) this.append(s, codes[i]!, entries[i]![1]);
    } else {
      const m = new Map<number, number>();
      for (let i = 0; i < entries.length; i++) m.set(scrambleCode(codes[i]!, this.secret), entries[i]![1]);
      this.big.set(s, m);
      this.first[s] = BIG;
    }
  }
}

// --- Baseline ----------------------------------------------------------------------

export interface BaselineOptions extends Bounds {
  /** Length of one observation period (e.g. 1 h): the baseline learns the count per period. */
  periodMs: number;
  /** Half-life of the decay (e.g. 7 days): older periods weigh half as much after this long. */
  halfLifeMs: number;
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
export class Baseline extends Keyed {
  private readonly alphaPerPeriod: number;
  /** start of the current period */
  private p = new Float64Array(0);
  /** count in the current period so far */
  private c = new Float64Array(0);
  /** decayed weighted mean and sum of squared deviations (variance = m2 / w) of completed periods' counts */
  private mean = new Float64Array(0);
  private m2 = new Float64Array(0);
  /** decayed weight: how much history stands behind the mean (≈ periods observed) */
  private w = new Float64Array(0);

  constructor(
    private readonly opts: BaselineOptions,
    table: StringTable = new StringTable(),
  ) {
    super(table, opts.maxKeys, Infinity);
    this.alphaPerPeriod = 1 - Math.pow(0.5, opts.periodMs / opts.halfLifeMs);
  }

  protected grow(cap: number): void {
    this.p = grownF64(this.p, cap);
    this.c = grownF64(this.c, cap);
    this.mean = grownF64(this.mean, cap);
    this.m2 = grownF64(this.m2, cap);
    this.w = grownF64(this.w, cap);
  }

  protected expired(): boolean {
    return false;
  }

  protected drop(): void {}

  /** Count `by` for key at ts. */
  add(key: string, ts: number, by = 1): BaselineView {
    let s = this.slots.find(key);
    if (s < 0) {
      s = this.slots.create(key);
      this.p[s] = ts - (ts % this.opts.periodMs);
      this.c[s] = 0;
      this.mean[s] = 0;
      this.m2[s] = 0;
      this.w[s] = 0;
    } else {
      this.roll(s, ts);
    }
    this.c[s] = this.c[s]! + by;
    const v = this.view(s);
    this.slots.touch(s, ts);
    return v;
  }

  get(key: string, ts: number): BaselineView | undefined {
    const s = this.slots.find(key);
    if (s < 0) return undefined;
    this.roll(s, ts);
    return this.view(s);
  }

  private roll(s: number, ts: number): void {
    const periodMs = this.opts.periodMs;
    const p = ts - (ts % periodMs);
    if (p <= this.p[s]!) return;
    const periods = Math.round((p - this.p[s]!) / periodMs);
    // close the current period, then any quiet ones (zeros), at most ~10 half-lives' worth
    const quiet = Math.min(periods - 1, Math.ceil((10 * this.opts.halfLifeMs) / periodMs));
    this.observe(s, this.c[s]!);
    for (let i = 0; i < quiet; i++) this.observe(s, 0);
    this.c[s] = 0;
    this.p[s] = p;
  }

  /**
   * Weighted incremental mean/variance (West 1979) where every older
   * period's weight decays by (1 - alpha) per period. Unlike a plain EWMA
   * seeded with the first value, one busy first hour followed by quiet ones
   * does not dominate the mean.
   */
  private observe(s: number, x: number): void {
    const keep = 1 - this.alphaPerPeriod;
    const w = this.w[s]! * keep + 1;
    let m2 = this.m2[s]! * keep;
    const mean = this.mean[s]!;
    const diff = x - mean;
    const mean2 = mean + diff / w;
    m2 += diff * (x - mean2);
    this.mean[s] = mean2;
    this.m2[s] = m2;
    this.w[s] = w;
  }

  private view(s: number): BaselineView {
    const w = this.w[s]!;
    return { mean: this.mean[s]!, std: w > 0 ? Math.sqrt(Math.max(0, this.m2[s]! / w)) : 0, weight: w, current: this.c[s]! };
  }

  protected row(s: number, base: number): unknown[] {
    return [this.p[s]! - base, this.c[s]!, this.mean[s]!, this.m2[s]!, this.w[s]!];
  }

  protected fromRow(s: number, r: unknown[], base: number): void {
    this.p[s] = (r[0] as number) + base;
    this.c[s] = r[1] as number;
    this.mean[s] = r[2] as number;
    this.m2[s] = r[3] as number;
    this.w[s] = r[4] as number;
  }

  protected fromV1(s: number, st: unknown): void {
    const v = st as { p: number; c: number; mean: number; m2: number; w: number };
    this.p[s] = v.p;
    this.c[s] = v.c;
    this.mean[s] = v.mean;
    this.m2[s] = v.m2;
    this.w[s] = v.w;
  }
}

// --- Recent ----------------------------------------------------------------------------

export interface RecentOptions extends Bounds {
  ttlMs: number;
}

/** Per-key small JSON value that expires `ttlMs` after it was last set. */
export class Recent<T> extends Keyed {
  private t = new Float64Array(0);
  // values held as unknown (Recent<T> must fit Recent<unknown>)
  private v: unknown[] = [];

  constructor(
    private readonly opts: RecentOptions,
    table: StringTable = new StringTable(),
  ) {
    super(table, opts.maxKeys, opts.ttlMs);
  }

  protected grow(cap: number): void {
    this.t = grownF64(this.t, cap);
  }

  protected expired(s: number, limit: number): boolean {
    return this.t[s]! < limit;
  }

  protected drop(s: number): void {
    this.v[s] = undefined;
  }

  get(key: string, ts: number): T | undefined {
    const s = this.slots.find(key);
    if (s < 0) return undefined;
    if (ts - this.t[s]! > this.opts.ttlMs) {
      this.slots.remove(s);
      return undefined;
    }
    return this.v[s] as T;
  }

  set(key: string, ts: number, v: T): void {
    let s = this.slots.find(key);
    if (s < 0) s = this.slots.create(key);
    this.t[s] = ts;
    this.v[s] = v;
    this.slots.touch(s, ts);
  }

  delete(key: string): void {
    const s = this.slots.find(key);
    if (s >= 0) this.slots.remove(s);
  }

  protected row(s: number, base: number): unknown[] {
    return [this.t[s]! - base, this.v[s]];
  }

  protected fromRow(s: number, r: unknown[], base: number): void {
    this.t[s] = (r[0] as number) + base;
    this.v[s] = r[1];
  }

  protected fromV1(s: number, st: unknown): void {
    const e = st as { t: number; v: unknown };
    this.t[s] = e.t;
    this.v[s] = e.v;
  }
}

// --- Samples ---------------------------------------------------------------------------

export interface SamplesOptions extends Bounds {
  /** A key's samples are dropped when none was added for this long (as a Recent value expires). */
  ttlMs: number;
  /** Samples kept per key. */
  size: number;
  /**
   * The fields of a sample, one letter each: `n` a number, `s` a string
   * shared with other state or samples (a file name, the account's key),
   * held once in the store's StringTable and by its 4-byte id in the
   * sample, `c` a short string of its own (a queue id, an IP), held in
   * bytes: up to 15 characters below U+0100 take 16 bytes and no string
   * (others are held as given, as `s`), `i` a number that is usually a
   * 32-bit integer (a count, a flag): 4 bytes (others are held aside, exact),
   * `u` one that is usually an integer in [0, 2^32) (a file offset): 4 bytes
   * likewise, `t` a time in ms, usually within 24 days of the key's first
   * sample: 4 bytes likewise (as the difference, exact).
   */
  fields: string;
  /** `newest` (default): the last `size` samples; `first-and-newest`: the first size - 1, and the newest in the last place. */
  keep?: 'newest' | 'first-and-newest';
  /**
   * For a structure that replaced a Recent of the same name: a snapshot row
   * of that Recent ([time, value]) is restored as the one sample this
   * returns for its value (none when it returns undefined).
   */
  fromRecent?: (value: unknown) => SampleRow | undefined;
}

/** A sample as added: one value per field. */
export type SampleRow = readonly (string | number)[];

/** Bytes per `c` cell: a length byte, then up to 15 one-byte characters. */
const CELL = 16;
/** Length byte of a `c` cell whose string is in `Samples.long`. */
const LONG = 255;
/** An `i`, `u` or `t` cell whose number is in `Samples.wide`. */
const WIDE = -0x80000000;
/** A key whose newest sample is this far from its base time gets a new base (`t` cells stay 4 bytes). */
const REBASE_MS = 2 ** 30;

// A field's kind as a small integer: put and field branch on it per field of every sample.
const F_N = 0;
const F_S = 1;
const F_C = 2;
// 3: `i`
const F_U = 4;
const F_T = 5;
const FIELD_KINDS = 'nsciut';

/**
 * Per key, a few evidence samples (file, offset, time, queue id, ...):
 * numbers, short strings (as bytes) and shared strings (as StringTable
 * ids) in typed arrays for the whole structure, instead of an array (with
 * boxed times and a pointer per string) per key.
 */
export class Samples extends Keyed {
  private readonly perKey: number;
  private readonly nf: number;
  /** per field: F_N, F_S, F_C, or 3 (`i`) / F_U / F_T (32-bit cells) */
  private readonly kind: Uint8Array;
  /** per field: its column among the fields of its kind */
  private readonly col: number[];
  private readonly nn: number;
  private readonly ns: number;
  private readonly nc: number;
  private readonly ni: number;
  private readonly newest: boolean;
  /** last add */
  private t = new Float64Array(0);
  private cnt = new Int32Array(0);
  /** next place to write (newest: ring position) */
  private nxt = new Int32Array(0);
  private nums = new Float64Array(0);
  /** `s` cells: ids in the store's StringTable (one reference each), -1 for none */
  private sids = new Int32Array(0);
  /** `c` cells, CELL bytes each */
  private bytes = new Uint8Array(0);
  /** `c` values that do not fit a cell, by cell number */
  private readonly long = new Map<number, string>();
  /** `i`, `u` and `t` cells (see putInt) */
  private ints = new Int32Array(0);
  /** `i`/`u`/`t` values that do not fit their cell, by cell number */
  private readonly wide = new Map<number, number>();
  /** per key: the time `t` cells are relative to */
  private base = new Float64Array(0);

  constructor(
    private readonly opts: SamplesOptions,
    table: StringTable = new StringTable(),
  ) {
    super(table, opts.maxKeys, opts.ttlMs);
    if (!/^[nsciut]+$/.test(opts.fields) || !(opts.size >= 1)) throw new Error(`Samples: bad fields '${opts.fields}' or size ${opts.size}`);
    this.perKey = opts.size;
    this.nf = opts.fields.length;
    const of = { n: 0, s: 0, c: 0, i: 0 };
    this.kind = Uint8Array.from([...opts.fields], (f) => FIELD_KINDS.indexOf(f));
    // i, u and t share the 32-bit column
    this.col = [...opts.fields].map((f) => of[(f === 'u' || f === 't' ? 'i' : f) as keyof typeof of]++);
    this.nn = of.n;
    this.ns = of.s;
    this.nc = of.c;
    this.ni = of.i;
    this.newest = (opts.keep ?? 'newest') === 'newest';
  }

  protected grow(cap: number): void {
    this.t = grownF64(this.t, cap);
    this.base = grownF64(this.base, cap);
    this.cnt = grownI32(this.cnt, cap);
    this.nxt = grownI32(this.nxt, cap);
    this.nums = grownF64(this.nums, cap * this.perKey * this.nn);
    this.bytes = grownU8(this.bytes, cap * this.perKey * this.nc * CELL);
    this.ints = grownI32(this.ints, cap * this.perKey * this.ni);
    const from = this.sids.length;
    this.sids = grownI32(this.sids, cap * this.perKey * this.ns);
    this.sids.fill(-1, from);
  }

  protected expired(s: number, limit: number): boolean {
    return this.t[s]! < limit;
  }

  protected drop(s: number): void {
    const per = this.perKey * this.ns;
    for (let i = s * per, e = i + per; i < e; i++) {
      const id = this.sids[i]!;
      if (id >= 0) {
        this.table.release(id);
        this.sids[i] = -1;
      }
    }
    if (this.long.size > 0) {
      const cells = this.perKey * this.nc;
      for (let i = s * cells, e = i + cells; i < e; i++) if (this.bytes[i * CELL] === LONG) this.long.delete(i);
    }
    if (this.wide.size > 0) {
      const cells = this.perKey * this.ni;
      for (let i = s * cells, e = i + cells; i < e; i++) if (this.ints[i] === WIDE) this.wide.delete(i);
    }
    this.cnt[s] = 0;
  }

  /** Add a sample for key at ts (the key's samples start over when its last add is older than ttlMs). */
  add(key: string, ts: number, row: SampleRow): void {
    let s = this.slots.find(key);
    if (s >= 0 && ts - this.t[s]! > this.opts.ttlMs) {
      this.slots.remove(s);
      s = -1;
    }
    if (s < 0) {
      s = this.slots.create(key);
      this.cnt[s] = 0;
      this.nxt[s] = 0;
      this.base[s] = ts;
    } else if (Math.abs(ts - this.base[s]!) > REBASE_MS) {
      this.rebase(s, ts);
    }
    this.put(s, row);
    this.t[s] = ts;
    this.slots.touch(s, ts);
  }

  /** Move a key's base time to ts, re-encoding its `t` cells (a key sampled for weeks). */
  private rebase(s: number, ts: number): void {
    const times: [number, number][] = [];
    const cells = this.perKey * this.ni;
    for (let f = 0; f < this.nf; f++) {
      if (this.kind[f] !== F_T) continue;
      // the places written so far are 0 .. cnt - 1 in either keep mode
      for (let j = 0; j < this.cnt[s]!; j++) {
        const cell = s * cells + j * this.ni + this.col[f]!;
        times.push([cell, this.int(cell, F_T, s)]);
      }
    }
    this.base[s] = ts;
    for (const [cell, v] of times) this.putInt(cell, v, F_T, s);
  }

  /** The key's samples, oldest first (undefined when it has none within ttlMs). */
  get(key: string, ts: number): (string | number)[][] | undefined {
    const s = this.slots.find(key);
    if (s < 0) return undefined;
    if (ts - this.t[s]! > this.opts.ttlMs) {
      this.slots.remove(s);
      return undefined;
    }
    return this.rows(s);
  }

  /**
   * The key's newest sample, written into `into` (one value per field);
   * false when it has none within ttlMs. For a record kept as one sample,
   * read per event: no arrays are allocated.
   */
  latest(key: string, ts: number, into: (string | number)[]): boolean {
    const s = this.slots.find(key);
    if (s < 0) return false;
    if (ts - this.t[s]! > this.opts.ttlMs) {
      this.slots.remove(s);
      return false;
    }
    const n = this.cnt[s]!;
    if (n === 0) return false;
    const size = this.perKey;
    const at = s * size + (this.newest ? (this.nxt[s]! - 1 + size) % size : Math.min(n, size) - 1);
    for (let f = 0; f < this.nf; f++) into[f] = this.field(at, f, s);
    return true;
  }

  /** Forget the key's samples. */
  delete(key: string): void {
    const s = this.slots.find(key);
    if (s >= 0) this.slots.remove(s);
  }

  private put(s: number, row: SampleRow): void {
    const size = this.perKey;
    const n = this.cnt[s]!;
    let pos: number;
    if (this.newest) {
      pos = this.nxt[s]!;
      this.nxt[s] = (pos + 1) % size;
    } else {
      pos = n < size ? n : size - 1;
    }
    if (n < size) this.cnt[s] = n + 1;
    const at = s * size + pos;
    for (let f = 0; f < this.nf; f++) {
      const k = this.kind[f]!;
      const c = this.col[f]!;
      if (k === F_N) this.nums[at * this.nn + c] = row[f] as number;
      else if (k === F_S) this.putShared(at * this.ns + c, row[f] as string);
      else if (k === F_C) this.putShort(at * this.nc + c, row[f] as string);
      else this.putInt(at * this.ni + c, row[f] as number, k, s);
    }
  }

  private putShared(cell: number, v: string): void {
    const id = this.table.acquire(v); // before the release: the same string again keeps its entry
    const old = this.sids[cell]!;
    if (old >= 0) this.table.release(old);
    this.sids[cell] = id;
  }

  /**
   * A 32-bit cell of slot s: `i` as the integer, `u` as its low 32 bits
   * (read back unsigned), `t` as the difference from the key's base time;
   * a value that does not come back exactly that way is kept in `wide`.
   */
  private putInt(cell: number, v: number, kind: number, s: number): void {
    if (this.ints[cell] === WIDE) this.wide.delete(cell);
    const x = kind === F_T ? v - this.base[s]! : v;
    const c = x | 0;
    const exact = (kind === F_U ? c >>> 0 === x : c === x) && !Object.is(x, -0);
    if (exact && c !== WIDE) {
      this.ints[cell] = c;
    } else {
      this.ints[cell] = WIDE;
      this.wide.set(cell, v);
    }
  }

  private int(cell: number, kind: number, s: number): number {
    const c = this.ints[cell]!;
    if (c === WIDE) return this.wide.get(cell)!;
    return kind === F_U ? c >>> 0 : kind === F_T ? this.base[s]! + c : c;
  }

  private putShort(cell: number, v: string): void {
    const b = this.bytes;
    const o = cell * CELL;
    if (b[o] === LONG) this.long.delete(cell);
    const n = v.length;
    if (n < CELL) {
      let i = 0;
      while (i < n && v.charCodeAt(i) < 256) i++;
      if (i === n) {
        b[o] = n;
        for (i = 0; i < n; i++) b[o + 1 + i] = v.charCodeAt(i);
        return;
      }
    }
    b[o] = LONG;
    this.long.set(cell, own(v)); // kept for the sample's life: not a view into its log line
  }

  private short(cell: number): string {
    const b = this.bytes;
    const o = cell * CELL;
    const n = b[o]!;
    if (n === LONG) return this.long.get(cell)!;
    return String.fromCharCode.apply(null, b.subarray(o + 1, o + 1 + n) as unknown as number[]);
  }

  private rows(s: number): (string | number)[][] {
    const size = this.perKey;
    const n = this.cnt[s]!;
    const out: (string | number)[][] = [];
    for (let j = 0; j < n; j++) {
      const at = s * size + (this.newest ? (this.nxt[s]! - n + j + size) % size : j);
      const r: (string | number)[] = [];
      for (let f = 0; f < this.nf; f++) r.push(this.field(at, f, s));
      out.push(r);
    }
    return out;
  }

  /** Field f of the sample at place `at` of slot s. */
  private field(at: number, f: number, s: number): string | number {
    const k = this.kind[f]!;
    const c = this.col[f]!;
    return k === F_N ? this.nums[at * this.nn + c]! : k === F_S ? this.table.str(this.sids[at * this.ns + c]!) : k === F_C ? this.short(at * this.nc + c) : this.int(at * this.ni + c, k, s);
  }

  /** Row: last add, then the samples' fields, oldest first. */
  protected row(s: number, base: number): unknown[] {
    return [this.t[s]! - base, ...this.rows(s).flat()];
  }

  protected fromRow(s: number, r: unknown[], base: number): void {
    this.t[s] = (r[0] as number) + base;
    this.base[s] = this.t[s]!;
    if (r.length === 2 && typeof r[1] === 'object' && r[1] !== null && this.opts.fromRecent !== undefined) {
      const row = this.opts.fromRecent(r[1]);
      this.load(s, row !== undefined && row.length === this.nf ? [...row] : []);
      return;
    }
    this.load(s, r.slice(1) as (string | number)[]);
  }

  /** Before v2 samples were a Recent value: a ring [next, count, width, ...slots] or a flat array of samples. */
  protected fromV1(s: number, st: unknown): void {
    const e = st as { t: number; v: unknown };
    this.t[s] = e.t;
    this.base[s] = e.t;
    const v = Array.isArray(e.v) ? (e.v as unknown[]) : [];
    const nf = this.nf;
    if (v.length >= 3 && v[2] === nf && (v.length - 3) % nf === 0 && typeof v[0] === 'number') {
      const size = (v.length - 3) / nf;
      const count = v[1] as number;
      const next = v[0] as number;
      const flat: (string | number)[] = [];
      for (let j = 0; j < count; j++) flat.push(...(v.slice(3 + ((next - count + j + size) % size) * nf, 3 + ((next - count + j + size) % size) * nf + nf) as (string | number)[]));
      this.load(s, flat);
    } else if (v.length % nf === 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) {
      this.load(s, v as (string | number)[]);
    } else {
      this.load(s, []); // an older shape: its samples are not kept
    }
  }

  private load(s: number, flat: (string | number)[]): void {
    this.cnt[s] = 0;
    this.nxt[s] = 0;
    for (let i = 0; i + this.nf <= flat.length; i += this.nf) this.put(s, flat.slice(i, i + this.nf));
  }
}

// --- the store ------------------------------------------------------------------------------

type Structure = SlidingCounter | DistinctCounter | Baseline | Recent<unknown> | Samples;

/**
 * Hands each detector its named structures. Names are scoped by the
 * detector id, so two detectors never share state by accident (they share
 * only the strings of keys and values), and the whole store snapshots to
 * one JSON object.
 */
export class WindowStore {
  private readonly structures = new Map<string, Structure>();
  /** Key and value strings of every structure, each held once. */
  readonly strings = new StringTable();

  scope(prefix: string): ScopedStore {
    return new ScopedStore(this, prefix);
  }

  register<S extends Structure>(name: string, make: (strings: StringTable) => S): S {
    const existing = this.structures.get(name);
    if (existing) return existing as S;
    const s = make(this.strings);
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
    return this.store.register(`${this.prefix}.${name}`, (t) => new SlidingCounter(opts, t));
  }

  distinct(name: string, opts: DistinctCounterOptions): DistinctCounter {
    return this.store.register(`${this.prefix}.${name}`, (t) => new DistinctCounter(opts, t));
  }

  baseline(name: string, opts: BaselineOptions): Baseline {
    return this.store.register(`${this.prefix}.${name}`, (t) => new Baseline(opts, t));
  }

  recent<T>(name: string, opts: RecentOptions): Recent<T> {
    return this.store.register(`${this.prefix}.${name}`, (t) => new Recent<T>(opts, t)) as Recent<T>;
  }

  samples(name: string, opts: SamplesOptions): Samples {
    return this.store.register(`${this.prefix}.${name}`, (t) => new Samples(opts, t));
  }
}
