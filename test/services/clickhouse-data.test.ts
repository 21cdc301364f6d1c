/**
 * Rows into the real ClickHouse and back through the read queries: each row
 * type, duplicates (an at-least-once replay) that collapse in the row tables
 * and do not double count in the per-minute aggregates, and hostile strings
 * that round-trip both as data and as inlined query values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { sqlString } from '../../src/clickhouse/escape.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { ClickhouseQueries } from '../../src/clickhouse/queries.js';
import { actionRow, decisionRow, EVENT_COLUMNS, eventRow, eventTsvLine, findingRow, messageRow } from '../../src/clickhouse/rows.js';
import { ClickhouseSink } from '../../src/clickhouse/sink.js';
import { tabSeparated, TsvRows } from '../../src/clickhouse/tsv.js';
import type { Finding } from '../../src/detect/finding.js';
import { pipelineOutput, type PipelineOutput } from '../clickhouse-fixtures.js';
import { chConfig, dropDatabase, sharedClient, testDatabase } from './clickhouse-server.js';

const HOSTILE = [
  "o'brien@example.com",
  "'; DROP TABLE findings; --",
  'back\\slash\\\\',
  '\\\'',
  '$(reboot)`id`',
  'nul\0byte',
  'line\nbreak\r\nend',
  'tab\tand\x01\x1f\x7f',
  'ünïcødé 日本語 🙂 \u202e',
  '{account:String}',
  '',
];

describe('ClickHouse rows and queries', () => {
  const db = testDatabase();
  let client: ChClient;
  let queries: ClickhouseQueries;
  let out: PipelineOutput;

  beforeAll(async () => {
    const admin = await sharedClient('default');
    await admin.close();
    client = createClickhouseClient(chConfig({ database: db }));
    await migrate(client, { retentionDays: 30 });
    queries = new ClickhouseQueries(client);
    out = await pipelineOutput(20_000);
  });
  afterAll(async () => {
    await dropDatabase(client, db);
    await client.close();
  });

  it('stores each row type twice (a replay) and reads every row back once', async () => {
    const sink = new ClickhouseSink(client, { batchRows: 3000, flushMs: 50, maxBufferedRows: 1_000_000 });
    const tables = {
      events: out.events.map((x) => eventRow(x.event, x.index)),
      messages: out.messages.map(messageRow),
      findings: out.findings.map(findingRow),
      decisions: out.decisions.map(decisionRow),
      actions: out.actions.map(actionRow),
    };
    for (let copy = 0; copy < 2; copy++) {
      for (const [t, rows] of Object.entries(tables)) sink.add(t, rows);
      await sink.flush(); // separate inserts: separate parts, so the copies are really there twice
    }
    await sink.close();

    for (const [t, rows] of Object.entries(tables) as [keyof typeof tables, unknown[]][]) {
      const c = await queries.idCounts(t);
      expect(c.ids, t).toBe(new Set(rows.map((r) => (r as { id: string }).id)).size);
      expect(c.final, t).toBe(c.ids); // FINAL collapses the copies
      expect(c.rows, t).toBeGreaterThanOrEqual(c.ids); // until merged they may still be there twice
    }

    // Findings: all of them, newest first, exactly the pipeline's objects.
    const all = await queries.findings({ limit: 1000 });
    expect(all.length).toBe(new Set(tables.findings.map((r) => r.id)).size);
    expect(all.map((f) => f.ts)).toEqual([...all.map((f) => f.ts)].sort((a, b) => b - a));
    const key = (f: Finding) => JSON.stringify(f);
    expect(new Set(all.map(key))).toEqual(new Set(out.findings.map(key)));

    // Filters: detector, account, time window; limit.
    const f = out.findings.find((x) => x.entity.kind === 'account')!;
    const byDetector = await queries.findings({ detector: f.detector, limit: 1000 });
    expect(byDetector.length).toBe(new Set(out.findings.filter((x) => x.detector === f.detector).map(key)).size);
    const byAccount = await queries.findings({ account: f.entity.id.toUpperCase(), limit: 1000 });
    expect(byAccount.length).toBeGreaterThan(0);
    expect(byAccount.every((x) => (x.entity.kind === 'account' ? x.entity.id : x.account)?.toLowerCase() === f.entity.id.toLowerCase())).toBe(true);
    const at = await queries.findings({ since: f.ts, until: f.ts, limit: 1000 });
    expect(at.length).toBeGreaterThan(0);
    expect(at.every((x) => x.ts === f.ts)).toBe(true);
    expect(await queries.findings({ limit: 1 })).toHaveLength(1);

    // The account view: its findings, the messages it sent, decisions and actions.
    const acct = out.actions[0]!.account;
    const view = await queries.account(acct, 1000);
    expect(view.findings.length).toBe(new Set(out.findings.filter((x) => (x.entity.kind === 'account' ? x.entity.id : x.account)?.toLowerCase() === acct).map(key)).size);
    expect(view.messages.length).toBe(out.messages.filter((m) => m.saslUser?.toLowerCase() === acct).length);
    expect(view.messages.length).toBeGreaterThan(0);
    expect(view.decisions.length).toBe(out.decisions.filter((d) => d.account === acct).length);
    expect(view.actions.map((a) => a.id).sort()).toEqual(out.actions.filter((a) => a.account === acct).map((a) => a.id).sort());
    expect(view.actions[0]).toEqual(out.actions.filter((a) => a.account === acct).sort((a, b) => b.ts - a.ts)[0]);
  });

  it('per-minute aggregates count each event, message, recipient and finding once despite the copies', async () => {
    const range = { since: 0, until: Date.UTC(2100, 0, 1) };
    const mpm = await queries.messagesPerMinute(range);
    expect(mpm.reduce((s, r) => s + r.messages, 0)).toBe(new Set(out.messages.map((m) => `${m.host}|${m.queueId}|${m.firstTs}`)).size);
    expect(mpm.reduce((s, r) => s + r.recipients, 0)).toBe(out.messages.reduce((s, m) => s + m.recipients.length, 0));
    // Per account and host: the busiest account's minute matches a direct count.
    const top = [...mpm].sort((a, b) => b.messages - a.messages)[0]!;
    const direct = out.messages.filter((m) => (m.saslUser?.toLowerCase() ?? '') === top.account && m.host === top.host && Math.floor(m.firstTs / 60_000) * 60_000 === top.minute);
    expect(top.messages).toBe(direct.length);

    const fpm = await queries.findingsPerMinute(range);
    expect(fpm.reduce((s, r) => s + r.findings, 0)).toBe(new Set(out.findings.map((f) => JSON.stringify([f.detector, f.entity, f.ts, f.summary]))).size);

    const epm = await queries.eventsPerMinute(range);
    const total = epm.reduce((s, r) => s + r.events, 0);
    // uniq is exact while a cell holds few ids (a minute of one host and kind here), so the sum is exact.
    expect(total).toBe(out.events.length);
    expect(new Set(epm.map((r) => r.host))).toEqual(new Set(out.events.map((x) => x.event.host)));
    const authPerHost = (rows: typeof epm, host: string) => rows.filter((r) => r.host === host && r.kind === 'auth').reduce((s, r) => s + r.events, 0);
    expect(authPerHost(epm, 'mx2')).toBe(out.events.filter((x) => x.event.host === 'mx2' && x.event.kind === 'auth').length);
  });

  it('hostile strings round-trip: as row data through JSONEachRow, and as inlined query values through sqlString', async () => {
    const base = out.findings.find((x) => x.entity.kind === 'account')!;
    const sink = new ClickhouseSink(client, { batchRows: 100, flushMs: 10, maxBufferedRows: 10_000 });
    const hostileFindings: Finding[] = HOSTILE.map((s, i) => ({ ...base, detector: `hostile-${i}`, entity: { kind: 'account', id: s }, summary: s, ts: Date.UTC(2030, 0, 1, 0, 0, i), window: { note: s }, evidence: [{ file: s, offset: i, ts: 1, note: s }] }));
    sink.add('findings', hostileFindings.map(findingRow));
    await sink.close();
    for (let i = 0; i < HOSTILE.length; i++) {
      const s = HOSTILE[i]!;
      // Echo through the server: the literal means exactly the string.
      const [echo] = await client.query<{ v: string; n: string }>(`SELECT ${sqlString(s)} AS v, length(${sqlString(s)}) AS n`);
      expect(echo!.v, JSON.stringify(s)).toBe(s);
      expect(Number(echo!.n)).toBe(Buffer.byteLength(s));
      // Filtered by the hostile value: only its own finding comes back, whole.
      const got = await queries.findings({ account: s, detector: `hostile-${i}`, limit: 10 });
      expect(got, JSON.stringify(s)).toEqual([hostileFindings[i]]);
    }
    // The table is intact and holds every hostile row once.
    const [n] = await client.query<{ n: string }>(`SELECT count() AS n FROM ${'`' + db + '`'}.findings FINAL WHERE detector LIKE 'hostile-%'`);
    expect(Number(n!.n)).toBe(HOSTILE.length);
  });

  it('hostile strings round-trip as event rows, which go as TabSeparated', async () => {
    const base = out.events[0]!;
    const rows = HOSTILE.map((h, i) => ({ ...eventRow({ ...base.event, host: `mx-${h}`, src: { file: h, offset: i } } as typeof base.event, 0), program: h, account: h.toLowerCase(), ip: h, json: JSON.stringify({ h }) + h }));
    expect(tabSeparated(rows), 'these rows take the TabSeparated path').toBeDefined();
    await client.insert('events', rows);
    const got = await client.query<{ id: string; host: string; program: string; account: string; ip: string; file: string; offset: string; json: string; ts_ms: string }>(
      `SELECT id, host, program, account, ip, file, offset, json, ts_ms FROM ${'`' + db + '`'}.events FINAL WHERE id IN (${rows.map((r) => sqlString(r.id)).join(', ')})`,
    );
    expect(got.length).toBe(rows.length);
    const byId = new Map(got.map((g) => [g.id, g]));
    for (const r of rows) {
      const g = byId.get(r.id)!;
      expect({ host: g.host, program: g.program, account: g.account, ip: g.ip, file: g.file, json: g.json }, JSON.stringify(r.program)).toEqual({ host: r.host, program: r.program, account: r.account, ip: r.ip, file: r.file, json: r.json });
      expect(Number(g.offset)).toBe(r.offset);
      expect(Number(g.ts_ms)).toBe(r.ts_ms);
    }
  });

  it('hostile strings round-trip as event rows encoded at once (TsvRows, what the parse stage stores)', async () => {
    const base = out.events[0]!;
    const rows = new TsvRows(EVENT_COLUMNS);
    const events = HOSTILE.map((h, i) => ({ ...base.event, host: `mx-${h}`, program: h, account: h, ip: h, src: { file: `enc-${h}`, offset: i } }) as typeof base.event);
    const jsons = HOSTILE.map((h) => JSON.stringify({ h }) + h);
    events.forEach((e, i) => rows.push(eventTsvLine(e, 0, jsons[i]!)));
    await client.insert('events', rows);
    const got = await client.query<{ host: string; program: string; account: string; ip: string; file: string; offset: string; json: string }>(
      `SELECT host, program, account, ip, file, offset, json FROM ${'`' + db + '`'}.events FINAL WHERE file LIKE 'enc-%' ORDER BY offset`,
    );
    expect(got.length).toBe(HOSTILE.length);
    got.forEach((g, i) => {
      const h = HOSTILE[i]!;
      expect({ host: g.host, program: g.program, account: g.account, ip: g.ip, file: g.file, offset: Number(g.offset), json: g.json }, JSON.stringify(h)).toEqual({
        host: `mx-${h}`,
        program: h,
        account: h.toLowerCase(),
        ip: h,
        file: `enc-${h}`,
        offset: i,
        json: jsons[i],
      });
    });
  });

  it('a message stored again with more of its story keeps the latest version', async () => {
    const m = out.messages.find((x) => x.recipients.length > 1)!;
    const early = { ...m, recipients: m.recipients.slice(0, 1), lastTs: m.lastTs - 1000, queueId: m.queueId + 'V', saslUser: 'versioned@example.com' };
    const late = { ...early, recipients: m.recipients, lastTs: m.lastTs };
    const sink = new ClickhouseSink(client, { batchRows: 10, flushMs: 10, maxBufferedRows: 1000 });
    sink.add('messages', [messageRow(late)]);
    await sink.flush();
    sink.add('messages', [messageRow(early)]); // arrives last, but is older
    await sink.close();
    const view = await queries.account('versioned@example.com');
    expect(view.messages).toEqual([late]);
  });
});
