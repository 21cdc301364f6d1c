/**
 * What the in-process stage tests feed a stage and how they clean up after
 * it: generated log lines as the shipper sends them, and the private topics
 * and Redis keys of a test deployment.
 */
import type { Kafka } from 'kafkajs';
import type { Redis } from 'ioredis';
import { generateLines } from '../../../bench/generate.js';
import { validateConfig, type FloodgateConfig } from '../../../src/config/config.js';
import type { KafkaConfig } from '../../../src/config/distributed.js';
import { encodeChunk } from '../../../src/distributed/wire.js';
import { KAFKA_BROKERS, REDIS_URL } from './services.js';

/**
 * The config of a private test deployment named `id` (its topics, group,
 * Redis prefix) on the test services; `kafka`, `clickhouse` and `redis`
 * add to or override its sections.
 */
export function stageConfig(id: string, o: { kafka: Record<string, unknown>; clickhouse?: Record<string, unknown>; redis?: Record<string, unknown> }): FloodgateConfig {
  return validateConfig({
    timezone: 'UTC',
    site: { localDomains: ['example.com'] },
    kafka: { brokers: KAFKA_BROKERS, topics: { lines: `${id}.lines`, events: `${id}.events`, deadLetter: `${id}.dead` }, groupId: id, ...o.kafka },
    ...(o.clickhouse !== undefined ? { clickhouse: o.clickhouse } : {}),
    redis: { url: REDIS_URL, keyPrefix: `${id}:`, ...o.redis },
  });
}

/** A generated log of `lines` lines (seed `seed`) as lines-topic records of `perChunk` lines each, with their number. */
export function shipperChunks(o: { host: string; seed: number; lines: number; perChunk: number }): { values: Buffer[]; lines: number } {
  const all = [...generateLines({ lines: o.lines, seed: o.seed })];
  const values: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < all.length; i += o.perChunk) {
    const part = all.slice(i, i + o.perChunk);
    const offsets = part.map((l) => {
      const at = offset;
      offset += Buffer.byteLength(l) + 1;
      return at;
    });
    values.push(encodeChunk({ host: o.host, file: '/var/log/mail.log', source: `${o.host}:${o.seed}:1:0`, format: 'auto', mtime: Date.UTC(2026, 10, 28), offsets, lines: part }));
  }
  return { values, lines: all.length };
}

/** Delete the deployment's topics and, given a Redis client, its keys (then close that client). */
export async function dropDeployment(kafka: Kafka, topics: KafkaConfig['topics'], redis?: { client: Redis; keyPrefix: string }): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topics.lines, topics.events, topics.deadLetter] }).catch(() => undefined);
  await admin.disconnect();
  if (redis === undefined) return;
  const keys = await redis.client.keys(`${redis.keyPrefix}*`);
  if (keys.length > 0) await redis.client.del(...keys);
  redis.client.disconnect();
}
