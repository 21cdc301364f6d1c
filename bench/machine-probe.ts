/**
 * Two quick readings of the machine the bench ran on, printed next to its
 * numbers so that runs on different days can be compared. The same build
 * ran the pipeline at 416 k lines/s on one day's machine and at about 200 k
 * on the next one's (same core count, same Node): without a reading of the
 * machine, such a drop looks like a regression.
 *
 * - `randomReadNs`: time per dependent random read over a 64 MiB array (a
 *   pointer chase through one random cycle), what the detectors' window
 *   tables pay for a cache and TLB miss;
 * - `scalarMops`: millions of steps per second of a fixed integer loop (the
 *   FNV-1a / multiply work the parsers and hashing do), the core's speed
 *   with everything in cache.
 *
 * Each is the best of a few rounds, so a moment of noise does not set it.
 */

export interface MachineProbe {
  randomReadNs: number;
  scalarMops: number;
  note: string;
}

/**
 * A random cyclic permutation of 0..n-1 (Sattolo's algorithm): following
 * next[i] from any start visits every index once before it returns, so a
 * chase cannot settle into a short cycle that fits in cache.
 */
export function randomCycle(n: number, seed = 1): Int32Array {
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) next[i] = i;
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    // xorshift32: deterministic, so every run chases the same cycle.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % i; // j < i: Sattolo, not Fisher–Yates (which allows j = i and makes several cycles)
    const t = next[i]!;
    next[i] = next[j]!;
    next[j] = t;
  }
  return next;
}

function chaseNs(next: Int32Array, steps: number): number {
  let p = 0;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < steps; k++) p = next[p]!;
  const ns = Number(process.hrtime.bigint() - t0);
  if (p < 0) throw new Error('unreachable'); // keeps the loop's result alive
  return ns / steps;
}

function scalarMops(steps: number): number {
  let h = 0x811c9dc5;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) h = Math.imul(h ^ (i & 0xff), 0x01000193);
  const ns = Number(process.hrtime.bigint() - t0);
  if (h === 0.5) throw new Error('unreachable');
  return steps / ns * 1000;
}

export function probeMachine(rounds = 3): MachineProbe {
  const next = randomCycle(16 << 20); // 16 Mi int32 = 64 MiB
  chaseNs(next, 1 << 20); // touch the pages and warm the JIT before timing
  scalarMops(1 << 20);
  let read = Infinity;
  let mops = 0;
  for (let r = 0; r < rounds; r++) {
    read = Math.min(read, chaseNs(next, 4 << 20));
    mops = Math.max(mops, scalarMops(50_000_000));
  }
  return {
    randomReadNs: Number(read.toFixed(1)),
    scalarMops: Math.round(mops),
    note: 'best of 3: ns per dependent random read over 64 MiB; millions of steps/s of an FNV-1a loop. Compare bench numbers across days only together with these.',
  };
}
