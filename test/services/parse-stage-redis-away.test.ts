// Redis away while the parse stage opens a lines partition (its checkpoint
// lives in Redis): that partition is paused and retried with backoff, while
// the others are parsed and committed; once Redis answers it opens and every
// line is parsed once. Before, the failed load failed the whole batch, and
// kafkajs stopped every partition to retry it, then restarted the consumer.
import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { FloodgateError } from '../../src/core/errors.js';
import { createKafka, ensureTopics } from '../../src/distributed/kafka.js';
import { ParseStage } from '../../src/distributed/parse-stage.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { connectRedis } from '../../src/redis/connection.js';
import { PartitionSnapshots } from '../../src/redis/snapshots.js';
import { waitFor } from './helpers/cluster.js';
import { removeTestDeployment, shipperChunks, stageConfig } from './helpers/stage-fixtures.js';

const id = `fgtpra${randomBytes(4).toString('hex')}`;
const cfg = stageConfig(id, { kafka: { partitions: 2 } });
const log = pino({ level: 'silent' });
const kafka = createKafka(cfg.kafka, log);
const redis = connectRedis(cfg.redis);
let stage: ParseStage | undefined;

afterAll(async () => {
  await stage?.stop();
  await removeTestDeployment(id);
  redis.disconnect();
});

/** waitFor on a synchronous condition, telling the stage's metrics when it times out. */
function until(what: string, ok: () => boolean, ms: number): Promise<true> {
  return waitFor(what, async () => (ok() ? true : undefined), ms, () => `parse metrics ${JSON.stringify(stage?.metrics)}`);
}

describe('parse stage with Redis away while a partition opens', () => {
  it('holds that partition only; the other is parsed meanwhile, and every line once Redis is back', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, cfg.kafka, log);
    await admin.disconnect();

    const mx1 = shipperChunks({ host: 'mx1', seed: 11, lines: 5000, perChunk: 1000 });
    const mx2 = shipperChunks({ host: 'mx2', seed: 12, lines: 4000, perChunk: 1000 });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    for (const value of mx1.values) await producer.send({ topic: cfg.kafka.topics.lines, acks: -1, messages: [{ partition: 0, key: 'mx1', value }] });
    for (const value of mx2.values) await producer.send({ topic: cfg.kafka.topics.lines, acks: -1, messages: [{ partition: 1, key: 'mx2', value }] });
    await producer.disconnect();

    const snapshots = new PartitionSnapshots(redis, cfg.redis.keyPrefix);
    let redisAway = true;
    const load = snapshots.load.bind(snapshots);
    snapshots.load = (group, topic, partition) =>
      partition === 1 && redisAway ? Promise.reject(new FloodgateError('FG_REDIS_UNAVAILABLE', 'redis away (test) while loading the checkpoint of lines partition 1')) : load(group, topic, partition);

    stage = new ParseStage({ cfg, kafka, snapshots, zone: new ZoneClock('UTC'), log, workerId: 'away', eventPartitions: 2, partitionHold: { minMs: 200, maxMs: 1000 } });
    await stage.start();
    await until('partition 0 parsed while partition 1 is held', () => stage!.metrics.lines === mx1.lines && stage!.metrics.openHolds >= 3, 60_000);
    expect(stage.metrics.transactionFailures).toBe(0);

    redisAway = false;
    await until('every line parsed', () => stage!.metrics.lines === mx1.lines + mx2.lines, 60_000);
    expect(stage.metrics.transactionFailures).toBe(0);
    expect(stage.metrics.duplicateLines).toBe(0);
    // The held partition was neither lost nor parsed twice: the count stays where it is.
    await new Promise((r) => setTimeout(r, 1500));
    expect(stage.metrics.lines).toBe(mx1.lines + mx2.lines);
  }, 180_000);
});
