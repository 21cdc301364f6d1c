/**
 * What the in-process stage tests feed a stage and how they clean up after
 * it: generated log lines as the shipper sends them, and removing a test
 * deployment.
 */
import { generateLines } from '../../../bench/generate.js';
import { removeDeployment } from '../../../bench/remove-deployment.js';
import { validateConfig, type FloodgateConfig } from '../../../src/config/config.js';
import { encodeChunk } from '../../../src/distributed/wire.js';
import { CLICKHOUSE_URL, KAFKA_BROKERS, REDIS_URL } from './services.js';

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

/** Remove the test deployment `id` (its topics, Redis keys and ClickHouse database) from the test services. */
export function removeTestDeployment(id: string): Promise<void> {
  return removeDeployment({ kafka: KAFKA_BROKERS, clickhouse: CLICKHOUSE_URL, redis: REDIS_URL }, id, 'fg-test-cleanup');
}
