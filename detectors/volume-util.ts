/**
 * Small helpers shared by the volume detectors (send-flood, recipient-fanout,
 * bounce-ratio): the learned-threshold formula, severity/score from how far
 * above a threshold a count is. (Evidence samples live in the store's
 * Samples structure.)
 */
import type { Severity } from '../src/detect/finding.js';
import type { BaselineView } from '../src/detect/windows.js';

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
