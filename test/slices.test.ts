import { describe, expect, it } from 'vitest';
import { Slices } from '../src/core/slices.js';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('Slices', () => {
  it('gives the event loop a turn once a slice is used up, and not before', async () => {
    const slices = new Slices(50);
    let turns = 0;
    const tick = () => {
      turns++;
      timer = setImmediate(tick);
    };
    let timer = setImmediate(tick);
    try {
      await slices.maybeYield(); // fresh slice: goes on without a turn
      expect(turns).toBe(0);
      expect(slices.yields).toBe(0);
      busy(60);
      await slices.maybeYield(); // used up: other callbacks run
      expect(turns).toBeGreaterThan(0);
      expect(slices.yields).toBe(1);
      const after = turns;
      await slices.maybeYield(); // a new slice began with the turn
      expect(turns).toBe(after);
      expect(slices.yields).toBe(1);
    } finally {
      clearImmediate(timer);
    }
  });
});
