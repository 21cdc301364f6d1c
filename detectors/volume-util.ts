/**
 * Small helpers shared by the volume detectors (send-flood, recipient-fanout,
 * bounce-ratio): the learned-threshold formula, severity/score from how far
 * above a threshold a count is, and a fixed-size ring of evidence samples kept
 * in a Recent structure (plain arrays, mutated in place: no allocation per
 * message once an account's ring exists, and snapshot-able as JSON).
 */
import type { Severity } from '../src/detect/finding.js';
import type { BaselineView, Recent } from '../src/detect/windows.js';

// --- learned thresholds ------------------------------------------------------------------

export interface LearnedThresholdOptions {
  /** Standard deviations above the mean. */
  k: number;
  /** Never flag at or below this count, whatever the history. */
  minVolume: number;
  /** Never flag at or below `minRatio × mean` (tolerance for organic growth of steady senders). */
  minRatio: number;
}

/**
 * The count per period above which a baseline calls a period abnormal:
 * max(minVolume, mean + k·σ', minRatio·mean) where σ' = max(σ, √mean).
 * The √mean floor is Poisson noise: a perfectly steady sender learns σ≈0,
 * and without the floor its first slightly busier hour would be "4σ above".
 */
export function learnedThreshold(b: BaselineView, o: LearnedThresholdOptions): number {
  const sd = Math.max(b.std, Math.sqrt(Math.max(0, b.mean)));
  return Math.max(o.minVolume, b.mean + o.k * sd, o.minRatio * b.mean);
}

/**
 * Winsorising a mature baseline: after `n` units were added to the current
 * period (view `b`, read after the add), how many to take back so that the
 * period never teaches the baseline more than `threshold` (an attack hour
 * must not make the next attack look normal). Immature baselines learn
 * everything: that is how a newsletter's 500/h becomes its normal.
 */
export function unlearn(n: number, b: BaselineView, threshold: number): number {
  const over = Math.ceil(b.current - threshold);
  return over <= 0 ? 0 : over < n ? over : n;
}

// --- severity and score --------------------------------------------------------------------

/**
 * Severity and score from ratio = observed / threshold (> 1 when flagged).
 * Score 30 just above the threshold, +25 per doubling, capped at 100
 * (×2 → 55, ×4 → 80, ×8 → 100).
 */
export function gradeRatio(ratio: number): { severity: Severity; score: number } {
  const r = ratio > 1 ? ratio : 1;
  const score = Math.min(100, Math.round(30 + 25 * Math.log2(r)));
  const severity: Severity = r < 1.5 ? 'low' : r < 3 ? 'medium' : r < 10 ? 'high' : 'critical';
  return { severity, score };
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export function fmtMs(ms: number): string {
  if (ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}

// --- evidence ring --------------------------------------------------------------------------

/**
 * A ring of the last N samples for one key, as one flat array:
 * [next, count, width, then N slots of `width` values]. Callers write a slot
 * in place (no allocation per message once the ring exists):
 *
 *   const r = ringFor(rec, key, now, size, width);
 *   const i = ringNext(r);
 *   r[i] = file; r[i + 1] = offset; ...
 *   rec.set(key, now, r);
 */
export type SampleRing = (string | number)[];
const HEAD = 3;

/** The ring of key (created empty on first use or when its shape changed). */
export function ringFor(rec: Recent<SampleRing>, key: string, now: number, size: number, width: number): SampleRing {
  const r = rec.get(key, now);
  if (r !== undefined && r[2] === width && r.length === HEAD + size * width) return r;
  const fresh = new Array<string | number>(HEAD + size * width).fill(0);
  fresh[2] = width;
  return fresh;
}

/** Advance the ring and return the index of the slot to write. */
export function ringNext(r: SampleRing): number {
  const width = r[2] as number;
  const size = (r.length - HEAD) / width;
  const next = r[0] as number;
  r[0] = (next + 1) % size;
  if ((r[1] as number) < size) r[1] = (r[1] as number) + 1;
  return HEAD + next * width;
}

/** Indexes of the ring's filled slots, oldest first (allocates: call when emitting). */
export function ringSlots(r: SampleRing | undefined): number[] {
  if (r === undefined) return [];
  const width = r[2] as number;
  const size = (r.length - HEAD) / width;
  const count = r[1] as number;
  const next = r[0] as number;
  const out: number[] = [];
  for (let j = 0; j < count; j++) out.push(HEAD + ((next - count + j + size) % size) * width);
  return out;
}
