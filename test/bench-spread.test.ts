import { describe, expect, it } from 'vitest';
import { withSpread } from '../bench/spread.js';

describe('bench: the runs of a phase', () => {
  it('reports the best run, every run in order and their median', () => {
    const r = withSpread([
      { phase: 'pipeline', linesPerSec: 200, cpuMicrosPerLine: 5, peakRssMb: 10 },
      { phase: 'pipeline', linesPerSec: 300, cpuMicrosPerLine: 3.5, peakRssMb: 12 },
      { phase: 'pipeline', linesPerSec: 250, cpuMicrosPerLine: 4, peakRssMb: 11 },
    ]);
    expect(r.linesPerSec).toBe(300);
    expect(r.peakRssMb).toBe(12);
    expect(r.runs).toEqual({ linesPerSec: [200, 300, 250], medianLinesPerSec: 250, cpuMicrosPerLine: [5, 3.5, 4] });
  });

  it('takes the mean of the middle two for an even count, and leaves out CPU when a run lacks it', () => {
    const r = withSpread([
      { phase: 'p', linesPerSec: 100 },
      { phase: 'p', linesPerSec: 401, cpuMicrosPerLine: 2 },
      { phase: 'p', linesPerSec: 200 },
      { phase: 'p', linesPerSec: 300 },
    ]);
    expect(r.linesPerSec).toBe(401);
    expect(r.runs).toEqual({ linesPerSec: [100, 401, 200, 300], medianLinesPerSec: 250 });
  });

  it('adds nothing to a single run', () => {
    const one = { phase: 'state-memory', linesPerSec: 7 };
    expect(withSpread([one])).toEqual(one);
  });
});
