/** Migrations against the real ClickHouse: from empty, re-run, and two workers at once. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickhouseClient, featuresOf, type ChClient } from '../../src/clickhouse/client.js';
import { sqlString } from '../../src/clickhouse/escape.js';
import { appliedVersions, latestVersion, migrate } from '../../src/clickhouse/migrations.js';
import { chConfig, dropDatabase, sharedClient, testDatabase } from './clickhouse-server.js';

const expectedTables = [
  'actions',
  'dead_letters',
  'decisions',
  'events',
  'events_per_minute',
  'events_per_minute_mv',
  'findings',
  'findings_per_minute',
  'findings_per_minute_mv',
  'messages',
  'messages_per_minute',
  'messages_per_minute_mv',
  'schema_migrations',
];

async function tablesOf(client: ChClient, db: string): Promise<{ name: string; engine: string; create: string }[]> {
  return client.query(`SELECT name, engine, create_table_query AS create FROM system.tables WHERE database = ${sqlString(db)} ORDER BY name`);
}

describe('ClickHouse migrations', () => {
  const dbs: string[] = [];
  let admin: ChClient;
  beforeAll(async () => {
    admin = await sharedClient('default');
  });
  afterAll(async () => {
    for (const db of dbs) await dropDatabase(admin, db);
    await admin.close();
  });

  it('creates every table from an empty server, records the version, and a re-run changes nothing', async () => {
    const db = testDatabase();
    dbs.push(db);
    const client = createClickhouseClient(chConfig({ database: db }));
    try {
      const first = await migrate(client, { retentionDays: 30 });
      expect(first.applied).toEqual([1]);
      expect(first.version).toBe(latestVersion);
      const tables = await tablesOf(client, db);
      expect(tables.map((t) => t.name)).toEqual(expectedTables);
      expect(tables.find((t) => t.name === 'events')!.engine).toBe('ReplacingMergeTree');
      expect(tables.find((t) => t.name === 'messages_per_minute')!.engine).toBe('AggregatingMergeTree');
      expect(tables.find((t) => t.name === 'findings_per_minute_mv')!.engine).toBe('MaterializedView');
      // TTL only where the server has it; the schema works either way.
      const server = await client.serverVersion();
      const eventsDdl = tables.find((t) => t.name === 'events')!.create;
      if (featuresOf(server).ttl) expect(eventsDdl).toMatch(/TTL ts \+ toIntervalDay\(30\)|TTL ts \+ INTERVAL 30 DAY/);
      else expect(eventsDdl).not.toContain('TTL');

      const again = await migrate(client, { retentionDays: 30 });
      expect(again.applied).toEqual([]);
      expect(again.version).toBe(latestVersion);
      expect((await tablesOf(client, db)).map((t) => t.name)).toEqual(expectedTables);
      expect(await appliedVersions(client, db)).toEqual([1]);
    } finally {
      await client.close();
    }
  });

  it('two workers migrating the same empty database at once both succeed, with one schema and one version', async () => {
    for (let round = 0; round < 3; round++) {
      const db = testDatabase();
      dbs.push(db);
      const a = createClickhouseClient(chConfig({ database: db }));
      const b = createClickhouseClient(chConfig({ database: db }));
      try {
        const [ra, rb] = await Promise.all([migrate(a, { retentionDays: 90 }), migrate(b, { retentionDays: 90 })]);
        expect(ra.version).toBe(latestVersion);
        expect(rb.version).toBe(latestVersion);
        // Each applied it or saw it applied; the record is one version either way.
        expect([...ra.applied, ...rb.applied].length).toBeGreaterThanOrEqual(1);
        expect(await appliedVersions(a, db)).toEqual([1]);
        expect((await tablesOf(a, db)).map((t) => t.name)).toEqual(expectedTables);
      } finally {
        await a.close();
        await b.close();
      }
    }
  });

  it('a database name that needs quoting works end to end', async () => {
    const db = `fgtest-${testDatabase().slice(7)}`; // a dash: not a plain identifier, so it must be quoted
    dbs.push(db);
    const client = createClickhouseClient({ ...chConfig(), database: db });
    try {
      const r = await migrate(client, { retentionDays: 7 });
      expect(r.version).toBe(latestVersion);
      expect((await tablesOf(client, db)).map((t) => t.name)).toEqual(expectedTables);
    } finally {
      await client.close();
    }
  });
});
