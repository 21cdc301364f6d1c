// kafka.linesFetchWaitMs: how long the broker may hold the parse stage's
// fetch of lines (each fetch is a Kafka transaction, so this trades findings'
// latency against transactions per second).
import type { Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/config.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { ParseStage } from '../src/distributed/parse-stage.js';
import type { Logger } from '../src/distributed/log.js';
import type { PartitionSnapshots } from '../src/redis/snapshots.js';

/** The options the parse stage gives its lines consumer (a Kafka that only records them). */
function consumerOptionsOf(config: Record<string, unknown>): Record<string, unknown> {
  const asked: Record<string, unknown>[] = [];
  const kafka = {
    consumer: (o: Record<string, unknown>) => (asked.push(o), { events: {}, on: () => undefined }),
    producer: () => ({}),
    admin: () => ({}),
  } as unknown as Kafka;
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;
  new ParseStage({ cfg: validateConfig(config), kafka, snapshots: {} as PartitionSnapshots, zone: new ZoneClock('UTC'), log, workerId: 'w1', eventPartitions: 6 });
  expect(asked).toHaveLength(1);
  return asked[0]!;
}

describe('parse stage: fetching lines', () => {
  it('lets the broker hold a fetch at most kafka.linesFetchWaitMs (default 50 ms) while less than 64 KiB waits', () => {
    expect(consumerOptionsOf({})).toMatchObject({ maxWaitTimeInMs: 50, minBytes: 64 << 10, readUncommitted: false });
    expect(consumerOptionsOf({ kafka: { linesFetchWaitMs: 20 } })).toMatchObject({ maxWaitTimeInMs: 20 });
  });

  it('refuses a wait that is not a positive whole number of ms, naming the key', () => {
    for (const bad of [0, -5, 1.5, 'soon', 60_000]) {
      expect(() => validateConfig({ kafka: { linesFetchWaitMs: bad } }), String(bad)).toThrow(/kafka\.linesFetchWaitMs/);
    }
  });
});
