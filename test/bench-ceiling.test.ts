import { describe, expect, it } from 'vitest';
import { kafkaCeiling } from '../bench/ceiling.js';

const floor = { phase: 'kafka-floor', linesPerSec: 300_000, cpuMicrosPerLine: { producer: 1.5, consumer: 1.25, kafka: 0.65, clickhouse: 2.1, total: 5.5 } };

describe('bench: the Kafka path ceiling', () => {
  it('divides the cores by the hops plus the cheapest pipeline run', () => {
    const pipeline = { phase: 'pipeline', linesPerSec: 160_000, cpuMicrosPerLine: 7.5, runs: { linesPerSec: [150_000, 160_000], cpuMicrosPerLine: [7.5, 4.5] } };
    expect(kafkaCeiling(floor, pipeline, 2)).toMatchObject({ cpuMicrosPerLine: { hops: 5.5, pipeline: 4.5, sum: 10 }, cores: 2, linesPerSec: 200_000 });
  });

  it('takes a single run’s CPU when there is no spread', () => {
    expect(kafkaCeiling(floor, { phase: 'pipeline', linesPerSec: 1, cpuMicrosPerLine: 6.5 }, 4)).toMatchObject({ linesPerSec: 333_333 });
  });

  it('gives nothing without both phases or with a reading it cannot use', () => {
    expect(kafkaCeiling(undefined, { phase: 'pipeline', linesPerSec: 1, cpuMicrosPerLine: 6 }, 2)).toBeUndefined();
    expect(kafkaCeiling(floor, undefined, 2)).toBeUndefined();
    expect(kafkaCeiling({ phase: 'kafka-floor', linesPerSec: 1, cpuMicrosPerLine: { total: 0 } }, { phase: 'pipeline', linesPerSec: 1, cpuMicrosPerLine: 6 }, 2)).toBeUndefined();
  });
});
