// The real services that the distributed mode and its tests rely on: Kafka
// (with the idempotent and transactional producers floodgate uses), ClickHouse
// (through @clickhouse/client, on the CI server's 18.16) and Redis; and
// scripts/services.sh itself (status, idempotent `up`).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/kafka-deployment.js';
import { CLICKHOUSE_URL, KAFKA_BROKERS, parseStatus, REDIS_URL, serviceCtl } from './helpers/services.js';

const runId = randomBytes(4).toString('hex');

/** kafkajs logs go to this list instead of the test output; a failing test prints them. */
const kafkaLog: string[] = [];
const kafka = new Kafka({
  clientId: `fgtest-services-${runId}`,
  brokers: KAFKA_BROKERS,
  logLevel: logLevel.WARN,
  logCreator: () => (entry) => {
    kafkaLog.push(`${entry.namespace} ${entry.log.message}`);
  },
});

interface Received {
  key: string;
  value: string;
  partition: number;
}

/**
 * Read `topic` from the beginning until `until` says enough arrived, in a
 * throw-away consumer group. Rejects after `timeoutMs` with what did arrive.
 */
async function consume(
  topic: string,
  until: (got: Received[]) => boolean,
  opts: { readUncommitted?: boolean; timeoutMs?: number } = {},
): Promise<Received[]> {
  const consumer: Consumer = kafka.consumer({
    groupId: `fgtest-read-${runId}-${randomBytes(3).toString('hex')}`,
    readUncommitted: opts.readUncommitted ?? false,
    maxWaitTimeInMs: 200,
  });
  const got: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`consumed ${got.length} messages from ${topic} before timing out: ${JSON.stringify(got.map((m) => m.value))}\n${kafkaLog.join('\n')}`)),
        opts.timeoutMs ?? 60_000,
      );
      consumer
        .run({
          eachMessage: async ({ message, partition }: { message: KafkaMessage; partition: number }) => {
            got.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '', partition });
            if (until(got)) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

describe('Kafka (kafkajs against the KRaft broker)', () => {
  let admin: Admin;
  const plainTopic = `fgtest-services-plain-${runId}`;
  const txInput = `fgtest-services-txin-${runId}`;
  const txOutput = `fgtest-services-txout-${runId}`;

  beforeAll(async () => {
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin.deleteTopics({ topics: [plainTopic, txInput, txOutput] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('creates a topic with the partitions asked for (auto-creation is off)', async () => {
    expect(await admin.createTopics({ topics: [{ topic: plainTopic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true })).toBe(true);
    expect(await admin.listTopics()).toContain(plainTopic);
    const meta = await admin.fetchTopicMetadata({ topics: [plainTopic] });
    expect(meta.topics[0]?.partitions).toHaveLength(3);

    // floodgate creates its topics itself; a typo'd topic must not spring into existence.
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 1 } });
    await producer.connect();
    try {
      await expect(producer.send({ topic: `fgtest-services-nope-${runId}`, messages: [{ value: 'x' }], timeout: 2000 })).rejects.toThrow();
    } finally {
      await producer.disconnect();
    }
    expect(await admin.listTopics()).not.toContain(`fgtest-services-nope-${runId}`);
  });

  it('round-trips keyed messages through an idempotent, compressed producer', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const sent = Array.from({ length: 200 }, (_, i) => ({ key: `mta${i % 5}`, value: `line ${i}` }));
    try {
      const acks = await producer.send({ topic: plainTopic, acks: -1, compression: 1 /* gzip */, messages: sent });
      expect(acks.length).toBeGreaterThan(0);
      expect(acks.every((a) => a.errorCode === 0)).toBe(true);
    } finally {
      await producer.disconnect();
    }

    const got = await consume(plainTopic, (g) => g.length >= sent.length);
    expect(got.map((m) => m.value).sort()).toEqual(sent.map((m) => m.value).sort());
    // One key, one partition: per-host order is what the correlator relies on.
    const partitionsByKey = new Map<string, Set<number>>();
    for (const m of got) partitionsByKey.set(m.key, (partitionsByKey.get(m.key) ?? new Set()).add(m.partition));
    for (const [key, parts] of partitionsByKey) expect(parts.size, `key ${key}`).toBe(1);
    for (const key of partitionsByKey.keys()) {
      const inOrder = got.filter((m) => m.key === key).map((m) => Number(m.value.split(' ')[1]));
      expect(inOrder).toEqual([...inOrder].sort((a, b) => a - b));
    }
  });

  it('commits transactions with their consumer offsets; read-committed readers never see aborted data', async () => {
    await admin.createTopics({
      topics: [
        { topic: txInput, numPartitions: 1, replicationFactor: 1 },
        { topic: txOutput, numPartitions: 1, replicationFactor: 1 },
      ],
      waitForLeaders: true,
    });
    const groupId = `fgtest-services-tx-${runId}`;
    const producer = kafka.producer({
      transactionalId: `fgtest-services-tx-${runId}`,
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      const first = await producer.transaction();
      await first.send({ topic: txOutput, messages: [{ value: 'c1' }, { value: 'c2' }, { value: 'c3' }] });
      await first.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: txInput, partitions: [{ partition: 0, offset: '3' }] }] });
      await first.commit();

      const second = await producer.transaction();
      await second.send({ topic: txOutput, messages: [{ value: 'aborted1' }, { value: 'aborted2' }] });
      await second.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: txInput, partitions: [{ partition: 0, offset: '5' }] }] });
      await second.abort();

      const third = await producer.transaction();
      await third.send({ topic: txOutput, messages: [{ value: 'c4' }] });
      await third.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: txInput, partitions: [{ partition: 0, offset: '4' }] }] });
      await third.commit();
    } finally {
      await producer.disconnect();
    }

    // c4 comes after the aborted batch in the log: once it arrives, the aborted batch has been passed.
    const committed = await consume(txOutput, (g) => g.some((m) => m.value === 'c4'));
    expect(committed.map((m) => m.value)).toEqual(['c1', 'c2', 'c3', 'c4']);
    // The aborted records are in the log; only the isolation level hides them.
    const everything = await consume(txOutput, (g) => g.some((m) => m.value === 'c4'), { readUncommitted: true });
    expect(everything.map((m) => m.value)).toEqual(['c1', 'c2', 'c3', 'aborted1', 'aborted2', 'c4']);
    // The group's offset is the last committed transaction's, not the aborted one's.
    const offsets = await admin.fetchOffsets({ groupId, topics: [txInput] });
    expect(offsets[0]?.partitions[0]?.offset).toBe('4');
  });
});

describe('ClickHouse (@clickhouse/client against the CI server)', () => {
  let ch: ClickHouseClient;
  const database = `fgtest_services_${runId}`;

  beforeAll(() => {
    ch = createClient({ url: CLICKHOUSE_URL });
  });

  afterAll(async () => {
    await ch.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
    await ch.close();
  });

  it('answers ping and SELECT version()', async () => {
    expect((await ch.ping()).success).toBe(true);
    const rows = await (await ch.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json<{ v: string }>();
    expect(rows[0]?.v).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('round-trips rows through CREATE, a JSONEachRow INSERT and SELECT, awkward strings intact', async () => {
    await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
    await ch.command({
      query: `CREATE TABLE ${database}.lines (id UInt64, host String, ts DateTime('UTC'), tags Array(String), note Nullable(String))
              ENGINE = MergeTree ORDER BY (host, id)`,
    });
    const rows = [
      { id: 1, host: 'mta1', ts: 1_704_067_200, tags: ['a'], note: null },
      { id: 2, host: "it's \\ \"quoted\"\n", ts: 1_704_067_260, tags: [], note: 'üñí ✓' },
      { id: 3, host: "'; DROP TABLE lines; --", ts: 1_704_067_320, tags: ['x', 'y'], note: '' },
    ];
    await ch.insert({ table: `${database}.lines`, values: rows, format: 'JSONEachRow' });
    const back = await (
      await ch.query({ query: `SELECT id, host, toUnixTimestamp(ts) AS ts, tags, note FROM ${database}.lines ORDER BY id`, format: 'JSONEachRow' })
    ).json<{ id: string; host: string; ts: number; tags: string[]; note: string | null }>();
    // JSONEachRow quotes 64-bit integers, on 18.16 as on current servers.
    expect(back).toEqual(rows.map((r) => ({ ...r, id: String(r.id) })));
  });
});

describe('Redis', () => {
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    redis.disconnect();
  });

  it('answers PING and keeps a value', async () => {
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    const key = `fgtest:services:${runId}`;
    await redis.set(key, 'v1', 'PX', 10_000);
    expect(await redis.get(key)).toBe('v1');
    expect(await redis.del(key)).toBe(1);
  });
});

describe('scripts/services.sh', () => {
  it('reports every service up, and a second `up` restarts nothing and is quick', async () => {
    const before = parseStatus((await serviceCtl('status')).stdout);
    expect([...before.keys()].sort()).toEqual(['clickhouse', 'kafka', 'postfix', 'redis']);
    for (const s of before.values()) {
      expect(s.state, s.name).toBe('up');
      expect(s.version, s.name).toMatch(/^\d+\.\d+/);
      expect(s.startedBy, s.name).not.toBe('-');
    }

    const again = await serviceCtl('up');
    // Generous against the 2 s goal: this machine's two cores are shared.
    expect(again.ms).toBeLessThan(5000);

    const after = parseStatus((await serviceCtl('status')).stdout);
    for (const [name, s] of before) {
      expect(after.get(name)?.state, name).toBe('up');
      expect(after.get(name)?.pid, name).toBe(s.pid);
    }
  });

  it('stops and starts Postfix and Dovecot, and `up` returns once they run (no daemon keeps its output open)', async () => {
    await serviceCtl('down', 'postfix', 60_000);
    expect(parseStatus((await serviceCtl('status', 'postfix')).stdout).get('postfix')?.state).toBe('down');
    // serviceCtl resolves when the script's stdout and stderr close: a daemon holding them would hang it until the timeout.
    const up = await serviceCtl('up', 'postfix', 60_000);
    expect(up.ms).toBeLessThan(30_000);
    expect(parseStatus((await serviceCtl('status', 'postfix')).stdout).get('postfix')?.state).toBe('up');
  }, 180_000);

  it('keeps a ClickHouse it starts in memory or on disk, as FLOODGATE_CLICKHOUSE_STORAGE says, across down and up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fg-services-'));
    const env = { FLOODGATE_SERVICES_DIR: dir, FLOODGATE_CLICKHOUSE_HTTP_PORT: String(await freePort()), FLOODGATE_CLICKHOUSE_TCP_PORT: String(await freePort()) };
    const url = `http://127.0.0.1:${env.FLOODGATE_CLICKHOUSE_HTTP_PORT}`;
    const query = async (sql: string) => {
      const r = await fetch(url, { method: 'POST', body: sql });
      if (!r.ok) throw new Error(`${sql}: ${await r.text()}`);
      return (await r.text()).trim();
    };
    const memoryDirs: string[] = [];
    try {
      for (const storage of ['memory', 'disk'] as const) {
        // The disk run also checks that an empty allocator setting leaves jemalloc's defaults.
        const e = { ...env, FLOODGATE_CLICKHOUSE_STORAGE: storage, ...(storage === 'disk' ? { FLOODGATE_CLICKHOUSE_MALLOC_CONF: '' } : {}) };
        const up = await serviceCtl('up', 'clickhouse', 120_000, e);
        const data = /data (?:in memory|on disk): (\S+) \(log /.exec(up.stderr)?.[1];
        if (storage === 'memory') {
          expect(data).toMatch(/^\/dev\/shm\/floodgate-clickhouse-/);
          memoryDirs.push(data!);
        } else {
          expect(data).toBe(join(dir, 'clickhouse', 'data'));
        }
        const status = parseStatus((await serviceCtl('status', 'clickhouse', 30_000, e)).stdout).get('clickhouse');
        expect(status?.address).toContain(`data:${storage}`);
        // The server runs with the allocator setting services.sh gives it (see its header for why).
        const malloc = readFileSync(`/proc/${status!.pid}/environ`, 'utf8').split('\0').find((v) => v.startsWith('MALLOC_CONF='));
        expect(malloc).toBe(storage === 'memory' ? 'MALLOC_CONF=narenas:2,dirty_decay_ms:-1,muzzy_decay_ms:-1' : 'MALLOC_CONF=');
        // ...and says so when it starts, so that its memory is no surprise.
        expect(/allocator keeps the memory it frees/.test(up.stderr)).toBe(storage === 'memory');
        await query(`CREATE TABLE default.kept_${storage} (x UInt8) ENGINE = MergeTree ORDER BY x`);
        await query(`INSERT INTO default.kept_${storage} VALUES (7)`);
        // The table's files are where the storage says, and only there.
        expect(existsSync(join(data!, 'data', 'default', `kept_${storage}`))).toBe(true);
        if (storage === 'memory') expect(existsSync(join(dir, 'clickhouse', 'data', 'data', 'default', `kept_${storage}`))).toBe(false);
        await serviceCtl('down', 'clickhouse', 60_000, e);
        await serviceCtl('up', 'clickhouse', 120_000, e);
        expect(await query(`SELECT sum(x) FROM default.kept_${storage}`)).toBe('7');
        await serviceCtl('down', 'clickhouse', 60_000, e);
      }
      await expect(serviceCtl('up', 'clickhouse', 30_000, { ...env, FLOODGATE_CLICKHOUSE_STORAGE: 'ram' })).rejects.toThrow(/FLOODGATE_CLICKHOUSE_STORAGE must be memory, disk or auto \(got 'ram'\)/);
    } finally {
      await serviceCtl('down', 'clickhouse', 60_000, env).catch(() => undefined);
      for (const d of memoryDirs) rmSync(d, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unknown service names', async () => {
    await expect(serviceCtl('status', 'postgres' as never)).rejects.toThrow(/unknown service 'postgres'/);
  });
});
