/**
 * Streams lines from a file, a gzip file (detected by its magic bytes, so a
 * rotated `mail.log.2.gz` needs no flag), a pipe or stdin, with the byte
 * offset of every line in the decompressed stream. Other compressions and
 * archives are refused by name (not-a-log.ts). Memory stays bounded whatever the
 * file size: one chunk plus at most one partial line of `maxLineBytes`.
 *
 * Bad bytes never stop the stream: invalid UTF-8 decodes to U+FFFD, a line
 * over the limit is counted and skipped up to its newline, a trailing line
 * without newline (a truncated file) is still delivered, and a corrupt gzip
 * delivers every complete line before the damage and then reports it.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAscii } from 'node:buffer';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FloodgateError } from '../core/errors.js';
import { isTarHeader, notALog, TAR_REFUSED } from './not-a-log.js';

export interface ReadStats {
  bytes: number;
  oversized: number;
  /** 1 when a corrupt stream ended inside a line: that partial line is dropped, never half-parsed. */
  droppedPartial: number;
}

export type LineHandler = (line: string, offset: number) => void;

export interface ReadOptions {
  /** Lines longer than this (bytes) are skipped and counted. Default 64 KiB. */
  maxLineBytes?: number;
  /** Called with the decompressed byte count now and then, for progress output. */
  onProgress?: (bytes: number) => void;
}

/** An input problem; `stats` holds what was read before it (for a corrupt stream). */
export class InputError extends FloodgateError {
  stats?: ReadStats;
}

const CHUNK = 1 << 20;

/**
 * Buffer's own latin1/utf8 decoders, called without toString's argument
 * checks and encoding lookup (that wrapper was 3% of the parse phase).
 * Undocumented, so toString stands in if a Node version lacks them.
 */
type Decode = (buf: Buffer, start: number, end: number) => string;
interface BufferDecoders {
  latin1Slice?: (start: number, end: number) => string;
  utf8Slice?: (start: number, end: number) => string;
}
const proto = Buffer.prototype as BufferDecoders;
const latin1: Decode = typeof proto.latin1Slice === 'function' ? (b, s, e) => (b as BufferDecoders).latin1Slice!(s, e) : (b, s, e) => b.toString('latin1', s, e);
const utf8: Decode = typeof proto.utf8Slice === 'function' ? (b, s, e) => (b as BufferDecoders).utf8Slice!(s, e) : (b, s, e) => b.toString('utf8', s, e);

/**
 * Open `path` (or stdin for `-`) as a byte stream, gunzipping when the
 * content is gzip. Refuses (FG_INPUT_UNREADABLE) another compression or an
 * archive (see notALog); a tar inside gzip shows only once gunzipped, and
 * the line readers refuse it at their first chunk.
 */
export async function openInput(path: string): Promise<Readable> {
  if (path === '-') return sniffStream(process.stdin, 'stdin');
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${path}: ${why}`, { cause: err });
  }
  // enough to tell what the file is (a tar header is 512 bytes)
  const head = Buffer.alloc(512);
  let bytesRead: number;
  try {
    // A pipe (`replay <(xz -dc mail.log.1.xz)`, a FIFO) has no offsets to read at: it is read once, like stdin.
    if ((await fh.stat()).isFIFO()) bytesRead = -1;
    else ({ bytesRead } = await fh.read(head, 0, head.length, 0));
  } catch (err) {
    await fh.close();
    const e = err as NodeJS.ErrnoException;
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${path}: ${e.code === 'EISDIR' ? 'is a directory' : e.message}`, { cause: err });
  }
  if (bytesRead < 0) return sniffStream(createReadStream('', { fd: fh, highWaterMark: CHUNK, autoClose: true }), path);
  const refused = notALog(head.subarray(0, bytesRead), path);
  if (refused !== undefined) {
    await fh.close();
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${path}: ${refused}`);
  }
  const raw = createReadStream('', { fd: fh, highWaterMark: CHUNK, autoClose: true });
  return isGzip(head.subarray(0, bytesRead)) ? raw.pipe(createGunzip({ chunkSize: CHUNK })) : raw;
}

function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Stdin or a pipe cannot be peeked without consuming: check the first chunk and splice it back. */
async function sniffStream(stream: Readable, name: string): Promise<Readable> {
  const { PassThrough } = await import('node:stream');
  const first: Buffer | null = await new Promise((resolve, reject) => {
    const onReadable = () => {
      cleanup();
      resolve(stream.read() as Buffer | null);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new InputError('FG_INPUT_UNREADABLE', `cannot read ${name}: ${e.message}`, { cause: e }));
    };
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.once('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
  const pass = new PassThrough({ highWaterMark: CHUNK });
  if (first === null) {
    pass.end();
    return pass;
  }
  const refused = notALog(first, name === 'stdin' ? '-' : name);
  if (refused !== undefined) {
    stream.destroy();
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${name}: ${refused}`);
  }
  pass.write(first);
  stream.pipe(pass);
  return isGzip(first) ? pass.pipe(createGunzip({ chunkSize: CHUNK })) : pass;
}

/** The first chunk of a (gunzipped) stream: a tar archive is refused before any line (see notALog). */
function checkFirstChunk(chunk: Buffer, stats: ReadStats): void {
  if (stats.bytes === 0 && isTarHeader(chunk)) throw new InputError('FG_INPUT_UNREADABLE', TAR_REFUSED);
}

/**
 * Splits chunks of a byte stream into lines with their stream offsets.
 * Holds at most one partial line (bounded by maxLineBytes); longer lines
 * are skipped up to their newline and counted.
 */
export class LineSplitter {
  readonly stats: ReadStats = { bytes: 0, oversized: 0, droppedPartial: 0 };
  private carry: Buffer | null = null; // partial line from the previous chunk
  private carryOffset = 0; // stream offset of carry's first byte
  private skipping = false; // inside an oversized line, dropping bytes until '\n'
  private pos = 0; // stream offset of the next chunk's first byte
  private readonly max: number;

  constructor(maxLineBytes = 64 * 1024) {
    this.max = maxLineBytes;
  }

  /**
   * `ascii`: the buffer holds no byte above 0x7f, so latin1 decodes it as
   * UTF-8 would, without UTF-8's validation (~40 ns less per line; logs are
   * mostly ASCII, and a chunk with any other byte takes the UTF-8 path).
   */
  private emit(buf: Buffer, start: number, end: number, offset: number, onLine: LineHandler, ascii: boolean): void {
    let e = end;
    if (e > start && buf[e - 1] === 13) e--; // CRLF
    if (e - start > this.max) {
      this.stats.oversized++;
      return;
    }
    onLine(ascii ? latin1(buf, start, e) : utf8(buf, start, e), offset);
  }

  push(chunk: Buffer, onLine: LineHandler): void {
    const max = this.max;
    let start = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        this.pos += chunk.length;
        this.stats.bytes = this.pos;
        return;
      }
      this.skipping = false;
      start = nl + 1;
    } else if (this.carry !== null) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        if (this.carry.length + chunk.length > max + 1) {
          this.stats.oversized++;
          this.carry = null;
          this.skipping = true;
        } else {
          this.carry = Buffer.concat([this.carry, chunk]);
        }
        this.pos += chunk.length;
        this.stats.bytes = this.pos;
        return;
      }
      const line = Buffer.concat([this.carry, chunk.subarray(0, nl)]);
      this.carry = null;
      this.emit(line, 0, line.length, this.carryOffset, onLine, false);
      start = nl + 1;
    }
    const pos = this.pos;
    const ascii = isAscii(chunk);
    let nl = chunk.indexOf(10, start);
    while (nl >= 0) {
      this.emit(chunk, start, nl, pos + start, onLine, ascii);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      if (chunk.length - start > max + 1) {
        this.stats.oversized++;
        this.skipping = true;
      } else {
        this.carry = Buffer.from(chunk.subarray(start)); // copy: the stream may reuse its buffer
        this.carryOffset = pos + start;
      }
    }
    this.pos += chunk.length;
    this.stats.bytes = this.pos;
  }

  /** End of a healthy stream: a last line without newline (truncated file) is still a line. */
  end(onLine: LineHandler): void {
    if (this.carry !== null) this.emit(this.carry, 0, this.carry.length, this.carryOffset, onLine, false);
    this.carry = null;
  }

  /** End of a broken stream: a partial line is dropped, never half-parsed. */
  abort(): void {
    if (this.carry !== null) this.stats.droppedPartial = 1;
    this.carry = null;
  }
}

function corrupt(err: unknown, stats: ReadStats): InputError {
  if (err instanceof InputError) return err; // refused (checkFirstChunk), not broken
  const e = err as NodeJS.ErrnoException;
  const what = e.code === 'Z_BUF_ERROR' || e.code === 'Z_DATA_ERROR' ? 'corrupt or truncated gzip data' : e.message;
  const ie = new InputError('FG_INPUT_CORRUPT', `${what} after ${stats.bytes} bytes`, { cause: err });
  ie.stats = stats;
  return ie;
}

/**
 * Split a byte stream into lines. Resolves with counters when the stream
 * ends; rejects with an InputError on a read/decompress error, after every
 * complete line before it has been delivered.
 */
export async function readLines(stream: Readable, onLine: LineHandler, opts: ReadOptions = {}): Promise<ReadStats> {
  const sp = new LineSplitter(opts.maxLineBytes);
  let lastProgress = 0;
  try {
    for await (const chunk of stream) {
      checkFirstChunk(chunk as Buffer, sp.stats);
      sp.push(chunk as Buffer, onLine);
      if (opts.onProgress && sp.stats.bytes - lastProgress >= 16 * CHUNK) {
        lastProgress = sp.stats.bytes;
        opts.onProgress(lastProgress);
      }
    }
  } catch (err) {
    sp.abort();
    throw corrupt(err, sp.stats);
  }
  sp.end(onLine);
  return sp.stats;
}

/** Lines of one input chunk and their stream offsets, in two arrays: no pair allocated per line. */
export interface LineBatch {
  lines: string[];
  offsets: number[];
}

/**
 * The same as readLines, pulled: yields the lines of each input chunk, so
 * several files can be merged. Throws InputError like readLines, after
 * yielding every complete line before the damage.
 */
export async function* lineBatches(stream: Readable, opts: ReadOptions = {}): AsyncGenerator<LineBatch, ReadStats> {
  const sp = new LineSplitter(opts.maxLineBytes);
  let batch: LineBatch = { lines: [], offsets: [] };
  const collect: LineHandler = (l, o) => {
    batch.lines.push(l);
    batch.offsets.push(o);
  };
  try {
    for await (const chunk of stream) {
      checkFirstChunk(chunk as Buffer, sp.stats);
      sp.push(chunk as Buffer, collect);
      if (batch.lines.length > 0) {
        yield batch;
        batch = { lines: [], offsets: [] };
      }
    }
  } catch (err) {
    sp.abort();
    if (batch.lines.length > 0) yield batch;
    throw corrupt(err, sp.stats);
  }
  sp.end(collect);
  if (batch.lines.length > 0) yield batch;
  return sp.stats;
}
