/**
 * mergeInputs: records of several files in time order (ties: the earlier
 * file first), with each line's own byte offset, across read chunks; a file
 * that breaks midway gives its lines before the damage and is reported.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../src/core/record.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { LineParser } from '../src/pipeline/line-parser.js';
import { mergeInputs } from '../src/pipeline/merge.js';

const dir = mkdtempSync(join(tmpdir(), 'fg-merge-'));
const line = (s: number, tag: string) => `Nov 27 10:00:${String(s).padStart(2, '0')} mx1 prog[1]: ${tag}`;

async function merge(paths: string[]) {
  const got: LogRecord[] = [];
  const errors: string[] = [];
  const lp = new LineParser();
  const r = await mergeInputs(paths.map((path) => ({ path })), lp, (rec) => got.push(rec), {
    zone: new ZoneClock('UTC'),
    year: 2026,
    onInputError: (f, e) => errors.push(`${f}: ${e.code}`),
  });
  return { got, errors, r, lp };
}

describe('mergeInputs', () => {
  it('interleaves files by time, earlier file first on ties, with byte offsets', async () => {
    const a = join(dir, 'a.log');
    const b = join(dir, 'b.log');
    writeFileSync(a, [line(1, 'a1'), 'garbage', line(3, 'a3'), line(5, 'a5')].join('\n') + '\n');
    writeFileSync(b, [line(2, 'b2'), line(3, 'b3'), line(6, 'b6')].join('\n'));
    const { got, r, lp } = await merge([a, b]);
    expect(got.map((x) => x.message)).toEqual(['a1', 'b2', 'a3', 'b3', 'a5', 'b6']);
    const aLen = line(1, 'a1').length + 1;
    expect(got.map((x) => [x.file.slice(-5), x.offset])).toEqual([
      ['a.log', 0],
      ['b.log', 0],
      ['a.log', aLen + 'garbage\n'.length],
      ['b.log', aLen],
      ['a.log', 2 * aLen + 'garbage\n'.length],
      ['b.log', 2 * aLen],
    ]);
    expect(lp.stats).toMatchObject({ lines: 7, malformed: 1 });
    // bytes: where each file's last record ends
    expect(r).toEqual({ inputErrors: 0, bytes: 3 * aLen + 'garbage\n'.length - 1 + (3 * aLen - 1) });
  });

  it('reads a file of many chunks to its end', async () => {
    const big = join(dir, 'big.log');
    const n = 30_000; // ~1.3 MB: more than one read chunk
    writeFileSync(big, Array.from({ length: n }, (_, i) => line(i % 60, `m${i}`)).join('\n') + '\n');
    const { got } = await merge([big]);
    expect(got).toHaveLength(n);
    expect(got[n - 1]!.message).toBe(`m${n - 1}`);
  });

  it('keeps the lines before a gzip file breaks, reports it, and goes on with the others', async () => {
    const gz = gzipSync(Buffer.from([line(1, 'z1'), line(4, 'z4')].join('\n') + '\n'));
    const broken = join(dir, 'broken.log.gz');
    writeFileSync(broken, gz.subarray(0, gz.length - 12));
    const ok = join(dir, 'ok.log');
    writeFileSync(ok, [line(2, 'o2'), line(3, 'o3')].join('\n') + '\n');
    const { got, errors, r } = await merge([broken, join(dir, 'missing.log'), ok]);
    // The gzip stream fails while the other inputs are being opened: its error must reach onInputError, not the process.
    expect(got.map((x) => x.message)).toEqual(['z1', 'o2', 'o3']);
    expect(errors.map((e) => e.replace(dir, '')).sort()).toEqual(['/broken.log.gz: FG_INPUT_CORRUPT', '/missing.log: FG_INPUT_UNREADABLE']);
    expect(r.inputErrors).toBe(2);
  });
});
