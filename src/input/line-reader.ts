/**
 * Streams lines from a file, a gzip file (detected by its magic bytes, so a
 * rotated `mail.log.2.gz` needs no flag) or stdin, with the byte offset of
 * every line in the decompressed stream. Memory stays bounded whatever the
 * file size: one chunk plus at most one partial line of `maxLineBytes`.
 *
 * Bad bytes never stop the stream: invalid UTF-8 decodes to U+FFFD, a line
 * over the limit is counted and skipped up to its newline, a trailing line
 * without newline (a truncated file) is still delivered, and a corrupt gzip
 * delivers every complete line before the damage and then reports it.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FloodgateError } from '../core/errors.js';

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

/** Open `path` (or stdin for `-`) as a byte stream, gunzipping when the content is gzip. */
export async function openInput(path: string): Promise<Readable> {
  if (path === '-') return sniffGzip(process.stdin);
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${path}: ${why}`, { cause: err });
  }
  const head = Buffer.alloc(2);
  let isGzip = false;
  try {
    const { bytesRead } = await fh.read(head, 0, 2, 0);
    isGzip = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } catch (err) {
    await fh.close();
    const e = err as NodeJS.ErrnoException;
    throw new InputError('FG_INPUT_UNREADABLE', `cannot read ${path}: ${e.code === 'EISDIR' ? 'is a directory' : e.message}`, { cause: err });
  }
  const raw = createReadStream('', { fd: fh, highWaterMark: CHUNK, autoClose: true });
  return isGzip ? raw.pipe(createGunzip({ chunkSize: CHUNK })) : raw;
}

/** Stdin cannot be peeked without consuming: check the first chunk and splice it back. */
async function sniffGzip(stream: Readable): Promise<Readable> {
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
      reject(e);
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
  const gz = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  pass.write(first);
  stream.pipe(pass);
  return gz ? pass.pipe(createGunzip({ chunkSize: CHUNK })) : pass;
}

/**
 * Split a byte stream into lines. Resolves with counters when the stream
 * ends; rejects with an InputError on a read/decompress error, after every
 * complete line before it has been delivered.
 */
export async function readLines(stream: Readable, onLine: LineHandler, opts: ReadOptions = {}): Promise<ReadStats> {
  const max = opts.maxLineBytes ?? 64 * 1024;
  const stats: ReadStats = { bytes: 0, oversized: 0, droppedPartial: 0 };
  let carry: Buffer | null = null; // partial line from the previous chunk
  let carryOffset = 0; // stream offset of carry's first byte
  let skipping = false; // inside an oversized line, dropping bytes until '\n'
  let pos = 0; // stream offset of the current chunk's first byte
  let lastProgress = 0;

  const emit = (buf: Buffer, start: number, end: number, offset: number) => {
    let e = end;
    if (e > start && buf[e - 1] === 13) e--; // CRLF
    if (e - start > max) {
      stats.oversized++;
      return;
    }
    onLine(buf.toString('utf8', start, e), offset);
  };

  try {
    for await (const chunkAny of stream) {
      const chunk = chunkAny as Buffer;
      let start = 0;
      if (skipping) {
        const nl = chunk.indexOf(10);
        if (nl < 0) {
          pos += chunk.length;
          continue;
        }
        skipping = false;
        start = nl + 1;
      } else if (carry !== null) {
        const nl = chunk.indexOf(10);
        if (nl < 0) {
          if (carry.length + chunk.length > max + 1) {
            stats.oversized++;
            carry = null;
            skipping = true;
          } else {
            carry = Buffer.concat([carry, chunk]);
          }
          pos += chunk.length;
          continue;
        }
        const line = Buffer.concat([carry, chunk.subarray(0, nl)]);
        emit(line, 0, line.length, carryOffset);
        carry = null;
        start = nl + 1;
      }
      let nl = chunk.indexOf(10, start);
      while (nl >= 0) {
        emit(chunk, start, nl, pos + start);
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length) {
        if (chunk.length - start > max + 1) {
          stats.oversized++;
          skipping = true;
        } else {
          carry = Buffer.from(chunk.subarray(start)); // copy: the stream may reuse its buffer
          carryOffset = pos + start;
        }
      }
      pos += chunk.length;
      stats.bytes = pos;
      if (opts.onProgress && pos - lastProgress >= 16 * CHUNK) {
        lastProgress = pos;
        opts.onProgress(pos);
      }
    }
  } catch (err) {
    if (carry !== null) stats.droppedPartial = 1;
    stats.bytes = pos;
    const e = err as NodeJS.ErrnoException;
    const what = e.code === 'Z_BUF_ERROR' || e.code === 'Z_DATA_ERROR' ? 'corrupt or truncated gzip data' : e.message;
    const ie = new InputError('FG_INPUT_CORRUPT', `${what} after ${pos} bytes`, { cause: err });
    ie.stats = stats;
    throw ie;
  }
  if (carry !== null) emit(carry, 0, carry.length, carryOffset);
  stats.bytes = pos;
  return stats;
}
