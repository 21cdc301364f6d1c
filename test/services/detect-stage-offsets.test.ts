// Where the detect stage resumes a partition, against a real broker.
//
// Transaction markers: the events topic is written in parse-stage
// transactions, and kafkajs hides their markers from eachBatch but moves its
// fetch position past them. The stage's state stopped before the marker, so
// every batch after a transaction looked like a jump past its state and cost
// a seek and four more fetches.
//
// A batch failing until kafkajs restarts the consumer (a bug, a corrupt
// checkpoint): the new consumer fetches every partition again from its
// committed offset. The stage keeps the partitions it had open, whose state
// is ahead of that offset, and skips the records it has processed already. It
// used to skip them without resolving their offsets, so a fetch wholly below
// its state was fetched again for ever: those partitions stopped for good
// (seen in CI's Redis-outage fault test, when Redis being away still failed
// the batch).
//
// Redis being away while a partition opens holds only that partition
// (paused, retried with backoff): the others go on and the consumer is not
// restarted.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Partitioners, type Producer } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, messageId } from '../../src/clickhouse/rows.js';
import { ensureTopics } from '../../src/distributed/kafka.js';
import { ParsePartition } from '../../src/distributed/parse-partition.js';
import { decodeChunk, decodeItems, encodeItems, type RoutedItem } from '../../src/distributed/wire.js';
import { DetectWorker } from '../../src/distributed/worker.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { FloodgateError } from '../../src/core/errors.js';
import { waitFor } from './helpers/cluster.js';
import { CLICKHOUSE_URL } from './helpers/services.js';
import { removeTestDeployment, shipperChunks, stageConfig } from './helpers/stage-fixtures.js';

const id = `fgtopn${randomBytes(4).toString('hex')}`;

const cfg = stageConfig(id, {
  kafka: { partitions: 8, eventsCompression: 'none' },
  clickhouse: { url: CLICKHOUSE_URL, database: id, flushMs: 200 },
  // No checkpoint during the test: nothing is committed, so the restarted consumer fetches from offset 0.
  redis: { snapshotIntervalMs: 600_000 },
});

/** Log lines as objects, to see the consumer join the group again. */
const logged: { msg?: string; partition?: number }[] = [];
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logged.push(JSON.parse(line) as (typeof logged)[number]);
      done();
    },
  }),
);
const worker = new DetectWorker({ cfg, zone: new ZoneClock('UTC'), log, workerId: 'rst', stages: { parse: false, detect: true } });

afterAll(async () => {
  await worker.stop().catch(() => undefined);
  await removeTestDeployment(id);
});

/** Events of generated lines, as the parse stage would send them, in records of about 64 KiB, and the ids of the rows they store. */
function records(lines: number, seed: number): { values: Buffer[]; ids: string[] } {
  const parse = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: cfg.correlator.idleTimeoutMs, maxEntries: cfg.correlator.maxEntries });
  const items: RoutedItem[] = [];
  for (const chunk of shipperChunks({ host: 'mx1', seed, lines, perChunk: 2000 }).values) {
    parse.feed(decodeChunk(chunk));
    items.push(...parse.takeOutput());
  }
  const values = encodeItems(items, 64 * 1024);
  return { values, ids: values.flatMap((v) => [...idsOf(v)]) };
}

/** Ids of the rows the detect stage stores for these items. */
function rowIds(items: readonly RoutedItem[]): string[] {
  return items.flatMap((it) => (!it.primary ? [] : it.event ? [eventId(it.event, it.n ?? 0)] : it.message ? [messageId(it.message)] : []));
}

function idsOf(record: Buffer): Set<string> {
  return new Set(rowIds(decodeItems(record, (reason) => { throw new Error(reason); })));
}

/** Distinct events and messages stored. */
async function storedRows(): Promise<number> {
  const res = await fetch(`${CLICKHOUSE_URL}/`, {
    method: 'POST',
    body: `SELECT (SELECT uniqExact(id) FROM ${id}.events) + (SELECT uniqExact(id) FROM ${id}.messages) FORMAT TabSeparated`,
  });
  if (!res.ok) throw new Error(`ClickHouse: ${await res.text()}`);
  return Number((await res.text()).trim());
}

function metrics(): string {
  return JSON.stringify({ ...worker.detect?.metrics, lag: [...(worker.detect?.metrics.lag ?? [])] });
}

/** waitFor on a synchronous condition, telling the stage's metrics and last log lines when it times out. */
function until(what: string, ok: () => boolean, ms: number): Promise<true> {
  return waitFor(what, async () => (ok() ? true : undefined), ms, () => `detect metrics ${metrics()}; last log lines: ${JSON.stringify(logged.slice(-30).map((l) => l.msg))}`);
}

/** Partitions whose checkpoint load fails, and with what. */
const refuse = new Map<number, Error>();
const joins = () => logged.filter((l) => l.msg === 'partitions assigned').length;
/** A partition the stage has not opened yet (hand-offs open some: which depends on the data). */
const unopened = (): number => {
  const opened = new Set(logged.filter((l) => l.msg === 'partition opened').map((l) => l.partition));
  const p = [2, 3, 4, 5, 6, 7].find((q) => !opened.has(q) && !refuse.has(q));
  if (p === undefined) throw new Error('every partition opened already');
  return p;
};
let producer: Producer;
const send = async (partition: number, values: Buffer[]) => {
  for (let i = 0; i < values.length; i += 16) await producer.send({ topic: cfg.kafka.topics.events, acks: -1, messages: values.slice(i, i + 16).map((value) => ({ partition, value })) });
};
/** Every row of these records stored once (none of the day twice, none missing). */
const expectStored = async (...sets: { ids: string[] }[]) => {
  const want = new Set(sets.flatMap((r) => r.ids)).size;
  let stored = 0;
  const end = Date.now() + 90_000;
  while ((stored = await storedRows()) !== want && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
  expect(stored, `rows stored; detect metrics ${metrics()}`).toBe(want);
};

describe('detect stage offsets', () => {
  beforeAll(async () => {
    const load = worker.snapshots.load.bind(worker.snapshots);
    worker.snapshots.load = (group, topic, partition) => {
      const e = refuse.get(partition);
      return e ? Promise.reject(e) : load(group, topic, partition);
    };
    const admin = worker.kafka.admin();
    await admin.connect();
    await ensureTopics(admin, cfg.kafka, log);
    await admin.disconnect();
    producer = worker.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
  });

  const before = records(12_000, 1);
  const later = records(6_000, 2);
  const last = records(3_000, 3);
  const txns = records(3_000, 4);

  it('a batch failing until kafkajs restarts the consumer: the partitions it had open go on past the records processed and never committed', async () => {
    // Well over one fetch (1 MiB per partition) in each of partitions 0 and 1.
    const half = Math.ceil(before.values.length / 2);
    const bytes = before.values.slice(0, half).reduce((n, b) => n + b.length, 0);
    expect(bytes).toBeGreaterThan(2 << 20);
    await send(0, before.values.slice(0, half));
    await send(1, before.values.slice(half));
    await worker.start();
    await until('partitions 0 and 1 processed', () => worker.detect!.metrics.records >= before.values.length, 120_000);
    expect(joins()).toBe(1);

    // A partition fails to open (not for Redis being away: that would only hold it) until kafkajs gives up and restarts the consumer.
    const failing = unopened();
    refuse.set(failing, new Error(`checkpoint of partition ${failing} unreadable (test)`));
    expect(later.values.length).toBeGreaterThan(3);
    await send(failing, later.values.slice(0, 1));
    await until('the consumer restarted', () => joins() >= 2, 120_000);
    expect(logged.map((l) => l.msg).filter((m) => m?.startsWith('Restarting the consumer'))).not.toEqual([]);
    refuse.delete(failing);
    // After the restart partition 0 is fetched from offset 0 again, every record of its first fetch processed already.
    await send(0, later.values.slice(1));
    await expectStored(before, later);
    expect(worker.detect!.metrics.lag.get(0)).toBe(0);
  }, 300_000);

  it('Redis away while a partition opens: only that partition waits, the consumer is not restarted', async () => {
    const joined = joins();
    const away = unopened();
    refuse.set(away, new FloodgateError('FG_REDIS_UNAVAILABLE', `redis away (test) while loading the checkpoint of partition ${away}`));
    expect(last.values.length).toBeGreaterThan(3);
    await send(away, last.values.slice(0, 1));
    await until(`partition ${away} held three times`, () => worker.detect!.metrics.openHolds >= 3, 60_000);
    // Meanwhile partition 0 goes on.
    await send(0, last.values.slice(1));
    await expectStored(before, later, { ids: last.ids.filter((id) => !idsOf(last.values[0]!).has(id)) });
    refuse.delete(away);
    await expectStored(before, later, last);
    expect(joins(), 'no rebalance, no consumer restart').toBe(joined);
    expect(worker.detect!.metrics.lag.get(away)).toBe(0);
  }, 300_000);

  it('transactions one after another: each batch goes on past the marker, no seek', async () => {
    const seeks = worker.detect!.metrics.seeks;
    const tx = worker.kafka.producer({ transactionalId: `${id}-txn`, idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      expect(txns.values.length).toBeGreaterThan(5);
      // One record per transaction, each committed after the stage has taken the one before: a marker after each.
      for (const value of txns.values) {
        const done = worker.detect!.metrics.records;
        const t = await tx.transaction();
        await t.send({ topic: cfg.kafka.topics.events, acks: -1, messages: [{ partition: 1, value }] });
        await t.commit();
        await until('the record processed', () => worker.detect!.metrics.records > done, 30_000);
      }
    } finally {
      await tx.disconnect();
    }
    await expectStored(before, later, last, txns);
    expect(worker.detect!.metrics.seeks - seeks, 'batches that began past the state').toBe(0);
    expect(worker.detect!.metrics.lag.get(1)).toBe(0);
  }, 300_000);
});
