import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InputError, openInput, readLines } from '../src/input/line-reader.js';
import { isTarHeader } from '../src/input/not-a-log.js';

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

  it('refuses other compressions and archives by their signatures, naming them and what to run instead', async () => {
    const signatures: [string, number[], RegExp][] = [
      ['bz2', [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59], /bzip2-compressed.*bzip2 -dc .*\.bz2 \| floodgate replay -/],
      ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], /xz-compressed.*xz -dc .*\.xz \|/],
      ['zst', [0x28, 0xb5, 0x2f, 0xfd], /zstd-compressed.*zstd -dc /],
      ['zip', [0x50, 0x4b, 0x03, 0x04], /a zip archive.*unzip -p /],
      ['7z', [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], /a 7-Zip archive/],
    ];
    for (const [ext, magic, message] of signatures) {
      const p = join(dir, `mail.log.1.${ext}`);
      writeFileSync(p, Buffer.concat([Buffer.from(magic), Buffer.alloc(100, 0x41)]));
      await expect(openInput(p), ext).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringMatching(message) });
    }
  });

  /** A tar archive of one file, as tar writes it: a 512-byte ustar header (checksum included), the data, two zero blocks. */
  function tarOf(name: string, body: string): Buffer {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'latin1');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(Buffer.byteLength(body).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write('14712345670\0', 136, 'latin1');
    h.write('0', 156, 'latin1');
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const data = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
    data.write(body, 'latin1');
    return Buffer.concat([h, data, Buffer.alloc(1024)]);
  }

  it('refuses a tar archive, plain or inside gzip, before reading a line of it', async () => {
    const tar = tarOf('logs/mail.log', 'Nov 27 10:00:00 mx1 postfix/qmgr[1]: 4B1C2D3E4F: removed\n');
    expect(isTarHeader(tar)).toBe(true);
    const plain = join(dir, 'logs.tar');
    writeFileSync(plain, tar);
    await expect(openInput(plain)).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('a tar archive') });
    const gz = join(dir, 'logs.tar.gz');
    writeFileSync(gz, gzipSync(tar));
    const got: string[] = [];
    const err = await readLines(await openInput(gz), (l) => got.push(l)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('extract it') });
    expect(got).toEqual([]);
  });

  it('reads a log that merely has `ustar` at byte 257 (no tar header: its checksum does not add up)', async () => {
    const line = (i: number) => `Nov 27 10:00:0${i} mx1 postfix/qmgr[102]: 4B1C2D3E4${i}: removed`;
    let text = '';
    for (let i = 0; i < 9; i++) text += line(i) + '\n';
    const at = 257;
    const buf = Buffer.from(text, 'latin1');
    buf.write('ustar', at, 'latin1');
    expect(isTarHeader(buf)).toBe(false);
    const p = join(dir, 'ustar.log');
    writeFileSync(p, buf);
    const { lines } = await collect(await openInput(p));
    expect(lines).toHaveLength(9);
    // and a byte of a valid header changed breaks its checksum
    const tar = tarOf('x.log', 'x\n');
    tar[0] = tar[0]! + 1;
    expect(isTarHeader(tar)).toBe(false);
  });

  // `floodgate replay <(xz -dc mail.log.1.xz)` gives a pipe (/dev/fd/63): reading its head at offset 0 failed with ESPIPE
  it('reads a named pipe once from its start, plain or gzip, and refuses an archive coming through one', async () => {
    const cases: [string, Buffer, string[] | RegExp][] = [
      ['plain', Buffer.from('one\ntwo\n'), ['one', 'two']],
      ['gzip', gzipSync('three\nfour\n'), ['three', 'four']],
      ['xz', Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(64)]), /xz-compressed/],
    ];
    for (const [name, bytes, want] of cases) {
      const fifo = join(dir, `pipe-${name}`);
      execFileSync('mkfifo', [fifo]);
      // the writer opens its end when the reader does; it writes everything, then closes
      const writer = writeFile(fifo, bytes);
      const result = openInput(fifo).then((s) => collect(s));
      if (want instanceof RegExp) {
        await expect(result, name).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringMatching(want) });
        await writer.catch(() => undefined); // the reader went away: EPIPE
      } else {
        expect((await result).lines.map(([l]) => l), name).toEqual(want);
        await writer;
      }
    }
  });

  it('names the problem when a file cannot be read', async () => {
    await expect(openInput(join(dir, 'missing.log'))).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('no such file') });
    await expect(openInput(dir)).rejects.toMatchObject({ code: 'FG_INPUT_UNREADABLE', message: expect.stringContaining('is a directory') });
  });
});
