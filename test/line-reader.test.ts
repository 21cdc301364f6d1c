import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InputError, openInput, readLines } from '../src/input/line-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'fg-reader-'));

async function collect(stream: Readable, maxLineBytes?: number) {
  const lines: [string, number][] = [];
  const stats = await readLines(stream, (l, o) => lines.push([l, o]), { maxLineBytes });
  return { lines, stats };
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

describe('line reader', () => {
  it('gives byte offsets of every line, across chunk boundaries and multi-byte UTF-8', () => {
    const text = 'héllo\r\nsecond line\nthird — ünïcode\nlast-no-newline';
    const buf = Buffer.from(text);
    return Promise.all(
      [1, 2, 3, 7, 1 << 20].map(async (size) => {
        const { lines } = await collect(chunked(buf, size));
        expect(lines.map(([l]) => l)).toEqual(['héllo', 'second line', 'third — ünïcode', 'last-no-newline']);
        for (const [l, off] of lines) expect(buf.subarray(off, off + Buffer.byteLength(l)).toString()).toBe(l);
      }),
    );
  });

  it('skips and counts oversized lines without losing their neighbours', async () => {
    const big = 'x'.repeat(5000);
    for (const size of [100, 4096, 1 << 20]) {
      const buf = Buffer.from(`before\n${big}\nafter\n${big}`);
      const { lines, stats } = await collect(chunked(buf, size), 1000);
      expect(lines.map(([l]) => l)).toEqual(['before', 'after']);
      expect(stats.oversized).toBe(2);
      expect(lines[1]![1]).toBe(buf.indexOf('after'));
    }
  });

  it('decodes invalid UTF-8 and NUL bytes as data', async () => {
    const buf = Buffer.concat([Buffer.from('a'), Buffer.from([0xff, 0xfe, 0x00]), Buffer.from('b\nok\n')]);
    const { lines } = await collect(chunked(buf, 2));
    expect(lines.map(([l]) => l)).toEqual(['a\ufffd\ufffd\u0000b', 'ok']);
  });

  it('reads gzip files transparently (by content, not name)', async () => {
    const p = join(dir, 'rotated.1');
    writeFileSync(p, gzipSync('one\ntwo\n'));
    const { lines } = await collect(await openInput(p));
    expect(lines).toEqual([
      ['one', 0],
      ['two', 4],
    ]);
  });

  it('delivers every complete line of a truncated gzip, then reports it', async () => {
    const body = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'y'.repeat(40)}`).join('\n') + '\n';
    const gz = gzipSync(body);
    const p = join(dir, 'truncated.gz');
    writeFileSync(p, gz.subarray(0, Math.floor(gz.length * 0.6)));
    const got: string[] = [];
    const err = await readLines(await openInput(p), (l) => got.push(l)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).code).toBe('FG_INPUT_CORRUPT');
    expect(got.length).toBeGreaterThan(100);
    // every delivered line is whole and in order
    got.forEach((l, i) => expect(l).toBe(`line ${i} ${'y'.repeat(40)}`));
  });

  it('names the problem when a file cannot be read', async () => {
    await expect(openInput(join(dir, 'missing.log'))).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('no such file') });
    await expect(openInput(dir)).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('is a directory') });
  });
});
