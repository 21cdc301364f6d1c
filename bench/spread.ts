/** How bench/main.ts reports the runs of one phase. */

export interface RunResult {
  phase: string;
  linesPerSec: number;
  [k: string]: unknown;
}

/**
 * The best run of a phase, with every run's lines/s (and CPU µs per line
 * where the phase gives it) and their median: on a
 * shared VM one run can be 20% off the next with the same code, so the
 * spread says how far a difference between two benches can be trusted.
 */
export function withSpread(all: readonly RunResult[]): RunResult {
  let best = all[0]!;
  for (const r of all) if (r.linesPerSec > best.linesPerSec) best = r;
  if (all.length < 2) return best;
  const rates = all.map((r) => r.linesPerSec);
  const sorted = [...rates].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
  const cpu = all.map((r) => r.cpuMicrosPerLine);
  return { ...best, runs: { linesPerSec: rates, medianLinesPerSec: median, ...(cpu.every((c) => typeof c === 'number') ? { cpuMicrosPerLine: cpu } : {}) } };
}
