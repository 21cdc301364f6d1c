/**
 * The sink against real servers: ClickHouse absent, then appearing; killed
 * with SIGKILL mid-stream and restarted; rows the server refuses. The
 * outage runs on a private clickhouse-server, so the shared one stays up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClickhouseError, createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { ClickhouseQueries } from '../../src/clickhouse/queries.js';
import { eventRow, type EventRow } from '../../src/clickhouse/rows.js';
import { ClickhouseSink } from '../../src/clickhouse/sink.js';
import type { Event } from '../../src/core/events.js';
import { renderMetrics } from '../../src/api/metrics.js';
import { chConfig, dropDatabase, PRIVATE_PASSWORD, PRIVATE_USER, PrivateClickhouse, sharedClient, testDatabase } from './clickhouse-server.js';

/** n distinct event rows (distinct lines of one file). */
function rows(n: number, from = 0, file = '/var/log/mail.log'): EventRow[] {
  const out: EventRow[] = [];
  for (let i = from; i < from + n; i++) {
    const e: Event = { kind: 'auth', ts: Date.UTC(2026, 10, 27, 10, 0, 0) + i, host: `mx${i % 3}`, program: 'saslauthd', src: { file, offset: i * 100 }, source: 'saslauthd', protocol: 'smtp', outcome: 'failure', account: `user${i % 50}@example.com`, ip: '203.0.113.9' };
    out.push(eventRow(e, 0));
  }
  return out;
}

const settled = async (p: Promise<unknown>, ms: number): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, ms));
  return done;
};

describe('ClickhouseSink: outage on a private server', { timeout: 120_000 }, () => {
  let ch: PrivateClickhouse;
  let client: ChClient;
  beforeAll(async () => {
    ch = await PrivateClickhouse.create();
    client = createClickhouseClient(chConfig({ url: ch.url, database: 'floodgate' }), { requestTimeoutMs: 5000 });
    // The schema exists before the outage, as it does for a worker (it migrates at start, before any insert).
    await ch.start();
    await migrate(client, { retentionDays: 30 });
    await ch.kill();
  });
  afterAll(async () => {
    await client.close();
    await ch.dispose();
  });

  it('logs in with the password passwordEnv names; a wrong password is an unavailable server whose error does not quote it', async () => {
    const cfg = chConfig({ url: ch.url, database: 'floodgate', username: PRIVATE_USER, passwordEnv: 'FG_TEST_CH_PASSWORD' });
    const good = createClickhouseClient(cfg, { env: { FG_TEST_CH_PASSWORD: PRIVATE_PASSWORD } });
    const bad = createClickhouseClient(cfg, { env: { FG_TEST_CH_PASSWORD: PRIVATE_PASSWORD + 'x' } });
    try {
      await ch.start();
      // 18.16 has no currentUser(): the running query's own row in system.processes names its user.
      const [row] = await good.query<{ u: string }>("SELECT user AS u FROM system.processes WHERE query LIKE '%fg-whoami%'");
      expect(row!.u).toBe(PRIVATE_USER);
      const err = await bad.query('SELECT 1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClickhouseError);
      expect(err).toMatchObject({ kind: 'connection', code: 'FG_CLICKHOUSE_UNAVAILABLE' });
      expect((err as Error).message).not.toContain(PRIVATE_PASSWORD);
    } finally {
      await good.close();
      await bad.close();
      await ch.kill();
    }
  });

  it('nothing listens: rows stay buffered and whenRoom blocks at the cap; the server appears: every row is stored once', async () => {
    const sink = new ClickhouseSink(client, { batchRows: 400, flushMs: 20, maxBufferedRows: 1000, retryBaseMs: 20, retryMaxMs: 200 });
    sink.add('events', rows(600));
    expect(await settled(sink.whenRoom(), 10)).toBe(true); // below the cap
    sink.add('events', rows(600, 600));
    expect(sink.buffered).toBe(1200);
    const room = sink.whenRoom();
    const flushed = sink.flush();
    expect(await settled(room, 700)).toBe(false); // the consumer would be paused now
    expect(await settled(flushed, 0)).toBe(false);
    expect(sink.buffered).toBe(1200); // nothing dropped
    const st = sink.status();
    expect(st.lastError).toMatchObject({ kind: 'connection' });
    expect(renderMetrics(sink.metricFamilies())).toMatch(/^floodgate_clickhouse_insert_retries_total\{table="events"\} [1-9]\d*$/m);

    await ch.start();
    await flushed;
    await room;
    expect(sink.buffered).toBe(0);
    await sink.close();
    const q = new ClickhouseQueries(client);
    expect(await q.idCounts('events')).toMatchObject({ ids: 1200, final: 1200 });
    const epm = await q.eventsPerMinute({ since: 0, until: Date.UTC(2100, 0, 1) });
    expect(epm.reduce((s, r) => s + r.events, 0)).toBe(1200);
    const text = renderMetrics(sink.metricFamilies());
    expect(text).toMatch(/^floodgate_clickhouse_rows_inserted_total\{table="events"\} 1200$/m);
    expect(text).toMatch(/^floodgate_clickhouse_buffered_rows 0$/m);
    expect(text).toMatch(/^floodgate_clickhouse_batch_rows_max\{table="events"\} 400$/m);
  });

  it('killed with SIGKILL mid-stream and restarted: no row lost, none counted twice', async () => {
    const sink = new ClickhouseSink(client, { batchRows: 500, flushMs: 10, maxBufferedRows: 3000, retryBaseMs: 20, retryMaxMs: 300 });
    const total = 20_000;
    let added = 0;
    // A producer that respects whenRoom, like the consumer does.
    const producer = (async () => {
      while (added < total) {
        await sink.whenRoom();
        sink.add('events', rows(250, 100_000 + added, '/var/log/killed.log'));
        added += 250;
        expect(sink.buffered).toBeLessThanOrEqual(3000 + 250);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    await ch.kill();
    const during = added;
    await new Promise((r) => setTimeout(r, 1500));
    expect(added - during).toBeLessThanOrEqual(3000 + 250); // paused at the cap while down
    expect(sink.buffered).toBeGreaterThan(0);
    await ch.start();
    await producer;
    await sink.flush();
    await sink.close();
    expect(Number(/^floodgate_clickhouse_insert_retries_total\{table="events"\} (\d+)$/m.exec(renderMetrics(sink.metricFamilies()))![1])).toBeGreaterThan(0);
    const q = new ClickhouseQueries(client);
    const [n] = await client.query<{ ids: string }>("SELECT uniqExact(id) AS ids FROM `floodgate`.events WHERE file = '/var/log/killed.log'");
    const [f] = await client.query<{ n: string }>("SELECT count() AS n FROM `floodgate`.events FINAL WHERE file = '/var/log/killed.log'");
    expect(Number(n!.ids)).toBe(total);
    expect(Number(f!.n)).toBe(total);
    // The per-minute aggregate counts each once, even if a batch was stored twice around the kill.
    const epm = await q.eventsPerMinute({ since: 0, until: Date.UTC(2100, 0, 1) });
    expect(epm.reduce((s, r) => s + r.events, 0)).toBe(1200 + total);
  });
});

describe('ClickhouseSink: rows the server refuses', () => {
  const db = testDatabase();
  let client: ChClient;
  beforeAll(async () => {
    await (await sharedClient('default')).close();
    client = createClickhouseClient(chConfig({ database: db }));
    await migrate(client, { retentionDays: 30 });
  });
  afterAll(async () => {
    await dropDatabase(client, db);
    await client.close();
  });

  it('isolates each malformed row, stores all its batch neighbours, and keeps the bad rows with their errors', async () => {
    const good = rows(1000);
    const bad = [
      { ...good[0]!, id: 'bad-negative', offset: -1 }, // UInt64 cannot be negative
      { ...good[0]!, id: 'bad-text', ts_ms: 'yesterday' }, // not a number
      { ...good[0]!, id: 'bad-field', offset: '12abc' }, // trailing garbage in a number (an unknown key would not do: newer servers skip those)
    ];
    const batch: object[] = [...good.slice(0, 100), bad[0]!, ...good.slice(100, 700), bad[1]!, ...good.slice(700), bad[2]!];
    const sink = new ClickhouseSink(client, { batchRows: 5000, flushMs: 10, maxBufferedRows: 100_000 });
    sink.add('events', batch);
    await sink.flush();
    expect(sink.buffered).toBe(0);
    await sink.close();

    const q = new ClickhouseQueries(client);
    expect(await q.idCounts('events')).toMatchObject({ ids: 1000, final: 1000 });
    const dl = sink.deadLetters();
    expect(dl.map((d) => (d.row as { id: string }).id).sort()).toEqual(['bad-field', 'bad-negative', 'bad-text']);
    // A parse error of the row's format: 72 (cannot parse number) as JSONEachRow, 27 (cannot parse input) as TabSeparated, which event rows take.
    expect([27, 72]).toContain(dl.find((d) => (d.row as { id: string }).id === 'bad-negative')!.code);
    expect(dl.every((d) => d.table === 'events' && d.error.includes('ClickHouse error'))).toBe(true);
    const stored = await client.query<{ table_name: string; row: string; error: string }>(`SELECT table_name, row, error FROM \`${db}\`.dead_letters FINAL ORDER BY row`);
    expect(stored.map((r) => (JSON.parse(r.row) as { id: string }).id).sort()).toEqual(['bad-field', 'bad-negative', 'bad-text']);
    expect(stored.every((r) => r.table_name === 'events' && /ClickHouse error \d+/.test(r.error))).toBe(true);
    const text = renderMetrics(sink.metricFamilies());
    expect(text).toMatch(/^floodgate_clickhouse_dead_letter_rows_total\{table="events"\} 3$/m);
    expect(text).toMatch(/^floodgate_clickhouse_insert_failures_total\{table="events",kind="data"\} \d+$/m);
    expect(text).toMatch(/^floodgate_clickhouse_rows_inserted_total\{table="events"\} 1000$/m);
    // Status and logs carry no row data.
    expect(JSON.stringify(sink.status())).not.toContain('yesterday');
  });

  it('flush resolves at once with nothing pending, and a stopped sink refuses rows instead of losing them silently', async () => {
    const sink = new ClickhouseSink(client, { batchRows: 10, flushMs: 10, maxBufferedRows: 100 });
    await sink.flush();
    sink.stop();
    expect(() => sink.add('events', rows(1))).toThrow(/stopped/);
  });
});
