/**
 * Reads several log files at once and yields their records in time order
 * (a k-way merge on each file's next record), so a zimbra.log and a
 * mailbox.log of the same day are seen as the server lived them. Each file
 * keeps its own envelope context (year, zone, default host).
 */
import { stat } from 'node:fs/promises';
import type { LogRecord } from '../core/record.js';
import type { EnvelopeFormat } from '../envelope/envelope.js';
import type { ZoneClock } from '../envelope/zone.js';
import { InputError, lineBatches, openInput, type LineBatch } from '../input/line-reader.js';
import { envelopeContext, type LineParser } from './line-parser.js';

export interface MergeInput {
  path: string;
  format?: EnvelopeFormat;
  host?: string;
}

export interface MergeOptions {
  zone: ZoneClock;
  year?: number;
  maxLineBytes?: number;
  onInputError?: (file: string, err: InputError) => void;
  onProgress?: (bytes: number, total: number) => void;
}

interface Cursor {
  file: string;
  iter: AsyncGenerator<LineBatch, unknown>;
  batch: LineBatch;
  i: number;
  head: LogRecord | undefined;
  ctx: ReturnType<typeof envelopeContext>;
  bytes: number;
}

/**
 * Calls `onRecord` for every record of every input in time order (ties: the
 * earlier-listed file first). Returns the number of inputs that failed.
 */
export async function mergeInputs(inputs: readonly MergeInput[], lp: LineParser, onRecord: (r: LogRecord) => void, opts: MergeOptions): Promise<{ inputErrors: number; bytes: number }> {
  let inputErrors = 0;
  let total = 0;
  const cursors: Cursor[] = [];
  const firstRecords: Promise<boolean>[] = [];
  for (const inp of inputs) {
    let refTime = Date.now();
    try {
      const st = await stat(inp.path);
      refTime = st.mtimeMs;
      total += st.size;
    } catch {
      // reported by openInput
    }
    try {
      const stream = await openInput(inp.path);
      const c: Cursor = {
        file: inp.path,
        iter: lineBatches(stream, { maxLineBytes: opts.maxLineBytes }),
        batch: { lines: [], offsets: [] },
        i: 0,
        head: undefined,
        ctx: envelopeContext({ file: inp.path, format: inp.format, zone: opts.zone, year: opts.year, refTime, defaultHost: inp.host }),
        bytes: 0,
      };
      cursors.push(c);
      // Start reading now, not after the other inputs are open: a gzip
      // stream that fails meanwhile would have no error listener yet, and
      // its error would be thrown out of the process.
      firstRecords.push(advance(c));
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      inputErrors++;
      opts.onInputError?.(inp.path, err);
    }
  }

  /** Move a cursor to its next well-formed record (or mark it exhausted). */
  async function advance(c: Cursor): Promise<boolean> {
    for (;;) {
      if (nextRecord(c)) return true;
      let r: IteratorResult<LineBatch, unknown>;
      try {
        r = await c.iter.next();
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        inputErrors++;
        opts.onInputError?.(c.file, err);
        c.head = undefined;
        return false;
      }
      if (r.done) {
        c.head = undefined;
        return false;
      }
      c.batch = r.value;
      c.i = 0;
    }
  }

  let live: Cursor[] = [];
  for (let k = 0; k < cursors.length; k++) if (await firstRecords[k]) live.push(cursors[k]!);
  let n = 0;
  while (live.length > 0) {
    let best = live[0]!;
    for (let k = 1; k < live.length; k++) if (live[k]!.head!.ts < best.head!.ts) best = live[k]!;
    onRecord(best.head!);
    const next = advanceFast(best);
    const more = typeof next === 'boolean' ? next : await next; // no await per line while a batch lasts
    if (!more) live = live.filter((c) => c !== best);
    if (opts.onProgress && (++n & 0x3ffff) === 0) opts.onProgress(cursors.reduce((s, c) => s + c.bytes, 0), total);
  }
  return { inputErrors, bytes: cursors.reduce((s, c) => s + c.bytes, 0) };

  // Same as advance, without an await while the current batch lasts (the hot path).
  function advanceFast(c: Cursor): boolean | Promise<boolean> {
    return nextRecord(c) || advance(c);
  }

  /** The cursor's next well-formed record from its current batch; false when the batch is used up. */
  function nextRecord(c: Cursor): boolean {
    const { lines, offsets } = c.batch;
    while (c.i < lines.length) {
      const k = c.i++;
      const line = lines[k]!;
      const offset = offsets[k]!;
      c.bytes = offset + line.length;
      const rec = lp.envelope(line, offset, c.ctx);
      if (rec !== undefined) {
        c.head = rec;
        return true;
      }
    }
    return false;
  }
}
