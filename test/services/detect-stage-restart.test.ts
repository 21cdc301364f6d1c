// When a batch of one partition keeps failing (its snapshot cannot be loaded
// while Redis is away), kafkajs gives up, drops the consumer and starts a new
// one, which fetches every partition again from its committed offset. The
// detect stage keeps the partitions it had open, whose state is ahead of
// that offset; it skips the records it has already processed. It used to skip
// them without resolving their offsets, so a fetch wholly below its state
// (more than a fetch's worth of records processed since the last commit) was
// fetched again and again: those partitions stopped for good. Seen in CI's
// Redis-outage fault test (and, as likely, its broker-restart one); here it is forced, one partition's snapshot
// refused until the consumer has been restarted.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Partitioners } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { generateLines } from '../../bench/generate.js';
import { eventId, messageId } from '../../src/clickhouse/rows.js';
import { validateConfig } from '../../src/config/config.js';
import { ensureTopics } from '../../src/distributed/kafka.js';
import { ParsePartition } from '../../src/distributed/parse-partition.js';
import { encodeChunk, decodeChunk, encodeItems, type RoutedItem } from '../../src/distributed/wire.js';
import { DetectWorker } from '../../src/distributed/worker.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { FloodgateError } from '../../src/core/errors.js';
import { CLICKHOUSE_URL, KAFKA_BROKERS, REDIS_URL } from './helpers/services.js';

const id = `fgtrst${randomBytes(4).toString('hex')}`;

const cfg = validateConfig({
  timezone: 'UTC',
  site: { localDomains: ['example.com'] },
  kafka: {
    brokers: KAFKA_BROKERS,
    topics: { lines: `${id}.lines`, events: `${id}.events`, deadLetter: `${id}.dead` },
    groupId: id,
    partitions: 3,
    eventsCompression: 'none',
  },
  clickhouse: { url: CLICKHOUSE_URL, database: id, flushMs: 200 },
  // No checkpoint during the test: nothing is committed, so the restarted consumer fetches from offset 0.
  redis: { url: REDIS_URL, keyPrefix: `${id}:`, snapshotIntervalMs: 600_000 },
});

/** Log lines as objects, to see the consumer join the group again. */
const logged: { msg?: string; partitions?: number[] }[] = [];
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
  const admin = worker.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [cfg.kafka.topics.lines, cfg.kafka.topics.events, cfg.kafka.topics.deadLetter] }).catch(() => undefined);
  await admin.disconnect();
  await fetch(`${CLICKHOUSE_URL}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${id}` }).catch(() => undefined);
});

/** Events of generated lines, as the parse stage would send them, in records of about 64 KiB, and the ids of the rows they store. */
function records(lines: number, seed: number): { values: Buffer[]; ids: string[] } {
  const parse = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: cfg.correlator.idleTimeoutMs, maxEntries: cfg.correlator.maxEntries });
  const all = [...generateLines({ lines, seed })];
  let offset = 0;
  const items: RoutedItem[] = [];
  for (let i = 0; i < all.length; i += 2000) {
    const part = all.slice(i, i + 2000);
    const offsets = part.map((l) => {
      const at = offset;
      offset += Buffer.byteLength(l) + 1;
      return at;
    });
    parse.feed(decodeChunk(encodeChunk({ host: 'mx1', file: '/var/log/mail.log', source: `mx1:${seed}:1:0`, format: 'auto', mtime: Date.UTC(2026, 10, 28), offsets, lines: part })));
    items.push(...parse.takeOutput());
  }
  return { values: encodeItems(items, 64 * 1024), ids: items.flatMap((it) => (!it.primary ? [] : it.event ? [eventId(it.event, it.n ?? 0)] : it.message ? [messageId(it.message)] : [])) };
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

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; joins ${logged.filter((l) => l.msg === "partitions assigned").length}; detect metrics ${JSON.stringify({ ...worker.detect?.metrics, lag: [...(worker.detect?.metrics.lag ?? [])] })}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('detect stage after kafkajs restarts its consumer', () => {
  it('goes on with the partitions it had open, past the records it had processed and never committed', async () => {
    // Partition 2's snapshot is refused until the consumer has joined the group a second time.
    let refuse2 = true;
    const load = worker.snapshots.load.bind(worker.snapshots);
    worker.snapshots.load = (group, topic, partition) => {
      if (partition === 2 && refuse2) return Promise.reject(new FloodgateError('FG_REDIS_UNAVAILABLE', 'redis away (test) while loading the snapshot of partition 2'));
      return load(group, topic, partition);
    };
    const joins = () => logged.filter((l) => l.msg === 'partitions assigned').length;

    const admin = worker.kafka.admin();
    await admin.connect();
    await ensureTopics(admin, cfg.kafka, log);
    await admin.disconnect();
    const producer = worker.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const send = async (partition: number, values: Buffer[]) => {
      for (let i = 0; i < values.length; i += 16) await producer.send({ topic: cfg.kafka.topics.events, acks: -1, messages: values.slice(i, i + 16).map((value) => ({ partition, value })) });
    };
    try {
      // Well over one fetch (1 MiB per partition) in each of partitions 0 and 1.
      const before = records(12_000, 1);
      const half = Math.ceil(before.values.length / 2);
      const bytes = before.values.slice(0, half).reduce((n, b) => n + b.length, 0);
      expect(bytes).toBeGreaterThan(2 << 20);
      await send(0, before.values.slice(0, half));
      await send(1, before.values.slice(half));
      await worker.start();
      await until('partitions 0 and 1 processed', () => worker.detect!.metrics.records >= before.values.length, 120_000);
      expect(joins()).toBe(1);

      // A record for partition 2: its batch fails until kafkajs gives up and restarts the consumer.
      const later = records(6_000, 2);
      expect(later.values.length).toBeGreaterThan(3);
      await send(2, later.values.slice(0, 1));
      await until('the consumer restarted', () => joins() >= 2, 120_000);
      refuse2 = false;
      // After the restart partition 0 is fetched from offset 0 again, every record of its first fetch processed already.
      await send(0, later.values.slice(1));
      const want = new Set([...before.ids, ...later.ids]).size;
      let stored = 0;
      const end = Date.now() + 90_000;
      while ((stored = await storedRows()) !== want && Date.now() < end) await new Promise((r) => setTimeout(r, 500));
      expect(stored, `rows stored; detect metrics ${JSON.stringify({ ...worker.detect?.metrics, lag: [...(worker.detect?.metrics.lag ?? [])] })}`).toBe(want);
      expect(worker.detect!.metrics.lag.get(0)).toBe(0);
    } finally {
      await producer.disconnect();
    }
  }, 300_000);
});
