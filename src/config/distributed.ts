/**
 * Config of the distributed mode (`floodgate ship|detect|api`): where Kafka,
 * ClickHouse and Redis are, and how big batches and buffers may grow. The
 * defaults point at loopback, which is what scripts/services.sh starts, so a
 * developer's `floodgate detect` works with no config at all. Secrets are
 * named by environment variable (`passwordEnv`), never written in the file.
 */
import { z } from 'zod';

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9092');

export const kafkaSchema = z
  .object({
    brokers: z.array(hostPort).min(1).default(['127.0.0.1:9092']),
    clientId: z.string().min(1).default('floodgate'),
    /** Topic names. `lines` holds raw log lines keyed by host; `events` holds parsed events and messages keyed by entity. */
    topics: z
      .object({
        lines: z.string().min(1).default('floodgate.lines'),
        events: z.string().min(1).default('floodgate.events'),
        deadLetter: z.string().min(1).default('floodgate.dead-letter'),
      })
      .strict()
      .default({ lines: 'floodgate.lines', events: 'floodgate.events', deadLetter: 'floodgate.dead-letter' }),
    /** Partitions given to topics floodgate creates; the most detect workers that can share the load. */
    partitions: z.number().int().positive().max(1024).default(6),
    replicationFactor: z.number().int().positive().max(16).default(1),
    retentionHours: z.number().int().positive().default(72),
    /** Consumer group of `floodgate detect` workers. */
    groupId: z.string().min(1).default('floodgate-detect'),
    /** Most lines per record on the lines topic (one follower batch; a partial batch is sent as soon as it is read). */
    batchLines: z.number().int().positive().max(100_000).default(2000),
    /** Of the lines topic (shippers on the mail hosts to the brokers): gzip is built into kafkajs; none trades bandwidth for CPU. */
    compression: z.enum(['gzip', 'none']).default('gzip'),
    /**
     * Of the events topic, which detect workers write and read among
     * themselves. none by default: compressing and decompressing every
     * parsed event was a fifth of a detect worker's CPU in the Kafka bench
     * (88 -> 69 us per line), for about 7x the bytes on the brokers' disks
     * over kafka.retentionHours.
     */
    eventsCompression: z.enum(['gzip', 'none']).default('none'),
    /**
     * Longest the broker holds a parse stage's fetch of the lines topic
     * while fewer than 64 KiB of lines wait. Each fetch becomes one Kafka
     * transaction (several requests, and a marker per partition written by
     * the broker), so a lower wait stores findings sooner and costs more
     * transactions: at 10,000 lines/s in the Kafka bench, 20 instead of 50
     * took the finding's p50 from about 245 to 164 ms, for about a tenth of
     * a core more across the broker, ClickHouse and the detect worker.
     */
    linesFetchWaitMs: z.number().int().positive().max(10_000).default(50),
    ssl: z.boolean().default(false),
    sasl: z
      .object({
        mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
        username: z.string().min(1),
        passwordEnv: z.string().min(1),
      })
      .strict()
      .optional(),
  })
  .strict();

export const clickhouseSchema = z
  .object({
    url: z.string().url().default('http://127.0.0.1:8123'),
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a plain identifier').default('floodgate'),
    username: z.string().min(1).default('default'),
    passwordEnv: z.string().min(1).optional(),
    /**
     * Most rows per insert; a partial batch of events or messages goes after flushMs. Bigger, rarer
     * inserts cost ClickHouse less: at 35,000 event rows/s, 18.16 spent 11-13 µs of CPU per row in
     * inserts of 5,000 and 3-4 µs in inserts of a second's rows. When maxBufferedRows rows wait, they go at once.
     */
    batchRows: z.number().int().positive().max(1_000_000).default(50_000),
    flushMs: z.number().int().positive().max(60_000).default(1000),
    /** The longest findings, decisions and actions wait: few rows, and what an operator waits to see. */
    urgentFlushMs: z.number().int().nonnegative().max(60_000).default(100),
    /**
     * Rows held while ClickHouse is down; beyond this the consumer pauses (no loss, bounded memory).
     * An event row is some 400 bytes (more for long log lines): the default holds about 80 MB, the
     * most about 2 GB.
     */
    maxBufferedRows: z.number().int().positive().max(5_000_000).default(200_000),
    /** Rows older than this are dropped by a table TTL. */
    retentionDays: z.number().int().positive().max(36500).default(90),
  })
  .strict();

export const redisSchema = z
  .object({
    url: z.string().regex(/^rediss?:\/\//, 'expected redis://host:port[/db]').default('redis://127.0.0.1:6379'),
    passwordEnv: z.string().min(1).optional(),
    /** Prefix of every key floodgate writes, so several deployments can share one Redis. */
    keyPrefix: z.string().default('floodgate:'),
    /** How often a detect worker checkpoints the state of its partitions. */
    snapshotIntervalMs: z.number().int().positive().max(600_000).default(5000),
  })
  .strict();

export const shipSchema = z
  .object({
    /** Where `floodgate ship` keeps the read offsets of its inputs. */
    statePath: z.string().min(1).default('floodgate-ship.json'),
    /** Kafka key of this shipper's lines and host of lines that carry none; default: the machine's hostname. */
    host: z.string().min(1).max(253).optional(),
  })
  .strict();

export type KafkaConfig = z.output<typeof kafkaSchema>;
export type ClickhouseConfig = z.output<typeof clickhouseSchema>;
export type RedisConfig = z.output<typeof redisSchema>;
export type ShipConfig = z.output<typeof shipSchema>;
