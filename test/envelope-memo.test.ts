import { describe, expect, it } from 'vitest';
import { parseEnvelope } from '../src/envelope/envelope.js';
import { YearInferrer } from '../src/envelope/year.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { envelopeContext } from '../src/pipeline/line-parser.js';

const iso = (ts: number | undefined) => (ts === undefined ? undefined : new Date(ts).toISOString());

describe('envelope memo (a stamp repeated from the previous line)', () => {
  it('gives a repeated stamp the same time, in every place a stamp can start', () => {
    const c = envelopeContext({ file: 'f', zone: new ZoneClock('Europe/Paris'), year: 2026 });
    const lines = [
      'Nov 27 10:00:01 mx1 p[1]: a',
      'Nov 27 10:00:01 mx1 p[1]: b',
      '<22>Nov 27 10:00:01 mx1 p[1]: c',
      '<22>Nov 27 10:00:01 mx1 p[1]: d',
      'Nov 27 10:00:01.5 mx1 p[1]: e',
      'Nov 27 10:00:01 mx1 p[1]: f',
      'Nov 27 10:00:02 mx1 p[1]: g',
    ];
    expect(lines.map((l) => iso(parseEnvelope(l, 0, c)?.ts))).toEqual([
      '2026-11-27T09:00:01.000Z',
      '2026-11-27T09:00:01.000Z',
      '2026-11-27T09:00:01.000Z',
      '2026-11-27T09:00:01.000Z',
      '2026-11-27T09:00:01.500Z',
      '2026-11-27T09:00:01.000Z',
      '2026-11-27T09:00:02.000Z',
    ]);
  });

  it('does not reuse a stamp whose prefix is only a prefix of the next one', () => {
    const c = envelopeContext({ file: 'f', year: 2026 });
    expect(parseEnvelope('Nov 27 10:00:01 mx1 p[1]: a', 0, c)?.ts).toBe(Date.UTC(2026, 10, 27, 10, 0, 1));
    // Same first 15 characters, then a fraction: not the memo's stamp.
    expect(parseEnvelope('Nov 27 10:00:01.250 mx1 p[1]: a', 0, c)?.ts).toBe(Date.UTC(2026, 10, 27, 10, 0, 1, 250));
    expect(parseEnvelope('Nov 27 10:00:01x mx1 p[1]: a', 0, c)).toBeUndefined();
  });

  it('keeps the year roll-over when the same stamp comes back after other months', () => {
    const c = envelopeContext({ file: 'f', refTime: Date.UTC(2027, 0, 2) });
    const lines = ['Dec 31 23:59:59 h p: a', 'Jan  1 00:00:00 h p: b', 'Dec 31 23:59:59 h p: late', 'Jan  1 00:00:00 h p: c'];
    expect(lines.map((l) => iso(parseEnvelope(l, 0, c)?.ts))).toEqual([
      '2026-12-31T23:59:59.000Z',
      '2027-01-01T00:00:00.000Z',
      '2026-12-31T23:59:59.000Z',
      '2027-01-01T00:00:00.000Z',
    ]);
  });

  it('does not reuse a stamp across lines whose stamps are too long to keep', () => {
    const c = envelopeContext({ file: 'f', refTime: Date.UTC(2026, 8, 1) });
    const long = '.' + '1'.repeat(40);
    // Aug, then Jan and Jun (moving the year on), then the first stamp again: Aug of the next year.
    const lines = ['Aug  1 10:00:00 h p: a', `Jan  1 10:00:00${long} h p: b`, `Jun  1 10:00:00${long} h p: c`, 'Aug  1 10:00:00 h p: d'];
    expect(lines.map((l) => iso(parseEnvelope(l, 0, c)?.ts))).toEqual([
      '2026-08-01T10:00:00.000Z',
      '2027-01-01T10:00:00.111Z',
      '2027-06-01T10:00:00.111Z',
      '2027-08-01T10:00:00.000Z',
    ]);
  });

  it('forgets a stamp when the year state is restored from a checkpoint', () => {
    const years = new YearInferrer(Date.UTC(2026, 10, 30));
    const c = { format: 'auto' as const, zone: new ZoneClock('UTC'), years, defaultHost: 'h', file: 'f' };
    expect(iso(parseEnvelope('Nov 27 10:00:01 h p: a', 0, c)?.ts)).toBe('2026-11-27T10:00:01.000Z');
    years.restoreState({ year: 2024, lastMonth: 10 });
    expect(iso(parseEnvelope('Nov 27 10:00:01 h p: b', 0, c)?.ts)).toBe('2024-11-27T10:00:01.000Z');
  });
});
