/**
 * Rows as a TabSeparated body, for inserts of flat rows (every field a
 * string or a finite number). On event rows this takes about 40% less CPU
 * than JSONEachRow, which escapes the `json` field (itself JSON) a second
 * time, and the server reads TabSeparated faster too. Rows holding anything
 * else (the arrays of message, finding and decision rows) give undefined
 * and go as JSONEachRow.
 *
 * DateTime fields are epoch seconds, as in JSONEachRow: ClickHouse (18.16
 * and current) reads a plain number there as a Unix timestamp.
 */
import { tsvField, unescapeTsvField } from './escape.js';

export interface TabSeparatedBody {
  /** The first row's keys, in order: every row is read in this order. */
  columns: string[];
  body: string;
}

export function tabSeparated(rows: readonly object[]): TabSeparatedBody | undefined {
  const first = rows[0];
  if (first === undefined) return undefined;
  const columns = Object.keys(first);
  if (columns.length === 0) return undefined;
  let body = '';
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as Record<string, unknown>;
    for (let i = 0; i < columns.length; i++) {
      const v = row[columns[i]!];
      let field: string;
      if (typeof v === 'string') field = tsvField(v);
      else if (typeof v === 'number' && Number.isFinite(v)) field = String(v);
      else return undefined; // missing, non-finite or not flat
      body += i === 0 ? field : '\t' + field;
    }
    body += '\n';
  }
  return { columns, body };
}

/**
 * Rows already encoded as TabSeparated lines, for one column list, in a
 * growable byte buffer outside the JS heap, with each row's end offset.
 *
 * Why: the parse stage stores a row for every event it parses (some 2 M a
 * day's log), and the sink holds them until a batch of tens of thousands is
 * due. As objects (an object and a dozen strings per row) they outlived
 * several young-generation collections, each copying them, and reached the
 * old generation: 23% of the parse stage's time went to collecting. Encoded
 * at once into bytes here, a row leaves nothing on the heap to collect (17%
 * fewer instructions for the stage's work on the bench log).
 *
 * Rows are taken from the front (shift) and added at the back; the bytes of
 * taken rows are reclaimed when the buffer must grow.
 */
export class TsvRows {
  private data: Buffer;
  /** Byte offset of the first live row. */
  private from = 0;
  /** Bytes used (the end of the last row). */
  private used = 0;
  /** End offset (past its newline) of row i, for i in [head, count); doubles: a backlog may pass 2 GiB. */
  private ends: Float64Array;
  private head = 0;
  private count = 0;

  /** @param columns every row's fields, in this order (see eventTsvLine) */
  constructor(
    readonly columns: readonly string[],
    bytes = 64 * 1024,
  ) {
    this.data = Buffer.allocUnsafe(Math.max(bytes, 16));
    this.ends = new Float64Array(256);
  }

  get length(): number {
    return this.count - this.head;
  }

  /** Bytes the buffer takes (live rows, taken rows' space not reused yet, and room). */
  get bufferBytes(): number {
    return this.data.length;
  }

  /** Bytes of the live rows (newlines included). */
  get byteLength(): number {
    return this.used - this.from;
  }

  /**
   * Add a row: its fields, each already a TSV field (tsvField), joined by
   * tabs, without the newline.
   */
  push(line: string): void {
    this.reserve(line.length * 3 + 1, 1);
    this.used += this.data.write(line, this.used, 'utf8');
    this.data[this.used++] = 10;
    this.ends[this.count++] = this.used;
  }

  /** Add every live row of `other` (same columns). */
  append(other: TsvRows): void {
    if (other.columns.length !== this.columns.length || other.columns.some((c, i) => c !== this.columns[i])) {
      throw new Error(`TsvRows: columns differ (${other.columns.join(',')} into ${this.columns.join(',')})`);
    }
    const n = other.length;
    if (n === 0) return;
    const bytes = other.byteLength;
    this.reserve(bytes, n);
    const shift = this.used - other.from;
    other.data.copy(this.data, this.used, other.from, other.used);
    for (let i = 0; i < n; i++) this.ends[this.count + i] = other.ends[other.head + i]! + shift;
    this.count += n;
    this.used += bytes;
  }

  /** Drop the first n live rows. */
  shift(n: number): void {
    if (n <= 0) return;
    if (n >= this.length) {
      this.from = this.used = this.head = this.count = 0;
      // A backlog (ClickHouse away) grew the buffer: give the memory back once it is stored.
      if (this.data.length > KEEP_BYTES) this.data = Buffer.allocUnsafe(KEEP_BYTES);
      if (this.ends.length > KEEP_ROWS) this.ends = new Float64Array(KEEP_ROWS);
      return;
    }
    this.head += n;
    this.from = this.ends[this.head - 1]!;
  }

  /** Live rows [a, b) as rows of their own (a copy). */
  slice(a = 0, b = this.length): TsvRows {
    const lo = Math.max(0, Math.min(a, this.length));
    const hi = Math.max(lo, Math.min(b, this.length));
    const start = this.startOf(lo);
    const end = hi > lo ? this.ends[this.head + hi - 1]! : start;
    const out = new TsvRows(this.columns, end - start);
    this.data.copy(out.data, 0, start, end);
    out.used = end - start;
    if (out.ends.length < hi - lo) out.ends = new Float64Array(hi - lo);
    for (let i = lo; i < hi; i++) out.ends[i - lo] = this.ends[this.head + i]! - start;
    out.count = hi - lo;
    return out;
  }

  /** The live rows as a TabSeparated body (a view: valid until rows are added or shifted). */
  body(): Buffer {
    return this.data.subarray(this.from, this.used);
  }

  /** Live row i as its TSV text, without the newline. */
  line(i: number): string {
    if (i < 0 || i >= this.length) throw new RangeError(`TsvRows: no row ${i} of ${this.length}`);
    return this.data.toString('utf8', this.startOf(i), this.ends[this.head + i]! - 1);
  }

  /** Live row i as an object of its fields, unescaped, as strings (what a dead letter shows). */
  rowObject(i: number): Record<string, string> {
    const fields = this.line(i).split('\t');
    const o: Record<string, string> = {};
    this.columns.forEach((c, k) => (o[c] = unescapeTsvField(fields[k] ?? '')));
    return o;
  }

  private startOf(i: number): number {
    return i === 0 ? this.from : this.ends[this.head + i - 1]!;
  }

  /**
   * Room for `bytes` more bytes and `rows` more rows. The taken rows' space
   * is reused in place only when that leaves at least half the buffer free,
   * else the buffer doubles: either way a byte is copied O(1) times on
   * average (reclaiming a sliver of a full buffer at each push would copy it
   * all each time).
   */
  private reserve(bytes: number, rows: number): void {
    if (this.used + bytes > this.data.length) {
      const live = this.used - this.from;
      const need = live + bytes;
      const data = need <= this.data.length >>> 1 ? this.data : Buffer.allocUnsafe(Math.max(need, this.data.length * 2));
      this.data.copy(data, 0, this.from, this.used);
      this.data = data;
      for (let i = this.head; i < this.count; i++) this.ends[i] = this.ends[i]! - this.from;
      this.used = live;
      this.from = 0;
    }
    if (this.count + rows > this.ends.length) {
      const live = this.count - this.head;
      const ends = live + rows <= this.ends.length >>> 1 ? this.ends : new Float64Array(Math.max(live + rows, this.ends.length * 2));
      ends.set(this.ends.subarray(this.head, this.count), 0);
      this.ends = ends;
      this.count = live;
      this.head = 0;
    }
  }
}

/**
 * Sizes an emptied TsvRows shrinks back to when it grew past them: a full
 * insert of event rows (clickhouse.batchRows 50,000 of some 450 bytes) fits,
 * so the sink's buffers are reused from batch to batch instead of regrown
 * (each regrowth copied the rows again into freshly mapped pages); only a
 * backlog's bigger buffer is given back.
 */
const KEEP_BYTES = 32 << 20;
const KEEP_ROWS = 1 << 16;
