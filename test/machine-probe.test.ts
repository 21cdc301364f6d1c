import { describe, expect, it } from 'vitest';
import { probeMachine, randomCycle } from '../bench/machine-probe.js';

describe('bench machine probe', () => {
  it('chases one cycle through every index, so the reads cannot settle in cache', () => {
    for (const n of [2, 3, 10, 1000, 4099]) {
      const next = randomCycle(n, 7);
      const seen = new Uint8Array(n);
      let p = 0;
      for (let k = 0; k < n; k++) {
        expect(seen[p]).toBe(0);
        seen[p] = 1;
        p = next[p]!;
      }
      expect(p).toBe(0); // back at the start after exactly n steps
      expect(seen.every((x) => x === 1)).toBe(true);
    }
  });

  it('is deterministic per seed and differs between seeds', () => {
    expect(randomCycle(1000, 3)).toEqual(randomCycle(1000, 3));
    expect(randomCycle(1000, 3)).not.toEqual(randomCycle(1000, 4));
  });

  it('reports positive, finite readings', () => {
    const m = probeMachine(1);
    expect(m.randomReadNs).toBeGreaterThan(0);
    expect(Number.isFinite(m.randomReadNs)).toBe(true);
    expect(m.scalarMops).toBeGreaterThan(0);
    expect(Number.isFinite(m.scalarMops)).toBe(true);
  });
});
