/**
 * Every Grafana panel query in grafana/dashboards/ against the real ClickHouse:
 * the schema from src/clickhouse/migrations.ts, rows stored twice (as an
 * at-least-once writer does) plus a message stored again with more of its
 * recipients, then each query run the way Grafana's ClickHouse plugin would
 * send it: macros expanded like the plugin does, `${account:sqlstring}` quoted
 * like Grafana does, read-only. The numbers must be the distinct ones.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import type { ActionRow, DecisionRow, EventRow, FindingRow, MessageRow } from '../../src/clickhouse/rows.js';
import { chConfig, dropDatabase, SHARED_CLICKHOUSE_URL, sharedClient, testDatabase } from './clickhouse-server.js';

// ---- the dashboards ----

interface Target {
  refId: string;
  rawSql: string;
  format: number;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: { rawSql?: string } | string;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list?: Variable[] };
}

const dashboardDir = join(import.meta.dirname, '..', '..', 'grafana', 'dashboards');
const dashboards: Dashboard[] = readdirSync(dashboardDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(dashboardDir, f), 'utf8')) as Dashboard);
const flat = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...flat(p.panels ?? [])]);
const queryPanels = (d: Dashboard) => flat(d.panels).filter((p) => (p.targets ?? []).length > 0);

// ---- Grafana's side of a query ----

export interface GrafanaRequest {
  fromMs: number;
  toMs: number;
  /** Grafana's $__interval for the panel, in seconds. */
  intervalS: number;
  /** Dashboard variables by name. */
  vars: Record<string, string>;
  /** Database that replaces `floodgate.` in table names (a throw-away one in tests). */
  database: string;
}

/**
 * The SQL the ClickHouse plugin sends for a panel: Grafana's template
 * variables first (`${v:sqlstring}` doubles single quotes), then the plugin's
 * macros, written as pkg/macros/macros.go of grafana-clickhouse-datasource
 * writes them ($__timeInterval becomes toStartOfInterval, which ClickHouse
 * 18.16 lacks: a dashboard using it fails here). A `$` left over is a macro
 * this function does not know, and fails the test rather than reaching the
 * server half-expanded.
 */
export function expandGrafanaSql(sql: string, r: GrafanaRequest): string {
  const from = Math.floor(r.fromMs / 1000);
  const to = Math.floor(r.toMs / 1000);
  const interval = Math.max(1, Math.floor(r.intervalS));
  const variable = (name: string, format: string | undefined): string => {
    const v = r.vars[name];
    if (v === undefined) throw new Error(`dashboard variable $${name} has no value in the test`);
    if (format === undefined || format === 'raw') return v;
    if (format === 'sqlstring') return `'${v.replace(/'/g, "''")}'`;
    throw new Error(`variable format ${format} not emulated`);
  };
  let out = sql
    .replace(/\$\{([A-Za-z_]\w*)(?::(\w+))?\}/g, (_m, name: string, fmt: string | undefined) => variable(name, fmt))
    .replace(/\$__timeFilter\(\s*([^)]+?)\s*\)/g, (_m, col: string) => `${col} >= toDateTime(${from}) AND ${col} <= toDateTime(${to})`)
    .replace(/\$__timeInterval\(\s*([^)]+?)\s*\)/g, (_m, col: string) => `toStartOfInterval(toDateTime(${col}), INTERVAL ${interval} second)`)
    .replace(/\$__fromTime\b/g, `toDateTime(${from})`)
    .replace(/\$__toTime\b/g, `toDateTime(${to})`)
    .replace(/\$__interval_s\b/g, String(interval))
    .replace(/\$([A-Za-z_]\w*)\b/g, (m, name: string) => (name.startsWith('__') ? m : variable(name, undefined)));
  if (out.includes('$')) throw new Error(`unexpanded macro in: ${out}`);
  out = out.replace(/\bfloodgate\.(?=[A-Za-z_])/g, `\`${r.database}\`.`);
  return out;
}

/**
 * Runs a SELECT as the Grafana datasource's read-only user would
 * (readonly=2: no writes, no DDL), rows as JSON objects.
 */
async function grafanaQuery(sql: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${SHARED_CLICKHOUSE_URL}/?readonly=2`, { method: 'POST', body: `${sql}\nFORMAT JSONEachRow` });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse refused the panel query (${res.status}): ${text.split('\n')[0]}\n${sql}`);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---- the data: three MTAs' worth of one morning ----

const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
const at = (minute: number, second = 0) => T0 + minute * 60_000 + second * 1000;
const sec = (ms: number) => Math.floor(ms / 1000);
let seq = 0;
const id = (p: string) => `${p}-${(++seq).toString(16).padStart(6, '0')}`;

function message(account: string, host: string, minute: number, rcpts: number, partial = false): MessageRow {
  const first = at(minute, seq % 50);
  const addresses = Array.from({ length: rcpts }, (_, i) => `victim${seq}-${i}@example.net`);
  return {
    id: id('m'),
    host,
    queue_id: `Q${seq}`,
    first_ts: sec(first),
    first_ts_ms: first,
    last_ts: sec(first + 2000),
    last_ts_ms: first + (partial ? 1000 : 2000),
    sasl_user: account,
    client_ip: account === '' ? '192.0.2.50' : '203.0.113.9',
    sender: account === '' ? 'news@example.org' : 'x@yahoo.com.tw',
    rcpt_count: addresses.length,
    rcpt_addresses: addresses,
    rcpt_status: addresses.map(() => 'sent'),
    json: '{}',
  };
}

function event(kind: string, host: string, minute: number, account: string, ip: string, extra: Record<string, unknown> = {}): EventRow {
  const ts = at(minute, seq % 50);
  return { id: id('e'), ts: sec(ts), ts_ms: ts, host, program: kind === 'auth' ? 'postfix/submission/smtpd' : 'postfix/smtpd', kind, account, ip, file: '/var/log/zimbra.log', offset: seq * 100, json: JSON.stringify({ kind, account, ip, ...extra }) };
}

function finding(detector: string, severity: string, minute: number, entityKind: 'account' | 'ip', entityId: string, account: string): FindingRow {
  const ts = at(minute, 30);
  return { id: id('f'), ts: sec(ts), ts_ms: ts, detector, entity_kind: entityKind, entity_id: entityId, severity, score: 80, signals: ['volume'], summary: `${detector} on ${entityId}`, window: '{}', evidence: '[]', account, ip: entityKind === 'ip' ? entityId : '', json: '{}' };
}

function decision(account: string, action: 'none' | 'alert' | 'lock', minute: number, dryRun: boolean): DecisionRow {
  const ts = at(minute, 40);
  return { id: id('d'), ts: sec(ts), ts_ms: ts, entity: `account:${account}`, account, action, hold: action === 'lock' ? 1 : 0, dry_run: dryRun ? 1 : 0, score: 90, reasons: ['forged sender'], detectors: ['sender-mismatch'], signals: ['forged-sender'], json: '{}' };
}

function actionOf(account: string, action: string, minute: number, ok: boolean, dryRun: boolean): ActionRow {
  const ts = at(minute, 50);
  return { id: id('a'), ts: sec(ts), ts_ms: ts, action, account, ok: ok ? 1 : 0, dry_run: dryRun ? 1 : 0, changed: ok ? 1 : 0, backend: action === 'hold' ? 'postfix' : 'zmprov', detail: '', command: [], by: 'policy', reason: ['test'], error_code: ok ? '' : 'FG_ACTION_FAILED', json: '{}' };
}

const alice = 'alice@example.com';
const bob = 'bob@example.com';
const carol = 'carol@example.com';
const dave = 'dave@example.com';
const erin = 'erin@example.com';

// alice's stolen password sends through two MTAs; bob sends a little; one inbound message has no SASL user.
const messages: MessageRow[] = [
  ...Array.from({ length: 6 }, (_, i) => message(alice, 'mx1', i, 3)),
  ...Array.from({ length: 6 }, (_, i) => message(alice, 'mx2', i, 3)),
  message(bob, 'mx1', 2, 1),
  message(bob, 'mx1', 7, 1),
  message('', 'mx2', 3, 1),
];
// The first alice message was also stored earlier with only its first recipient (a crash before it was complete).
const first = messages[0]!;
const partialCopy: MessageRow = { ...first, last_ts_ms: first.last_ts_ms - 1000, rcpt_count: 1, rcpt_addresses: first.rcpt_addresses.slice(0, 1), rcpt_status: first.rcpt_status.slice(0, 1) };

const events: EventRow[] = [
  event('auth', 'mx1', 0, alice, '203.0.113.9', { outcome: 'success', protocol: 'smtp' }),
  event('auth', 'mx1', 1, alice, '203.0.113.9', { outcome: 'success', protocol: 'smtp' }),
  event('auth', 'mx2', 1, alice, '198.51.100.7', { outcome: 'success', protocol: 'smtp' }),
  event('auth', 'mx2', 2, alice, '198.51.100.7', { outcome: 'failure', protocol: 'smtp' }),
  event('auth', 'mx1', 2, bob, '10.0.0.8', { outcome: 'success', protocol: 'imap' }),
  ...Array.from({ length: 5 }, (_, i) => event('smtp.client', i % 2 ? 'mx1' : 'mx2', i, alice, '203.0.113.9')),
  event('delivery', 'mx1', 3, '', ''),
  event('delivery', 'mx2', 4, '', ''),
];

const findings: FindingRow[] = [
  finding('send-flood', 'high', 3, 'account', alice, alice),
  finding('sender-mismatch', 'critical', 4, 'account', alice, alice),
  finding('auth-attack', 'medium', 5, 'ip', '192.0.2.1', ''),
];

const decisions: DecisionRow[] = [decision(alice, 'lock', 5, false), decision(bob, 'alert', 5, false), decision(carol, 'none', 5, false)];

const actions: ActionRow[] = [
  actionOf(alice, 'lock', 5, true, false),
  actionOf(alice, 'hold', 5, true, false),
  actionOf(carol, 'lock', 1, true, false),
  actionOf(carol, 'unlock', 2, true, false),
  actionOf(dave, 'lock', 6, true, true),
  actionOf(erin, 'lock', 6, false, false),
];

const range = { fromMs: T0 - 3600_000, toMs: T0 + 3600_000 };
const emptyRange = { fromMs: T0 - 3 * 86_400_000, toMs: T0 - 2 * 86_400_000 };

// ---- what the panels must say (from the data above, each row once) ----

const num = (v: unknown) => Number(v);
const sentBy = (a: string) => messages.filter((m) => m.sasl_user === a);
const countBy = <T>(xs: T[], key: (x: T) => string) => xs.reduce<Record<string, number>>((acc, x) => ({ ...acc, [key(x)]: (acc[key(x)] ?? 0) + 1 }), {});

/** Sums a long time series (time, label, value) per label, checking every bucket lies on the interval grid. */
function seriesTotals(rows: Record<string, unknown>[], label: string, value: string, intervalS: number): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const r of rows) {
    const t = Date.parse(`${String(r.time).replace(' ', 'T')}Z`) / 1000;
    expect(t % intervalS, `bucket ${String(r.time)} is not on the ${intervalS}s grid`).toBe(0);
    const k = String(r[label]);
    totals[k] = (totals[k] ?? 0) + num(r[value]);
  }
  return totals;
}

type Check = (rows: Record<string, unknown>[], intervalS: number) => void;

const overviewChecks: Record<string, Check> = {
  Findings: (rows) => expect(num(rows[0]?.findings)).toBe(findings.length),
  'Lock decisions': (rows) => expect(num(rows[0]?.locks)).toBe(decisions.filter((d) => d.action === 'lock').length),
  'Accounts locked now': (rows) => expect(num(rows[0]?.locked)).toBe(1),
  Messages: (rows) => expect(num(rows[0]?.messages)).toBe(messages.length),
  'Findings by detector and severity (per $__interval)': (rows, i) =>
    expect(seriesTotals(rows, 'series', 'findings', i)).toEqual(countBy(findings, (f) => `${f.detector} · ${f.severity}`)),
  'Events by kind (per $__interval)': (rows, i) => expect(seriesTotals(rows, 'kind', 'events', i)).toEqual(countBy(events, (e) => e.kind)),
  'Messages per host (per $__interval)': (rows, i) => expect(seriesTotals(rows, 'host', 'messages', i)).toEqual(countBy(messages, (m) => m.host)),
  'Top accounts by messages sent': (rows) => {
    expect(rows.map((r) => [r.account, num(r.messages), num(r.recipients), num(r.mtas)])).toEqual([
      [alice, sentBy(alice).length, sentBy(alice).reduce((n, m) => n + m.rcpt_count, 0), 2],
      [bob, sentBy(bob).length, 2, 1],
    ]);
  },
  'Latest findings': (rows) => {
    expect(rows.map((r) => r.detector)).toEqual(['auth-attack', 'sender-mismatch', 'send-flood']); // newest first, once each
  },
  'Decisions (alerts and locks)': (rows) => {
    expect(rows.map((r) => [r.account, r.action, r.mode]).sort()).toEqual([
      [alice, 'lock', 'enforced'],
      [bob, 'alert', 'enforced'],
    ]);
  },
  'Locked accounts': (rows) => {
    expect(rows.map((r) => [r.account, r.state]).sort()).toEqual([
      [alice, 'locked'],
      [dave, 'dry-run (not enforced)'],
    ]);
  },
  'Actions taken': (rows) => {
    expect(rows).toHaveLength(actions.length);
    expect(rows.filter((r) => r.result === 'failed').map((r) => r.account)).toEqual([erin]);
  },
};

const accountChecks: Record<string, Check> = {
  'Lock state': (rows) => expect(rows[0]?.state).toBe('lock'),
  'Messages sent': (rows) => expect(num(rows[0]?.messages)).toBe(sentBy(alice).length),
  Recipients: (rows) => expect(num(rows[0]?.recipients)).toBe(sentBy(alice).reduce((n, m) => n + m.rcpt_count, 0)),
  Findings: (rows) => expect(num(rows[0]?.findings)).toBe(findings.filter((f) => f.account === alice).length),
  'Messages sent per MTA (per $__interval)': (rows, i) => expect(seriesTotals(rows, 'host', 'messages', i)).toEqual({ mx1: 6, mx2: 6 }),
  'Logins by client IP': (rows) => {
    expect(rows.map((r) => [r.ip, num(r.succeeded), num(r.failed), r.hosts]).sort()).toEqual([
      ['198.51.100.7', 1, 1, 'mx2'],
      ['203.0.113.9', 2, 0, 'mx1'],
    ]);
  },
  Messages: (rows) => {
    expect(rows).toHaveLength(sentBy(alice).length);
    // The message stored first with one recipient and again with three is shown once, complete.
    const m = rows.find((r) => r.queue_id === first.queue_id);
    expect(num(m?.rcpt_count)).toBe(3);
  },
  'Findings in detail': (rows) => expect(rows.map((r) => r.detector)).toEqual(['sender-mismatch', 'send-flood']),
  Decisions: (rows) => expect(rows.map((r) => r.action)).toEqual(['lock']),
  Actions: (rows) => expect(rows.map((r) => r.action).sort()).toEqual(['hold', 'lock']),
};

const checks: Record<string, Record<string, Check>> = { 'floodgate-overview': overviewChecks, 'floodgate-account': accountChecks };

// ---- the test ----

describe('Grafana dashboards on the real ClickHouse', () => {
  const db = testDatabase();
  let client: ChClient;
  const req = (intervalS: number, r = range, vars: Record<string, string> = { account: alice }): GrafanaRequest => ({ ...r, intervalS, vars, database: db });

  beforeAll(async () => {
    const admin = await sharedClient('default');
    await admin.close();
    client = createClickhouseClient(chConfig({ database: db }));
    await migrate(client, { retentionDays: 30 });
    await client.insert('messages', [partialCopy]);
    // Every row twice, in separate inserts: separate parts, nothing merged yet, and each materialized view fed twice.
    for (let copy = 0; copy < 2; copy++) {
      await client.insert('messages', messages);
      await client.insert('events', events);
      await client.insert('findings', findings);
      await client.insert('decisions', decisions);
      await client.insert('actions', actions);
    }
  });
  afterAll(async () => {
    await dropDatabase(client, db);
    await client.close();
  });

  it('the tables really hold duplicate rows (what the panels must not double count)', async () => {
    for (const table of ['events', 'messages', 'findings', 'decisions', 'actions']) {
      const [r] = await client.query<{ rows: string; ids: string }>(`SELECT count() AS rows, uniqExact(id) AS ids FROM \`${db}\`.${table}`);
      expect(num(r?.rows), table).toBeGreaterThan(num(r?.ids));
    }
  });

  it('finds both dashboards with queries, and an expectation for every panel', () => {
    expect(dashboards.map((d) => d.uid).sort()).toEqual(Object.keys(checks).sort());
    for (const d of dashboards) {
      const titles = queryPanels(d).map((p) => p.title);
      const expected = Object.keys(checks[d.uid] ?? {});
      expect(titles.filter((t) => !(t in (checks[d.uid] ?? {}))), `${d.uid}: panels without an expectation here`).toEqual([]);
      expect(expected.filter((t) => !titles.includes(t)), `${d.uid}: expectations for panels that no longer exist`).toEqual([]);
    }
  });

  for (const d of dashboards) {
    for (const p of queryPanels(d)) {
      it(`${d.uid} / ${p.title}: runs and counts each row once`, async () => {
        const check = checks[d.uid]?.[p.title];
        expect(check, 'no expectation for this panel').toBeDefined();
        for (const intervalS of [60, 300]) {
          for (const t of p.targets ?? []) {
            const rows = await grafanaQuery(expandGrafanaSql(t.rawSql, req(intervalS)));
            expect(rows.length, `no rows ($__interval_s = ${intervalS})`).toBeGreaterThan(0);
            check?.(rows, intervalS);
          }
        }
      });

      const ranged = (p.targets ?? []).filter((x) => x.rawSql.includes('$__timeFilter'));
      if (ranged.length === 0) continue;
      it(`${d.uid} / ${p.title}: shows nothing outside the time range`, async () => {
        for (const t of ranged) {
          const rows = await grafanaQuery(expandGrafanaSql(t.rawSql, req(60, emptyRange)));
          const numbers = rows.flatMap((r) => Object.values(r)).filter((v) => typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v)));
          // Empty, or one aggregate row of zeros (a stat over nothing).
          expect(rows.length <= 1 && numbers.every((v) => num(v) === 0), JSON.stringify(rows)).toBe(true);
        }
      });
    }
  }

  it('the account drill-down shows nothing of another account, and quotes a hostile account name safely', async () => {
    const d = dashboards.find((x) => x.uid === 'floodgate-account');
    expect(d).toBeDefined();
    for (const account of [bob, "o'brien@example.com", "x' OR '1'='1"]) {
      for (const p of queryPanels(d!)) {
        for (const t of p.targets ?? []) {
          const rows = await grafanaQuery(expandGrafanaSql(t.rawSql, req(60, range, { account })));
          const text = JSON.stringify(rows);
          expect(text, `${p.title} for ${account}`).not.toContain(alice);
        }
      }
    }
  });

  it('the account variable lists the accounts with findings or sent mail', async () => {
    const v = dashboards.flatMap((d) => d.templating?.list ?? []).find((x) => x.name === 'account');
    expect(v?.type).toBe('query');
    const sql = typeof v?.query === 'string' ? v.query : (v?.query?.rawSql ?? '');
    const rows = await grafanaQuery(expandGrafanaSql(sql, req(60)));
    expect(rows.map((r) => Object.values(r)[0])).toEqual([alice, bob]);
  });

  it('expandGrafanaSql writes the plugin macros as the plugin does', () => {
    const r = { fromMs: 1_700_000_000_500, toMs: 1_700_000_600_999, intervalS: 300, vars: { account: "o'b" }, database: 'x' };
    expect(expandGrafanaSql('WHERE $__timeFilter(ts) AND a = ${account:sqlstring}', r)).toBe("WHERE ts >= toDateTime(1700000000) AND ts <= toDateTime(1700000600) AND a = 'o''b'");
    expect(expandGrafanaSql('SELECT $__timeInterval(ts), $__interval_s FROM floodgate.t', r)).toBe('SELECT toStartOfInterval(toDateTime(ts), INTERVAL 300 second), 300 FROM `x`.t');
    expect(() => expandGrafanaSql('SELECT $__unknownMacro(x)', r)).toThrow(/unexpanded/);
  });
});
