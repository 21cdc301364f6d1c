/**
 * Deterministic identity of a decision: re-deriving the same decision after a
 * restart (or in another worker) yields the same key, which is how the
 * standalone store and ClickHouse's ReplacingMergeTree recognise a replay.
 */
import { createHash } from 'node:crypto';
import type { Decision } from './policy.js';

export function decisionKey(d: Decision): string {
  return createHash('sha1')
    .update(JSON.stringify([d.entity.kind, d.entity.id, d.action, d.ts, d.score, [...d.detectors].sort()]))
    .digest('hex');
}
