/**
 * Kafka client and topics for floodgate, from the `kafka` config section.
 * Topics are created by floodgate itself (brokers may disable auto-creation):
 * the configured partition count bounds how many detect workers share the
 * load, and retention bounds how far back a rebuilt worker can replay.
 */
import { promisify } from 'node:util';
import { constants as zlibConstants, gzip, unzip } from 'node:zlib';
import kafkajs, { CompressionTypes, Kafka, logLevel, Partitioners, type Admin, type PartitionMetadata, type SASLOptions } from 'kafkajs';
import type { KafkaConfig } from '../config/distributed.js';
import { FloodgateError } from '../core/errors.js';
import { kafkaLogCreator, type Logger } from './log.js';

const gzipAsync = promisify(gzip);
const unzipAsync = promisify(unzip);

/**
 * kafkajs' gzip at zlib's default level 6 was most of the compression cost
 * in ship and detect; level 1 compresses about 2.4 times faster for a ratio
 * of about 7.5 instead of 10.6 on our records (measured on the bench's
 * items), and it is the same gzip format for every reader. kafkajs has one
 * codec table per process, so this replaces its gzip codec for all our
 * clients; decompression is unchanged.
 */
function useFastGzip(): void {
  // CompressionCodecs is not among the names Node finds in kafkajs' CommonJS exports: through the default.
  kafkajs.CompressionCodecs[CompressionTypes.GZIP] = () => ({
    compress: (encoder: { buffer: Buffer }) => gzipAsync(encoder.buffer, { level: zlibConstants.Z_BEST_SPEED }),
    decompress: (buffer: Buffer) => unzipAsync(buffer),
  });
}

export function createKafka(cfg: KafkaConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): Kafka {
  useFastGzip();
  let sasl: SASLOptions | undefined;
  if (cfg.sasl) {
    const password = env[cfg.sasl.passwordEnv];
    if (password === undefined || password === '') {
      throw new FloodgateError('FG_CONFIG_INVALID', `kafka.sasl.passwordEnv: environment variable ${cfg.sasl.passwordEnv} is not set`);
    }
    sasl = { mechanism: cfg.sasl.mechanism, username: cfg.sasl.username, password } as SASLOptions;
  }
  return new Kafka({
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    ssl: cfg.ssl,
    ...(sasl ? { sasl } : {}),
    logLevel: logLevel.INFO,
    logCreator: kafkaLogCreator(log),
    // Retries are ours to pace (ship stops reading, detect waits); kafkajs' own
    // retry covers short blips.
    retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
    connectionTimeout: 3000,
  });
}

export interface TopicPlan {
  topic: string;
  partitions: number;
  config: Record<string, string>;
}

export function topicPlan(cfg: KafkaConfig): TopicPlan[] {
  const retention = String(cfg.retentionHours * 3600_000);
  return [
    { topic: cfg.topics.lines, partitions: cfg.partitions, config: { 'retention.ms': retention, 'cleanup.policy': 'delete' } },
    { topic: cfg.topics.events, partitions: cfg.partitions, config: { 'retention.ms': retention, 'cleanup.policy': 'delete' } },
    { topic: cfg.topics.deadLetter, partitions: 1, config: { 'retention.ms': String(Math.max(cfg.retentionHours, 7 * 24) * 3600_000), 'cleanup.policy': 'delete' } },
  ];
}

/**
 * Create missing topics; existing ones are left alone (changing partition
 * counts moves keys between partitions, an operator's decision). Returns the
 * partition count of each topic as it is on the broker.
 */
export async function ensureTopics(admin: Admin, cfg: KafkaConfig, log: Logger): Promise<Map<string, number>> {
  const plan = topicPlan(cfg);
  const existing = new Set(await admin.listTopics());
  const missing = plan.filter((p) => !existing.has(p.topic));
  if (missing.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((p) => ({
        topic: p.topic,
        numPartitions: p.partitions,
        replicationFactor: cfg.replicationFactor,
        configEntries: Object.entries(p.config).map(([name, value]) => ({ name, value })),
      })),
    });
    log.info({ topics: missing.map((p) => p.topic) }, 'created topics');
  }
  const meta = await admin.fetchTopicMetadata({ topics: plan.map((p) => p.topic) });
  return new Map(meta.topics.map((t) => [t.name, t.partitions.length]));
}

/**
 * Partition of a key as producers place it (kafkajs' default partitioner:
 * murmur2, the Java client's), for when we address partitions explicitly.
 */
export function partitionFor(key: string, partitions: number): number {
  let meta = partitionMetas.get(partitions);
  if (meta === undefined) {
    meta = Array.from({ length: partitions }, (_, i): PartitionMetadata => ({ partitionErrorCode: 0, partitionId: i, leader: 0, replicas: [0], isr: [0] }));
    partitionMetas.set(partitions, meta);
  }
  return defaultPartitioner({ topic: '', partitionMetadata: meta, message: { key, value: null } });
}

const defaultPartitioner = Partitioners.DefaultPartitioner();
const partitionMetas = new Map<number, PartitionMetadata[]>();
