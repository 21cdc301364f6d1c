/**
 * Both Kafka stages keep a partition's state with the offset it reflects,
 * and a fetch may begin past it: the group's committed offset is ahead of the
 * checkpoint the state was restored from, or kafkajs moved on after a
 * failure. The partition then goes back to its state's offset. kafkajs
 * applies a seek from the next fetch on, so batches fetched before that are
 * dropped; when a few of them still begin past the state, the seek evidently
 * landed later (retention removed those records) and the stage goes on from
 * where the fetch began.
 */

export interface SeekState {
  /** Next offset the state expects. */
  next: bigint;
  /** The seek asked for, while waiting for it to take effect. */
  seekTo: bigint | undefined;
  /** Batches dropped since that seek. */
  staleBatches: number;
}

/**
 * - `in-step`: the batch begins within the state: process it.
 * - `seeking`: drop the batch (a seek was just asked for, or is on its way).
 * - `gap`: the records between the state and the batch are gone: process it, from where it begins.
 */
export type SeekOutcome = 'in-step' | 'seeking' | 'gap';

/** Batches dropped after a seek before the stage concludes the records are gone. */
export const STALE_BATCHES = 3;

/** What to do with a batch of a partition whose first record (transaction markers included) is at `fetchedFrom`. */
export function seekBack(ps: SeekState, fetchedFrom: bigint, seek: (offset: bigint) => void): SeekOutcome {
  if (fetchedFrom <= ps.next) {
    ps.seekTo = undefined;
    return 'in-step';
  }
  if (ps.seekTo !== ps.next) {
    ps.seekTo = ps.next;
    ps.staleBatches = 0;
    seek(ps.next);
    return 'seeking';
  }
  if (++ps.staleBatches <= STALE_BATCHES) return 'seeking';
  ps.seekTo = undefined;
  return 'gap';
}
