// The parse stage commits a batch whose events exceed the broker's record
// batch limit (message.max.bytes, 1 MiB by default) for one partition: a
// backlog of lines (after an outage, or a big file appended at once) was read
// in one fetch of up to 8 MiB, and its events used to go in one produce
// request per partition, which the broker refused — the stage crash-looped
// on that batch for ever. Found by `npm run bench -- --phases kafka`. Fetches
// are smaller now (256 KiB), but one record of many lines (kafka.batchLines
// up to 100,000) still makes such a batch: the test asks for 8 MiB fetches.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createKafka, ensureTopics } from '../../src/distributed/kafka.js';
import { ParsePartition } from '../../src/distributed/parse-partition.js';
import { ParseStage } from '../../src/distributed/parse-stage.js';
import { decodeChunk, decodeItems } from '../../src/distributed/wire.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { connectRedis } from '../../src/redis/connection.js';
import { PartitionSnapshots } from '../../src/redis/snapshots.js';
import { KAFKA_BROKERS } from './helpers/services.js';
import { removeTestDeployment, shipperChunks, stageConfig } from './helpers/stage-fixtures.js';

const id = `fgtbig${randomBytes(4).toString('hex')}`;
const LINES = 20_000;

// Uncompressed and one events partition: 20,000 lines make ~8 MiB of events for that partition.
const cfg = stageConfig(id, { kafka: { partitions: 1, eventsCompression: 'none' } });
const log = pino({ level: 'silent' });
const kafka = createKafka(cfg.kafka, log);
const redis = connectRedis(cfg.redis);
let stage: ParseStage | undefined;

afterAll(async () => {
  await stage?.stop();
  await removeTestDeployment(id);
  redis.disconnect();
});

describe('parse stage with a batch bigger than the broker takes in one request', () => {
  it('commits every item of a 20,000-line fetch in one transaction, none lost', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, cfg.kafka, log);
    await admin.disconnect();

    // What the shipper would send: chunks of 2,000 lines of one file, all there before the stage starts.
    const chunks = shipperChunks({ host: 'mx1', seed: 7, lines: LINES, perChunk: 2000 }).values;
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    for (const value of chunks) await producer.send({ topic: cfg.kafka.topics.lines, acks: -1, messages: [{ key: 'mx1', value }] });
    await producer.disconnect();

    // The items the stage must produce: the same chunks through the same partition state, offline.
    const offline = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: cfg.correlator.idleTimeoutMs, maxEntries: cfg.correlator.maxEntries });
    let expected = 0;
    for (const c of chunks) {
      offline.feed(decodeChunk(c));
      expected += offline.takeOutput().length;
    }

    stage = new ParseStage({ cfg, kafka, snapshots: new PartitionSnapshots(redis, cfg.redis.keyPrefix), zone: new ZoneClock('UTC'), log, workerId: 'big', eventPartitions: 1, fetchBytesPerPartition: 8 << 20 });
    const started = performance.now();
    await stage.start();
    const until = Date.now() + 90_000;
    while (stage.metrics.items < expected && stage.metrics.transactionFailures === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(stage.metrics.transactionFailures).toBe(0);
    expect(stage.metrics.lines).toBe(LINES);
    expect(stage.metrics.items).toBe(expected);
    // Fewer transactions than chunks: the batch really was bigger than one request per partition can carry.
    expect(stage.metrics.transactions).toBeLessThan(chunks.length);
    // The time in those transactions is counted: some of the run, not more than all of it.
    expect(stage.metrics.transactionMs).toBeGreaterThan(0);
    expect(stage.metrics.transactionMs).toBeLessThan(performance.now() - started);

    // And the committed events topic holds each of them.
    const reader = new Kafka({ clientId: `${id}-read`, brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).consumer({ groupId: `${id}-read`, readUncommitted: false, maxWaitTimeInMs: 200 });
    await reader.connect();
    await reader.subscribe({ topic: cfg.kafka.topics.events, fromBeginning: true });
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${got} of ${expected} items`)), 60_000);
      void reader.run({
        eachMessage: async ({ message }) => {
          got += decodeItems(message.value ?? Buffer.alloc(0), () => undefined).length;
          if (got >= expected) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await reader.disconnect();
    expect(got).toBe(expected);
  });
});
