import type { Consumer } from 'kafkajs';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FloodgateError } from '../src/core/errors.js';
import { isTransientOpenFailure, PartitionHold } from '../src/distributed/partition-hold.js';

/** The two consumer calls the hold makes, recorded in order. */
function fakeConsumer() {
  const calls: string[] = [];
  const consumer = {
    pause: (tps: { topic: string; partitions: number[] }[]) => calls.push(`pause ${tps.map((t) => `${t.topic}/${t.partitions.join(',')}`).join(' ')}`),
    resume: (tps: { topic: string; partitions: number[] }[]) => calls.push(`resume ${tps.map((t) => `${t.topic}/${t.partitions.join(',')}`).join(' ')}`),
  } as unknown as Consumer;
  return { consumer, calls };
}

describe('PartitionHold', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());
  const log = pino({ level: 'silent' });

  it('pauses the partition and resumes it after a backoff that doubles, up to the cap, and starts afresh once it opened', async () => {
    const { consumer, calls } = fakeConsumer();
    const hold = new PartitionHold(consumer, log, 'detect', { minMs: 100, maxMs: 350 });
    const delays: number[] = [];
    const holdAndTime = () => {
      calls.length = 0;
      hold.hold('t', 3, new Error('away'));
      expect(calls).toEqual(['pause t/3']);
      let ms = 0;
      while (calls.length === 1) {
        vi.advanceTimersByTime(10);
        ms += 10;
      }
      expect(calls).toEqual(['pause t/3', 'resume t/3']);
      delays.push(ms);
    };
    for (let i = 0; i < 4; i++) holdAndTime();
    expect(delays).toEqual([100, 200, 350, 350]);
    expect(await hold.open('t', 3, () => Promise.resolve('state'))).toBe('state');
    holdAndTime();
    expect(delays.at(-1)).toBe(100);
    expect(hold.holds).toBe(5);
  });

  it('open holds the partition when Redis is away and throws anything else', async () => {
    const { consumer, calls } = fakeConsumer();
    const hold = new PartitionHold(consumer, log, 'detect', { minMs: 100, maxMs: 1000 });
    await expect(hold.open('t', 4, () => Promise.reject(new FloodgateError('FG_REDIS_UNAVAILABLE', 'away')))).resolves.toBeUndefined();
    expect(calls).toEqual(['pause t/4']);
    await expect(hold.open('t', 5, () => Promise.reject(new Error('corrupt checkpoint')))).rejects.toThrow('corrupt checkpoint');
    expect(calls).toEqual(['pause t/4']);
    expect(hold.holds).toBe(1);
  });

  it('keeps each partition its own backoff', () => {
    const { consumer, calls } = fakeConsumer();
    const hold = new PartitionHold(consumer, log, 'parse', { minMs: 100, maxMs: 1000 });
    hold.hold('t', 1, new Error('away'));
    vi.advanceTimersByTime(100);
    hold.hold('t', 1, new Error('away'));
    hold.hold('t', 2, new Error('away'));
    vi.advanceTimersByTime(100);
    expect(calls).toEqual(['pause t/1', 'resume t/1', 'pause t/1', 'pause t/2', 'resume t/2']);
    vi.advanceTimersByTime(100);
    expect(calls.at(-1)).toBe('resume t/1');
  });

  it('resumes nothing after clear (the stage is stopping)', () => {
    const { consumer, calls } = fakeConsumer();
    const hold = new PartitionHold(consumer, log, 'detect', { minMs: 100, maxMs: 1000 });
    hold.hold('t', 0, new Error('away'));
    hold.clear();
    vi.advanceTimersByTime(5000);
    expect(calls).toEqual(['pause t/0']);
  });

  it('waits out Redis being away, nothing else', () => {
    expect(isTransientOpenFailure(new FloodgateError('FG_REDIS_UNAVAILABLE', 'away'))).toBe(true);
    expect(isTransientOpenFailure(new FloodgateError('FG_REDIS_FAILED', 'refused'))).toBe(false);
    expect(isTransientOpenFailure(new Error('FG_REDIS_UNAVAILABLE'))).toBe(false);
  });
});
