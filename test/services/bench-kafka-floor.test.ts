// The kafka-floor bench phase against the real Kafka and ClickHouse: every
// line arrives (one with a tab and a backslash, which TabSeparated must
// escape, and a last line without a newline), and it leaves no topic or
// database behind.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaFloorPhase } from '../../bench/kafka-floor.js';
import { CLICKHOUSE_URL, KAFKA_BROKERS, REDIS_URL } from './helpers/services.js';

const dir = mkdtempSync(join(tmpdir(), 'fg-floor-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench: kafka-floor phase', () => {
  it('moves every line through Kafka into ClickHouse and cleans up', async () => {
    const env = { FLOODGATE_BENCH_KAFKA: process.env.FLOODGATE_BENCH_KAFKA, FLOODGATE_BENCH_CLICKHOUSE: process.env.FLOODGATE_BENCH_CLICKHOUSE, FLOODGATE_BENCH_REDIS: process.env.FLOODGATE_BENCH_REDIS };
    process.env.FLOODGATE_BENCH_KAFKA = KAFKA_BROKERS.join(',');
    process.env.FLOODGATE_BENCH_CLICKHOUSE = CLICKHOUSE_URL;
    process.env.FLOODGATE_BENCH_REDIS = REDIS_URL;
    try {
      const lines: string[] = [];
      for (let i = 0; i < 30_000; i++) lines.push(`Dec  7 10:00:00 mx1 postfix/smtpd[${i}]: connect from unknown[192.0.2.${i % 250}]`);
      lines[12_345] = 'Dec  7 10:00:00 mx1 postfix/smtpd[1]: warning: odd\tfield C:\\path';
      const file = join(dir, 'mail.log');
      writeFileSync(file, lines.join('\n')); // no newline after the last line
      const r = await kafkaFloorPhase({ file, lines: lines.length });
      expect(r.lines).toBe(lines.length);
      const cpu = r.cpuMicrosPerLine as Record<string, number>;
      expect(cpu.total).toBeGreaterThan(0);
      expect(cpu.total).toBeCloseTo(cpu.producer! + cpu.consumer! + cpu.kafka! + cpu.clickhouse!, 1);

      const admin = new Kafka({ clientId: 'floor-test', brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      const topics = await admin.listTopics();
      await admin.disconnect();
      expect(topics.filter((t) => t.startsWith('fgfloor'))).toEqual([]);
      const dbs = await (await fetch(`${CLICKHOUSE_URL}/?query=${encodeURIComponent("SELECT name FROM system.databases WHERE name LIKE 'fgfloor%'")}`)).text();
      expect(dbs.trim()).toBe('');
    } finally {
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
});
