// The parse stage stores the rows of what it parses and routes on only what
// detection reads. Its rows are at least once without any checkpoint: here
// the first owner's last rows never reach ClickHouse (lost with its buffer, as
// in a crash) and its checkpoint is gone from Redis too; the next owner
// re-reads, silently, from before the offset committed for
// `<group>-parse-stored` (so the messages open there are rebuilt whole) and
// stores what lies past it, so ClickHouse ends up with every event and every
// message exactly once. It does so on assignment, before its host logs
// another line: a host that stopped logging must not keep those rows missing.
import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createClickhouseClient, type InsertRows } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { ClickhouseSink } from '../../src/clickhouse/sink.js';
import { detectionReads } from '../../src/detect/engine.js';
import { createKafka, ensureTopics } from '../../src/distributed/kafka.js';
import { ParsePartition } from '../../src/distributed/parse-partition.js';
import { ParseStage, storedTimestamp } from '../../src/distributed/parse-stage.js';
import { decodeChunk } from '../../src/distributed/wire.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { connectRedis } from '../../src/redis/connection.js';
import { PartitionSnapshots } from '../../src/redis/snapshots.js';
import { waitFor } from './helpers/cluster.js';
import { CLICKHOUSE_URL } from './helpers/services.js';
import { removeTestDeployment, shipperChunks, stageConfig } from './helpers/stage-fixtures.js';

const id = `fgtpst${randomBytes(4).toString('hex')}`;
const cfg = stageConfig(id, { kafka: { partitions: 1 }, clickhouse: { url: CLICKHOUSE_URL, database: id }, redis: { snapshotIntervalMs: 200 } });
const log = pino({ level: 'silent' });
const kafka = createKafka(cfg.kafka, log);
const redis = connectRedis(cfg.redis);
const client = createClickhouseClient(cfg.clickhouse);
const stages: ParseStage[] = [];
const sinks: ClickhouseSink[] = [];

afterAll(async () => {
  for (const s of stages) await s.stop();
  for (const s of sinks) await s.close().catch(() => undefined);
  await client.close();
  await removeTestDeployment(id);
  redis.disconnect();
}, 60_000);

/** A sink that, once `lose` is set, drops what it is given and never reports it stored: a crashing owner's buffer. */
class LosingSink extends ClickhouseSink {
  lose = false;
  override add(table: string, rows: InsertRows): void {
    if (!this.lose) super.add(table, rows);
  }
  override flush(): Promise<void> {
    return this.lose ? Promise.reject(new Error('rows lost (test)')) : super.flush();
  }
}

const sinkOptions = { batchRows: 5000, flushMs: 50, maxBufferedRows: 1_000_000 };

async function storedOffsetAndTime(): Promise<[number, number | undefined]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId: `${id}-parse-stored`, topics: [cfg.kafka.topics.lines] });
    const p = t?.partitions.find((x) => x.partition === 0);
    return [Number(p?.offset ?? -1), storedTimestamp(p?.metadata)];
  } finally {
    await admin.disconnect();
  }
}

async function storedOffset(): Promise<number> {
  return (await storedOffsetAndTime())[0];
}

async function messageIds(): Promise<string[]> {
  return (await client.query<{ id: string }>(`SELECT DISTINCT id FROM \`${id}\`.messages`)).map((r) => r.id);
}

/** Topics and tables of a test deployment. */
async function deploy(c: typeof cfg, ch: typeof client): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, c.kafka, log);
  } finally {
    await admin.disconnect();
  }
  await migrate(ch, c.clickhouse);
}

async function count(sql: string): Promise<number> {
  const rows = await client.query<{ n: number | string }>(sql);
  return Number(rows[0]?.n ?? 0);
}

describe('parse stage storing its rows', () => {
  it('stores every event once, routes only what detection reads, and re-stores lost rows from the stored offset without a checkpoint', async () => {
    await deploy(cfg, client);

    const { values } = shipperChunks({ host: 'mx1', seed: 21, lines: 7000, perChunk: 1000 });
    // The first owner gets all but the last record; the last one goes to the second owner only after it has
    // re-stored the lost rows by itself.
    const firstOwners = values.length - 1;
    // What the stage must store: every event of every chunk (a partition that stores, fed offline).
    const partition = (stores: boolean) =>
      new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: cfg.correlator.idleTimeoutMs, maxEntries: cfg.correlator.maxEntries, ...(stores ? { stores: { reads: detectionReads(cfg.enabledDetectors) } } : {}) });
    const offline = partition(true);
    const plain = partition(false); // what was routed before the parse stage stored
    let events = 0;
    let eventsBeforeLast = 0;
    const messagesBeforeLast = new Set<string>();
    const messages = new Set<string>();
    const rowsOfChunk: number[] = [];
    let itemsFirst4 = 0;
    let plainItemsFirst4 = 0;
    for (let i = 0; i < values.length; i++) {
      offline.feed(decodeChunk(values[i]!));
      plain.feed(decodeChunk(values[i]!));
      const rows = offline.takeRows();
      rowsOfChunk.push(rows.events.length + rows.messages.length);
      const rowEvents = rows.events.length;
      events += rowEvents;
      if (i < firstOwners) eventsBeforeLast += rowEvents;
      for (const m of rows.messages) {
        messages.add(m.id);
        if (i < firstOwners) messagesBeforeLast.add(m.id);
      }
      const items = offline.takeOutput().length;
      const plainItems = plain.takeOutput().length;
      if (i < 4) {
        itemsFirst4 += items;
        plainItemsFirst4 += plainItems;
      }
    }
    expect(offline.storedOnly).toBeGreaterThan(events / 4); // the bookkeeping that no longer crosses to the detect stage
    expect(itemsFirst4).toBeLessThan(plainItemsFirst4 * 0.75);

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const send = (value: Buffer) => producer.send({ topic: cfg.kafka.topics.lines, acks: -1, messages: [{ partition: 0, key: 'mx1', value }] });

    const snapshots = new PartitionSnapshots(redis, cfg.redis.keyPrefix);
    const sink1 = new LosingSink(client, sinkOptions);
    sinks.push(sink1);
    const first = new ParseStage({ cfg, kafka, snapshots, sink: sink1, zone: new ZoneClock('UTC'), log, workerId: 'first', eventPartitions: 1 });
    stages.push(first);
    await first.start();
    // One record at a time with pauses: a checkpoint stores the rows, and the next transaction commits the stored offset.
    for (let i = 0; i < 4; i++) {
      await send(values[i]!);
      await waitFor(`record ${i} parsed`, async () => (first.metrics.records === i + 1 ? true : undefined), 60_000, () => JSON.stringify(first.metrics));
      await new Promise((r) => setTimeout(r, 600));
    }
    const [stored, storedAt] = await storedOffsetAndTime();
    expect(stored).toBeGreaterThan(0);
    // The stored offset carries the broker's timestamp of the record before it: where a re-read looks back from.
    expect(storedAt).toBeGreaterThan(Date.now() - 60_000);
    expect(storedAt).toBeLessThanOrEqual(Date.now());
    expect(stored).toBeLessThanOrEqual(4);
    expect(first.metrics.rows).toBeGreaterThan(0);
    expect(first.metrics.storedOnly).toBeGreaterThan(0);
    expect(first.metrics.items).toBe(itemsFirst4); // only what detection reads was routed

    // From here the first owner's rows are lost, and so is its checkpoint.
    sink1.lose = true;
    for (let i = 4; i < firstOwners; i++) await send(values[i]!);
    await waitFor('its records parsed by the first owner', async () => (first.metrics.records === firstOwners ? true : undefined), 60_000, () => JSON.stringify(first.metrics));
    await first.stop();
    stages.pop();
    // No checkpoint could store the lost rows: the stored offset stays within the first four records (a
    // checkpoint taken before the loss may have committed one more of those with a later transaction).
    const storedAtCrash = await storedOffset();
    expect(storedAtCrash).toBeGreaterThanOrEqual(stored);
    expect(storedAtCrash).toBeLessThanOrEqual(4);
    await snapshots.delete(`${id}-parse`, cfg.kafka.topics.lines, 0);
    expect(await count(`SELECT uniqExact(id) AS n FROM \`${id}\`.events`)).toBeLessThan(events);

    const sink2 = new ClickhouseSink(client, sinkOptions);
    sinks.push(sink2);
    const second = new ParseStage({ cfg, kafka, snapshots, sink: sink2, zone: new ZoneClock('UTC'), log, workerId: 'second', eventPartitions: 1 });
    stages.push(second);
    await second.start();
    // No new line yet: the partition opens on assignment, because its stored offset is behind the committed one.
    await waitFor(
      "every event of the first owner's records stored",
      async () => ((await count(`SELECT uniqExact(id) AS n FROM \`${id}\`.events`)) === eventsBeforeLast ? true : undefined),
      90_000,
      () => `second owner ${JSON.stringify(second.metrics)}`,
    );
    expect(second.metrics.eagerOpens).toBe(1);
    expect(second.metrics.restores).toBe(0);
    // Re-read silently from a correlator idle timeout (2 h) before the last stored record: here the partition's start.
    expect(second.metrics.lookbacks).toBe(1);
    expect(second.metrics.silentRecords).toBe(firstOwners);
    expect(second.metrics.records).toBe(firstOwners);
    expect(second.metrics.items).toBe(0); // all of it was committed to the events topic by the first owner
    // The messages completed in the lost records are stored, whole: exactly the ones a partition that saw every line made.
    expect(messagesBeforeLast.size).toBeGreaterThan(10);
    await waitFor(
      "every message of the first owner's records stored",
      async () => ((await messageIds()).length === messagesBeforeLast.size ? true : undefined),
      30_000,
      () => `second owner ${JSON.stringify(second.metrics)}`,
    );
    expect((await messageIds()).sort()).toEqual([...messagesBeforeLast].sort());
    // Records below the stored offset only rebuilt the state: their rows, stored by the first owner, were not sent again.
    expect(second.metrics.rows).toBe(rowsOfChunk.slice(storedAtCrash, firstOwners).reduce((a, b) => a + b, 0));

    await send(values[firstOwners]!);
    await waitFor(
      'every event stored',
      async () => ((await count(`SELECT uniqExact(id) AS n FROM \`${id}\`.events`)) === events ? true : undefined),
      90_000,
      () => `second owner ${JSON.stringify(second.metrics)}`,
    );
    expect(second.metrics.records).toBe(firstOwners + 1); // and the new record, produced
    expect(second.metrics.items).toBeGreaterThan(0);
    await waitFor('every message stored', async () => ((await messageIds()).length === messages.size ? true : undefined), 30_000);
    expect((await messageIds()).sort()).toEqual([...messages].sort());
    await producer.disconnect();
  }, 240_000);

  it('stores the messages too when nothing was ever stored: a re-read from the partition\'s first record has every line', async () => {
    // The first owner loses every row from the start (ClickHouse away before its first checkpoint, then a
    // crash): no checkpoint, no stored offset. Its successor re-reads from offset 0, which is the whole
    // partition, so the messages it rebuilds are complete and must be stored, not only the events.
    const id2 = `${id}b`;
    const cfg2 = stageConfig(id2, { kafka: { partitions: 1 }, clickhouse: { url: CLICKHOUSE_URL, database: id2 }, redis: { snapshotIntervalMs: 200 } });
    const client2 = createClickhouseClient(cfg2.clickhouse);
    try {
      await deploy(cfg2, client2);
      const { values } = shipperChunks({ host: 'mx1', seed: 22, lines: 4000, perChunk: 1000 });
      const offline = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: cfg2.correlator.idleTimeoutMs, maxEntries: cfg2.correlator.maxEntries, stores: { reads: detectionReads(cfg2.enabledDetectors) } });
      const messageIds = new Set<string>();
      let events = 0;
      for (const v of values) {
        offline.feed(decodeChunk(v));
        const rows = offline.takeRows();
        events += rows.events.length;
        for (const m of rows.messages) messageIds.add(m.id);
      }
      expect(messageIds.size).toBeGreaterThan(10);

      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      const snapshots = new PartitionSnapshots(redis, cfg2.redis.keyPrefix);
      const sink1 = new LosingSink(client2, sinkOptions);
      sink1.lose = true;
      sinks.push(sink1);
      const first = new ParseStage({ cfg: cfg2, kafka, snapshots, sink: sink1, zone: new ZoneClock('UTC'), log, workerId: 'first', eventPartitions: 1 });
      stages.push(first);
      await first.start();
      for (const v of values) await producer.send({ topic: cfg2.kafka.topics.lines, acks: -1, messages: [{ partition: 0, key: 'mx1', value: v }] });
      await waitFor('every record parsed by the first owner', async () => (first.metrics.records === values.length ? true : undefined), 60_000, () => JSON.stringify(first.metrics));
      await first.stop();
      stages.splice(stages.indexOf(first), 1);
      await producer.disconnect();
      const count2 = (table: string) => count(`SELECT uniqExact(id) AS n FROM \`${id2}\`.${table}`);
      expect(await count2('events')).toBe(0);
      expect(await count2('messages')).toBe(0);

      const second = new ParseStage({ cfg: cfg2, kafka, snapshots, sink: new ClickhouseSink(client2, sinkOptions), zone: new ZoneClock('UTC'), log, workerId: 'second', eventPartitions: 1 });
      stages.push(second);
      await second.start();
      let seen = '';
      await waitFor(
        'every event and message stored by the second owner',
        async () => {
          const [e, m] = [await count2('events'), await count2('messages')];
          seen = `events ${e}/${events}, messages ${m}/${messageIds.size}`;
          return e === events && m === messageIds.size ? true : undefined;
        },
        90_000,
        () => `${seen}; ${JSON.stringify(second.metrics)}`,
      );
      expect(second.metrics.restores).toBe(0);
      expect(second.metrics.silentRecords).toBe(values.length); // all of it re-read silently: nothing produced twice
      expect(second.metrics.items).toBe(0);
    } finally {
      await client2.close();
      await removeTestDeployment(id2);
    }
  }, 240_000);
});
