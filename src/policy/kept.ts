/**
 * What the policy keeps per entity (account or IP) between findings: its
 * recent findings and its decision state, in typed columns, with each
 * finding's text (summary and newest evidence) as JSON bytes in a TextArena
 * (deflated once plain texts pass PLAIN_TEXT_BYTES).
 *
 * Why columns: with 100,000 accounts holding a finding each, an object per
 * entity and per finding (with boxed times and scores, an array, a text
 * string) was ~550 bytes of long-lived heap per account, and V8 lets the
 * old generation grow to a few times its live size: ~160 MB of peak RSS for
 * the policy alone. Here an entity costs ~60 bytes of columns and its key's
 * bytes in a StringTable, plus its texts, all outside the heap.
 *
 * The policy reads an entity's findings as short-lived `Kept` views, made
 * only for the entity a finding is about.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Finding, Signal } from '../detect/finding.js';
import { TextArena } from '../detect/text-arena.js';
import { grownF64, grownI32, grownU8, StringTable } from '../detect/windows.js';

/** A finding as snapshots hold it. */
export interface FindingRef {
  ts: number;
  /** Its earliest evidence line (when what it reports began), at most ts. */
  start?: number;
  detector: string;
  signals: Signal[];
  score: number;
  summary: string;
  evidence: Finding['evidence'];
}

export type DecisionAction = 'none' | 'alert' | 'lock';
const ACTIONS: readonly DecisionAction[] = ['none', 'alert', 'lock'];

/** An evidence line as [file, offset, ts] or [file, offset, ts, note]. */
type EvidenceRow = [string, number, number] | [string, number, number, string];

/** A finding's text as it came, when it cannot round-trip through JSON exactly (never from the detectors). */
type RawText = readonly [string, Finding['evidence']];

// Small window and hash: the texts are short, and a deflate stream's state is allocated per call.
const DEFLATE = { level: 1, memLevel: 1, windowBits: 10, chunkSize: 512 };

/**
 * Texts are kept as plain UTF-8 JSON until the plain ones take this many
 * bytes, deflated after that: deflating costs ~15-35 µs per finding (a zlib
 * stream set up per call), ~5% of the whole pipeline on a day of logs, and
 * saves ~250 bytes per finding, which matters only with tens of thousands
 * of kept findings (100,000 accounts with a finding each: ~25 MB deflated
 * instead of ~55 MB).
 */
const PLAIN_TEXT_BYTES = 8 * 1024 * 1024;

/**
 * The text of a finding as JSON bytes, [summary, EvidenceRow[]] (deflated
 * when `deflate`), if reading it back gives the same values in the same
 * shape: evidence objects of exactly {file, offset, ts} or {file, offset,
 * ts, note}, in that order, with finite numbers (JSON has no NaN, Infinity
 * or -0). Else undefined.
 * The JSON is well-formed UTF-16 (JSON.stringify escapes lone surrogates),
 * so its UTF-8 bytes read back exactly.
 */
function packText(summary: string, evidence: Finding['evidence'], deflate: boolean): Buffer | undefined {
  const rows: EvidenceRow[] = [];
  for (const e of evidence) {
    const keys = Object.keys(e);
    const n = keys.length;
    const exact =
      (n === 3 || (n === 4 && keys[3] === 'note' && typeof e.note === 'string')) &&
      keys[0] === 'file' &&
      keys[1] === 'offset' &&
      keys[2] === 'ts' &&
      typeof e.file === 'string' &&
      jsonNumber(e.offset) &&
      jsonNumber(e.ts);
    if (!exact) return undefined;
    rows.push(n === 3 ? [e.file, e.offset, e.ts] : [e.file, e.offset, e.ts, e.note!]);
  }
  const json = JSON.stringify([summary, rows]);
  return deflate ? deflateRawSync(json, DEFLATE) : Buffer.from(json, 'utf8');
}

function unpackText(bytes: Uint8Array, deflated: boolean): [string, EvidenceRow[]] {
  const json = deflated ? inflateRawSync(bytes, { windowBits: DEFLATE.windowBits, chunkSize: 2048 }) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return JSON.parse(json.toString('utf8')) as [string, EvidenceRow[]];
}

function jsonNumber(n: unknown): boolean {
  return typeof n === 'number' && Number.isFinite(n) && !Object.is(n, -0);
}

/** Small ids for a few distinct values (detector names, signal lists). */
class Interned<T> {
  readonly values: T[] = [];
  private readonly ids = new Map<string, number>();

  id(key: string, make: () => T): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(make());
      this.ids.set(key, id);
    }
    return id;
  }
}

/** A kept finding, read from its row: numbers at once, the text when asked for. */
export class Kept {
  constructor(
    private readonly store: KeptStore,
    /** Its row in the store. */
    readonly row: number,
    readonly ts: number,
    /** Its earliest evidence line (when what it reports began), at most ts. */
    readonly start: number,
    readonly detector: string,
    /** Shared between findings with the same signals; never mutated. */
    readonly signals: readonly Signal[],
    readonly score: number,
  ) {}

  get summary(): string {
    return this.store.text(this.row)[0];
  }

  /** A fresh copy of its evidence. */
  get evidence(): Finding['evidence'] {
    return this.store.text(this.row)[1];
  }

  ref(): FindingRef {
    const [summary, evidence] = this.store.text(this.row); // one decode for both
    return { ts: this.ts, start: this.start, detector: this.detector, signals: [...this.signals], score: this.score, summary, evidence };
  }
}

/** An entity's decision state, as snapshots hold it. */
export interface EntityFlags {
  locked: boolean;
  lastAlertTs: number;
  lastAction: DecisionAction;
  /** A lock was warranted but the budget held it back (alerted once); absent until first set. */
  lockBlocked?: boolean;
}

const NONE = -1;
/** fDetector of a free finding row */
const FREE = -1;
/** lockBlocked column: absent, false, true */
const UNSET = 0;

export class KeptStore {
  /** entity key → entity row (its id in the table: keys held as bytes, off the heap) */
  private readonly keys = new StringTable();
  /** recency order of entity rows, least recent first (see touch) */
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private oldest = NONE;
  private newest = NONE;
  // per entity row
  private head = new Int32Array(0);
  private locked = new Uint8Array(0);
  private action = new Uint8Array(0);
  private blocked = new Uint8Array(0);
  private lastAlert = new Float64Array(0);
  // per finding row; a row's `next` chains an entity's findings oldest first, and the free rows
  private fTs = new Float64Array(0);
  private fStart = new Float64Array(0);
  private fScore = new Float64Array(0);
  private fDetector = new Int32Array(0);
  private fSignals = new Int32Array(0);
  /** arena handle, or NONE when the text is in `raw` */
  private fText = new Int32Array(0);
  private fNext = new Int32Array(0);
  /** 1 when the row's text is deflated (see PLAIN_TEXT_BYTES) */
  private fDeflated = new Uint8Array(0);
  /** bytes of plain (not deflated) texts held */
  private plainBytes = 0;
  private freeFinding = NONE;
  /** rows from add() since the last setFindings */
  private readonly added: number[] = [];
  private findingRows = 0;
  private readonly raw = new Map<number, RawText>();
  private readonly texts = new TextArena();
  private readonly detectors = new Interned<string>();
  private readonly signalLists = new Interned<readonly Signal[]>();

  constructor(
    private readonly maxEntities: number,
    /** Texts stay plain until they take this many bytes (see PLAIN_TEXT_BYTES). */
    private readonly plainTextBytes = PLAIN_TEXT_BYTES,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  /** The entity's row, or -1. */
  find(key: string): number {
    return this.keys.find(key);
  }

  /**
   * The entity's row, created when new, and made the most recent: when full,
   * the least recently touched entity is dropped first.
   */
  touch(key: string): number {
    let e = this.keys.find(key);
    if (e < 0) {
      if (this.keys.size >= this.maxEntities && this.oldest !== NONE) this.drop(this.oldest);
      e = this.create(key);
    } else if (e !== this.newest) {
      this.unlink(e);
      this.linkNewest(e);
    }
    return e;
  }

  /** The entity's row, created when new without making it recent or dropping another (an operator's lock). */
  ensure(key: string): number {
    const e = this.keys.find(key);
    return e >= 0 ? e : this.create(key);
  }

  flags(e: number): EntityFlags {
    const f: EntityFlags = { locked: this.locked[e] === 1, lastAlertTs: this.lastAlert[e]!, lastAction: ACTIONS[this.action[e]!]! };
    if (this.blocked[e] !== UNSET) f.lockBlocked = this.blocked[e] === 2;
    return f;
  }

  setLocked(e: number, v: boolean): void {
    this.locked[e] = v ? 1 : 0;
  }

  setLastAlertTs(e: number, ts: number): void {
    this.lastAlert[e] = ts;
  }

  setLastAction(e: number, a: DecisionAction): void {
    this.action[e] = ACTIONS.indexOf(a);
  }

  setLockBlocked(e: number, v: boolean): void {
    this.blocked[e] = v ? 2 : 1;
  }

  /** The entity's findings, oldest first. */
  findings(e: number): Kept[] {
    const out: Kept[] = [];
    for (let r = this.head[e]!; r !== NONE; r = this.fNext[r]!) out.push(this.view(r));
    return out;
  }

  /** Keep a finding, to be placed on an entity by setFindings. */
  add(ref: { ts: number; start: number; detector: string; signals: readonly Signal[]; score: number; summary: string; evidence: Finding['evidence'] }): Kept {
    const r = this.newFindingRow();
    this.added.push(r);
    this.fTs[r] = ref.ts;
    this.fStart[r] = ref.start;
    this.fScore[r] = ref.score;
    this.fDetector[r] = this.detectors.id(ref.detector, () => ref.detector);
    this.fSignals[r] = this.signalLists.id(ref.signals.join(','), () => [...ref.signals]);
    const deflate = this.plainBytes >= this.plainTextBytes;
    const packed = packText(ref.summary, ref.evidence, deflate);
    this.fDeflated[r] = deflate ? 1 : 0;
    if (!deflate && packed !== undefined) this.plainBytes += packed.length;
    if (packed !== undefined) this.fText[r] = this.texts.put(packed);
    else {
      this.fText[r] = NONE;
      this.raw.set(r, [ref.summary, ref.evidence.map((x) => ({ ...x }))]);
    }
    return this.view(r);
  }

  /**
   * The entity's findings become exactly `list` (oldest first): its earlier
   * findings and new ones from `add` that are not in it are freed.
   */
  setFindings(e: number, list: readonly Kept[]): void {
    const keep = new Set<number>();
    for (const k of list) keep.add(k.row);
    for (let r = this.head[e]!; r !== NONE; ) {
      const next = this.fNext[r]!;
      if (!keep.has(r)) this.freeFindingRow(r);
      r = next;
    }
    for (const r of this.added) if (!keep.has(r) && this.fDetector[r] !== FREE) this.freeFindingRow(r);
    this.added.length = 0;
    let prev = NONE;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i]!.row;
      this.fNext[r] = prev;
      prev = r;
    }
    this.head[e] = prev;
  }

  /** [summary, a fresh copy of the evidence] of a finding row. */
  text(r: number): [string, Finding['evidence']] {
    const h = this.fText[r]!;
    if (h === NONE) {
      const [summary, evidence] = this.raw.get(r)!;
      return [summary, evidence.map((x) => ({ ...x }))];
    }
    const [summary, rows] = unpackText(this.texts.get(h), this.fDeflated[r] === 1);
    return [summary, rows.map((x) => (x.length === 3 ? { file: x[0], offset: x[1], ts: x[2] } : { file: x[0], offset: x[1], ts: x[2], note: x[3] }))];
  }

  /** Every entity, least recent first. */
  *entries(): IterableIterator<[string, number]> {
    for (let e = this.oldest; e !== NONE; e = this.next[e]!) yield [this.keys.str(e), e];
  }

  clear(): void {
    while (this.oldest !== NONE) this.drop(this.oldest);
  }

  /** Bytes held outside the heap by live texts (for tests and the bench). */
  get textBytes(): number {
    return this.texts.liveBytes;
  }

  private view(r: number): Kept {
    return new Kept(this, r, this.fTs[r]!, this.fStart[r]!, this.detectors.values[this.fDetector[r]!]!, this.signalLists.values[this.fSignals[r]!]!, this.fScore[r]!);
  }

  private create(key: string): number {
    const e = this.keys.acquire(key);
    if (e >= this.head.length) {
      const cap = Math.max(64, this.head.length * 2, e + 1);
      this.prev = grownI32(this.prev, cap, NONE);
      this.next = grownI32(this.next, cap, NONE);
      this.head = grownI32(this.head, cap, NONE);
        this.locked = grownU8(this.locked, cap);
        this.action = grownU8(this.action, cap);
        this.blocked = grownU8(this.blocked, cap);
      this.lastAlert = grownF64(this.lastAlert, cap);
    }
    this.head[e] = NONE;
    this.locked[e] = 0;
    this.action[e] = 0;
    this.blocked[e] = UNSET;
    this.lastAlert[e] = -Infinity;
    this.linkNewest(e);
    return e;
  }

  private drop(e: number): void {
    this.unlink(e);
    for (let r = this.head[e]!; r !== NONE; ) {
      const next = this.fNext[r]!;
      this.freeFindingRow(r);
      r = next;
    }
    this.head[e] = NONE;
    this.keys.release(e);
  }

  private linkNewest(e: number): void {
    this.prev[e] = this.newest;
    this.next[e] = NONE;
    if (this.newest !== NONE) this.next[this.newest] = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: number): void {
    const p = this.prev[e]!;
    const n = this.next[e]!;
    if (p !== NONE) this.next[p] = n;
    else this.oldest = n;
    if (n !== NONE) this.prev[n] = p;
    else this.newest = p;
  }

  private newFindingRow(): number {
    if (this.freeFinding !== NONE) {
      const r = this.freeFinding;
      this.freeFinding = this.fNext[r]!;
      this.fNext[r] = NONE;
      return r;
    }
    if (this.findingRows === this.fTs.length) {
      const cap = Math.max(64, this.fTs.length * 2);
      this.fTs = grownF64(this.fTs, cap);
      this.fStart = grownF64(this.fStart, cap);
      this.fScore = grownF64(this.fScore, cap);
      this.fDetector = grownI32(this.fDetector, cap);
      this.fSignals = grownI32(this.fSignals, cap);
      this.fText = grownI32(this.fText, cap, NONE);
      this.fDeflated = grownU8(this.fDeflated, cap);
      this.fNext = grownI32(this.fNext, cap, NONE);
    }
    const r = this.findingRows++;
    this.fNext[r] = NONE;
    return r;
  }

  private freeFindingRow(r: number): void {
    // a row freed twice would sit on the free list twice and end up in two chains
    if (this.fDetector[r] === FREE) throw new Error(`KeptStore: finding row ${r} freed twice`);
    this.fDetector[r] = FREE;
    const h = this.fText[r]!;
    if (h === NONE) this.raw.delete(r);
    else {
      if (this.fDeflated[r] === 0) this.plainBytes -= this.texts.get(h).length;
      this.texts.free(h);
    }
    this.fText[r] = NONE;
    this.fNext[r] = this.freeFinding;
    this.freeFinding = r;
  }
}
