/**
 * Removing a throw-away deployment from the real services: its ClickHouse
 * database, its Kafka topics and its Redis keys, all named after its id
 * (database `id`, topics `id.*`, keys `id:*`). Shared by the Kafka bench and
 * the service tests, which both create such deployments by the dozen.
 * Best effort throughout: a leftover only costs space until the services'
 * own retention, and the caller is usually cleaning up after a failure.
 */
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { sqlIdentifier } from '../src/clickhouse/escape.js';

export interface DeploymentServices {
  kafka: string[];
  clickhouse: string;
  redis: string;
}

export async function removeDeployment(services: DeploymentServices, id: string, clientId = 'floodgate-cleanup'): Promise<void> {
  await fetch(`${services.clickhouse}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${sqlIdentifier(id)}` }).catch(() => undefined);
  const admin = new Kafka({ clientId, brokers: services.kafka, logLevel: logLevel.NOTHING }).admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${id}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } catch {
    // best effort (see above)
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const redis = new Redis(services.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${id}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // best effort
  } finally {
    redis.disconnect();
  }
}
