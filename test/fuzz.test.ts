/**
 * Property tests: whatever bytes surround them, well-formed lines parse to
 * exactly the events they give on their own, and nothing throws. The good
 * lines are every parser's golden-fixture lines.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Event } from '../src/core/events.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { readLines } from '../src/input/line-reader.js';
import { LineParser, envelopeContext } from '../src/pipeline/line-parser.js';

const parsersDir = join(import.meta.dirname, '..', 'parsers');
const good: string[] = [];
for (const p of readdirSync(parsersDir)) {
  const fx = join(parsersDir, p, 'fixtures');
  if (!existsSync(fx)) continue;
  for (const f of readdirSync(fx).filter((n) => n.endsWith('.log'))) {
    for (const l of readFileSync(join(fx, f), 'utf8').split('\n')) if (l.trim()) good.push(l);
  }
}

function ctx() {
  return envelopeContext({ file: 'fuzz', zone: new ZoneClock('UTC'), year: 2026, refTime: Date.UTC(2026, 11, 31) });
}

/** Events of a line parsed alone, without the source (which depends on position). */
function alone(line: string): unknown[] {
  const out: Event[] = [];
  new LineParser().parseLine(line, 0, ctx(), out);
  return out.map(({ src: _src, ...rest }) => rest);
}

async function parseStream(buf: Buffer, chunk: number, maxLineBytes: number) {
  const lp = new LineParser();
  const c = ctx();
  const byOffset = new Map<number, unknown[]>();
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  const rs = await readLines(
    Readable.from(parts),
    (line, offset) => {
      const out: Event[] = [];
      lp.parseLine(line, offset, c, out);
      byOffset.set(offset, out.map(({ src: _src, ...rest }) => rest));
    },
    { maxLineBytes },
  );
  return { byOffset, stats: lp.stats, read: rs, parserErrors: lp.parserErrors };
}

// Garbage never contains '\n' (it is one bad "line"), but may hold NUL, CR, invalid UTF-8.
const garbage = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((a) => Buffer.from(a.filter((b) => b !== 10)));

describe('parser robustness', () => {
  it('has a pool of good lines to test with', () => {
    expect(good.length).toBeGreaterThan(50);
  });

  it('loses no well-formed line next to random bytes, at any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...good), garbage), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 4096 }),
        async (pairs, chunk) => {
          const pieces: Buffer[] = [];
          const offsets: [number, string][] = [];
          let pos = 0;
          for (const [line, junk] of pairs) {
            const g = Buffer.from(line + '\n');
            offsets.push([pos, line]);
            pieces.push(g);
            pos += g.length;
            const j = Buffer.concat([junk, Buffer.from('\n')]);
            pieces.push(j);
            pos += j.length;
          }
          const { byOffset, stats, parserErrors } = await parseStream(Buffer.concat(pieces), chunk, 65536);
          expect(stats.lines).toBe(pairs.length * 2);
          expect(parserErrors).toBe(0);
          for (const [off, line] of offsets) expect(byOffset.get(off)).toEqual(alone(line));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('survives a 1 MB line, NUL-only lines and invalid UTF-8 between good lines', async () => {
    const a = good[0]!;
    const b = good[good.length - 1]!;
    const huge = Buffer.alloc(1 << 20, 0x41);
    const buf = Buffer.concat([
      Buffer.from(a + '\n'),
      huge,
      Buffer.from('\n'),
      Buffer.alloc(100, 0),
      Buffer.from('\n'),
      Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0x0a]),
      Buffer.from(b + '\n'),
    ]);
    const { byOffset, stats, read } = await parseStream(buf, 65536, 65536);
    expect(read.oversized).toBe(1);
    expect(byOffset.get(0)).toEqual(alone(a));
    expect(byOffset.get(buf.length - Buffer.byteLength(b) - 1)).toEqual(alone(b));
    expect(stats.lines).toBe(4); // a, NULs, invalid UTF-8, b (the 1 MB line is skipped)
    expect(stats.malformed).toBe(2);
  });

  it('never throws on arbitrary text given to the envelope and every parser', () => {
    const lp = new LineParser();
    const c = ctx();
    const programs = ['postfix/smtpd', 'postfix/submission/smtpd', 'postfix/qmgr', 'postfix/smtp', 'postfix/cleanup', 'postfix/postscreen', 'postfix/dnsblog', 'postfix/bounce', 'postfix/anvil', 'postfix/postsuper', 'postfix/pickup', 'amavis', 'policyd-spf', 'postfix/policy-spf', 'saslauthd', 'dovecot', 'auth-worker(1)', 'imap-login'];
    fc.assert(
      fc.property(fc.constantFrom(...programs), fc.string({ maxLength: 400 }), fc.constantFrom('', '3F2A1C0B4E: ', 'NOQUEUE: reject: ', 'warning: ', '(12345-01) '), (prog, body, prefix) => {
        const out: Event[] = [];
        expect(() => lp.parseLine(`Nov 27 10:00:00 h ${prog}[1]: ${prefix}${body}`, 0, c, out)).not.toThrow();
        expect(() => lp.parseLine(`2026-11-27 10:00:00,000 INFO  [t] [${body}] ${body} - ${prefix}${body}`, 0, c, out)).not.toThrow();
      }),
      { numRuns: 3000 },
    );
    expect(lp.parserErrors).toBe(0);
  });
});
