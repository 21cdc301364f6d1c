/**
 * A partition that cannot be opened for now (its checkpoint lives in Redis,
 * and Redis is away) is paused and resumed after a backoff, while the
 * consumer's other partitions go on. Throwing from eachBatch instead made
 * kafkajs retry the batch, then drop and restart the whole consumer: every
 * partition stopped, the group rebalanced, and each restart fetched all
 * partitions again from their committed offsets, once per outage and per
 * partition that needed opening.
 */
import type { Consumer } from 'kafkajs';
import type { Logger } from './log.js';
import { FloodgateError } from '../core/errors.js';

export interface PartitionHoldOptions {
  /** First delay before the partition is fetched again; doubles with each failure in a row. */
  minMs: number;
  maxMs: number;
}

export const DEFAULT_PARTITION_HOLD: PartitionHoldOptions = { minMs: 500, maxMs: 15_000 };

/** The failures worth waiting out; anything else (a corrupt checkpoint, a bug) still fails the batch loudly. */
export function isTransientOpenFailure(e: unknown): boolean {
  return e instanceof FloodgateError && e.code === 'FG_REDIS_UNAVAILABLE';
}

export class PartitionHold {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  /** Times a partition was paused because it could not be opened. */
  holds = 0;

  constructor(
    private readonly consumer: Consumer,
    private readonly log: Logger,
    private readonly stage: string,
    private readonly o: PartitionHoldOptions = DEFAULT_PARTITION_HOLD,
  ) {}

  /**
   * Open a partition with `open`; when that fails for a transient reason the
   * partition is held (see hold) and the result is undefined. Other failures
   * are thrown.
   */
  async open<T>(topic: string, partition: number, open: () => Promise<T>): Promise<T | undefined> {
    let opened: T;
    try {
      opened = await open();
    } catch (e) {
      if (!isTransientOpenFailure(e)) throw e;
      this.hold(topic, partition, e);
      return undefined;
    }
    this.failures.delete(`${topic}/${partition}`);
    return opened;
  }

  /**
   * Pause the partition and resume it after the backoff. Its offsets stay
   * unresolved, so kafkajs fetches the same records again on resume.
   */
  hold(topic: string, partition: number, err: unknown): void {
    const key = `${topic}/${partition}`;
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    const delayMs = Math.min(this.o.maxMs, this.o.minMs * 2 ** Math.min(attempt - 1, 20));
    this.holds++;
    this.consumer.pause([{ topic, partitions: [partition] }]);
    this.log.warn({ stage: this.stage, partition, attempt, retryInMs: delayMs, err: (err as Error).message }, 'partition cannot be opened; paused while the others go on');
    clearTimeout(this.timers.get(key));
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.consumer.resume([{ topic, partitions: [partition] }]);
    }, delayMs);
    t.unref();
    this.timers.set(key, t);
  }

  /** Stopping: no resume after the consumer is gone. */
  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
