/**
 * LineSplitter decodes an all-ASCII chunk as latin1 (faster) and any other
 * chunk as UTF-8: whatever the bytes and however they are cut into chunks,
 * the lines and offsets must be those of a plain UTF-8 split.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../src/input/line-reader.js';

/** The reference: split the whole buffer at '\n', drop a CR ending a line (the last one too), decode each line as UTF-8. */
function reference(buf: Buffer): [string, number][] {
  const out: [string, number][] = [];
  let start = 0;
  for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
    const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
    out.push([buf.toString('utf8', start, end), start]);
    start = nl + 1;
  }
  if (start < buf.length) out.push([buf.toString('utf8', start, buf[buf.length - 1] === 13 ? buf.length - 1 : buf.length), start]);
  return out;
}

function split(buf: Buffer, cuts: number[]): [string, number][] {
  const sp = new LineSplitter();
  const out: [string, number][] = [];
  const on = (l: string, o: number) => void out.push([l, o]);
  let prev = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < buf.length).sort((a, b) => a - b), buf.length]) {
    if (c > prev) sp.push(buf.subarray(prev, c), on);
    prev = c;
  }
  sp.end(on);
  return out;
}

describe('LineSplitter decoding', () => {
  it('decodes an ASCII chunk next to a chunk with UTF-8 and invalid bytes like UTF-8 would', () => {
    const buf = Buffer.concat([Buffer.from('plain ascii line\nsecond\n'), Buffer.from('héllo wörld\n'), Buffer.from([0x61, 0xff, 0x62, 0x0a, 0xc3]), Buffer.from('\nend')]);
    expect(split(buf, [24, 37, 41])).toEqual(reference(buf));
    expect(split(buf, [24, 37, 41]).map(([l]) => l)).toContain('a\ufffdb');
  });

  it('matches a plain UTF-8 split for any bytes cut anywhere', () => {
    const byte = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.constantFrom(10, 13, 0xc3, 0xa9, 0xe2, 0x80, 0x94, 0xff));
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 300 }), fc.array(fc.nat(300), { maxLength: 6 }), (bytes, cuts) => {
        const buf = Buffer.from(bytes);
        expect(split(buf, cuts)).toEqual(reference(buf));
      }),
      { numRuns: 500 },
    );
  });
});
