/**
 * `floodgate api`: the standalone API's routes served from a seeded
 * ClickHouse and the shared lock state in Redis. In-process through
 * fastify.inject (a recording zmprov at the process boundary), and the real
 * binary over HTTP (the zmprov stand-in program).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRecord, CommandRunner, RunResult } from '../../src/actions/index.js';
import { createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { ClickhouseQueries } from '../../src/clickhouse/queries.js';
import { actionRow, decisionRow, eventRow, findingRow, messageRow } from '../../src/clickhouse/rows.js';
import type { Event } from '../../src/core/events.js';
import { ClickhouseSink } from '../../src/clickhouse/sink.js';
import { createDistributedApi, type DistributedApi } from '../../src/cli/api-command.js';
import { validateConfig, type FloodgateConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/distributed/log.js';
import { SharedLockState } from '../../src/redis/locks.js';
import { pipelineOutput, type PipelineOutput } from '../clickhouse-fixtures.js';
import { chConfig, dropDatabase, freePort, SHARED_CLICKHOUSE_URL, sharedClient, testDatabase } from './clickhouse-server.js';
import { deletePrefix, SHARED_REDIS_URL, testPrefix } from './redis-server.js';

const READ = 'read-token-0123456789abcdef';
const ACT = 'act-token-0123456789abcdef!';
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const root = join(import.meta.dirname, '..', '..');

function recordingZmprov() {
  const calls: string[][] = [];
  const inputs: string[] = [];
  const status = new Map<string, string>();
  const runner: CommandRunner = {
    async run(argv, opts): Promise<RunResult> {
      calls.push([...argv]);
      if (argv[0]!.endsWith('/postsuper')) {
        inputs.push(opts?.input ?? '');
        return { code: 0, stdout: '', stderr: '' };
      }
      const [, verb, account, ...rest] = argv;
      if (verb === 'ga') return { code: 0, stdout: `# name ${account}\nzimbraAccountStatus: ${status.get(account!) ?? 'active'}\n`, stderr: '' };
      if (verb === 'ma') {
        status.set(account!, rest[1]!);
        return { code: 0, stdout: '', stderr: '' };
      }
      return { code: 1, stdout: '', stderr: 'unexpected' };
    },
  };
  return { runner, calls, inputs };
}

async function seed(client: ChClient, out: PipelineOutput): Promise<void> {
  const sink = new ClickhouseSink(client, { batchRows: 5000, flushMs: 20, maxBufferedRows: 1_000_000 });
  for (let copy = 0; copy < 2; copy++) {
    sink.add('events', out.events.slice(0, 2000).map((x) => eventRow(x.event, x.index)));
    sink.add('messages', out.messages.map(messageRow));
    sink.add('findings', out.findings.map(findingRow));
    sink.add('decisions', out.decisions.map(decisionRow));
    sink.add('actions', out.actions.map(actionRow));
    await sink.flush();
  }
  await sink.close();
}

describe('floodgate api over ClickHouse and Redis', () => {
  const db = testDatabase();
  const prefix = testPrefix();
  let client: ChClient;
  let redis: Redis;
  let out: PipelineOutput;
  let cfg: FloodgateConfig;
  let api: DistributedApi;
  const zmprov = recordingZmprov();

  beforeAll(async () => {
    await (await sharedClient('default')).close();
    client = createClickhouseClient(chConfig({ database: db }));
    await migrate(client, { retentionDays: 30 });
    out = await pipelineOutput(20_000);
    await seed(client, out);
    redis = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    cfg = validateConfig({
      timezone: 'UTC',
      clickhouse: { url: SHARED_CLICKHOUSE_URL, database: db },
      redis: { url: SHARED_REDIS_URL, keyPrefix: prefix },
    });
    api = createDistributedApi({
      cfg,
      tokens: [
        { name: 'grafana', role: 'read', token: READ },
        { name: 'oncall', role: 'act', token: ACT },
      ],
      clickhouse: client,
      redis,
      log: createLogger('test-api', 'error'),
      actuator: { runner: zmprov.runner },
    });
    await api.app.ready();
  });
  afterAll(async () => {
    await api?.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
    await dropDatabase(client, db);
    await client.close();
  });

  it('401 without or with an unknown token, 403 for a read token on act routes, 200 for reads', async () => {
    const none = await api.app.inject({ method: 'GET', url: '/findings' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ error: { code: 'FG_API_UNAUTHORIZED' } });
    expect((await api.app.inject({ method: 'GET', url: '/findings', headers: auth(READ + 'x') })).statusCode).toBe(401);
    const denied = await api.app.inject({ method: 'POST', url: '/accounts/alice@example.com/lock', headers: auth(READ) });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ error: { code: 'FG_API_FORBIDDEN' } });
    expect(zmprov.calls).toEqual([]);
    expect((await api.app.inject({ method: 'GET', url: '/findings', headers: auth(ACT) })).statusCode).toBe(200);
  });

  it('lists the seeded findings once each (stored twice), newest first, with the filters', async () => {
    const r = await api.app.inject({ method: 'GET', url: '/findings?limit=1000', headers: auth(READ) });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { findings: { ts: number; detector: string }[]; count: number };
    const distinct = new Set(out.findings.map((f) => JSON.stringify(f)));
    expect(body.count).toBe(distinct.size);
    expect(new Set(body.findings.map((f) => JSON.stringify(f)))).toEqual(distinct);
    expect(body.findings.map((f) => f.ts)).toEqual([...body.findings.map((f) => f.ts)].sort((a, b) => b - a));
    const det = out.findings[0]!.detector;
    const byDet = (await api.app.inject({ method: 'GET', url: `/findings?detector=${det}&limit=1000`, headers: auth(READ) })).json() as { findings: { detector: string }[] };
    expect(byDet.findings.length).toBe(new Set(out.findings.filter((f) => f.detector === det).map((f) => JSON.stringify(f))).size);
    const bad = await api.app.inject({ method: 'GET', url: "/findings?account=x'%20OR%201=1", headers: auth(READ) });
    expect(bad.statusCode).toBe(400);
  });

  it('shows an account from ClickHouse and its lock state; lock and unlock run zmprov, are recorded in ClickHouse and shared through Redis', async () => {
    const acct = out.actions[0]!.account;
    const before = (await api.app.inject({ method: 'GET', url: `/accounts/${encodeURIComponent(acct.toUpperCase())}`, headers: auth(READ) })).json() as {
      account: string;
      findings: unknown[];
      messages: unknown[];
      decisions: unknown[];
      actions: { id: string }[];
      policyLocked: boolean;
    };
    expect(before.account).toBe(acct);
    expect(before.findings.length).toBeGreaterThan(0);
    expect(before.messages.length).toBe(Math.min(100, out.messages.filter((m) => m.saslUser?.toLowerCase() === acct).length)); // the latest 100, as standalone
    expect(before.decisions.length).toBe(out.decisions.filter((d) => d.account === acct).length);
    expect(before.actions.map((a) => a.id)).toEqual(out.actions.filter((a) => a.account === acct).sort((a, b) => b.ts - a.ts).map((a) => a.id)); // newest first
    expect(before.policyLocked).toBe(false);

    const target = 'mallory@example.com';
    // hold: false: holding queued mail is the binary's test below.
    const lock = await api.app.inject({ method: 'POST', url: `/accounts/${target}/lock`, headers: auth(ACT), payload: { reason: "ticket 4711 'quoted'", hold: false } });
    expect(lock.statusCode, lock.body).toBe(200);
    expect(zmprov.calls).toEqual([
      ['/opt/zimbra/bin/zmprov', 'ga', target, 'zimbraAccountStatus'],
      ['/opt/zimbra/bin/zmprov', 'ma', target, 'zimbraAccountStatus', 'locked'],
    ]);
    const locks = new SharedLockState(redis, prefix);
    expect(await locks.isLocked(target)).toBe(true); // the workers see it
    expect((await locks.entry(target))?.by).toBe('operator');
    // Stored in ClickHouse before the answer: a reader sees it at once.
    const lockedView = (await api.app.inject({ method: 'GET', url: `/accounts/${target}`, headers: auth(READ) })).json() as { locked: boolean; policyLocked: boolean; actions: { action: string; by: string; reason: string[] }[] };
    expect(lockedView).toMatchObject({ locked: true, policyLocked: true });
    expect(lockedView.actions).toHaveLength(1);
    expect(lockedView.actions[0]).toMatchObject({ action: 'lock', by: 'oncall', reason: ["ticket 4711 'quoted'"] });

    await new Promise((r) => setTimeout(r, 5)); // the unlock is a later record
    const unlock = await api.app.inject({ method: 'POST', url: `/accounts/${target}/unlock`, headers: auth(ACT) });
    expect(unlock.statusCode, unlock.body).toBe(200);
    expect(zmprov.calls.slice(2)).toEqual([
      ['/opt/zimbra/bin/zmprov', 'ga', target, 'zimbraAccountStatus'],
      ['/opt/zimbra/bin/zmprov', 'ma', target, 'zimbraAccountStatus', 'active'],
    ]);
    expect(await locks.isLocked(target)).toBe(false);
    const after = (await api.app.inject({ method: 'GET', url: `/accounts/${target}`, headers: auth(READ) })).json() as { locked: boolean; policyLocked: boolean; actions: { action: string }[] };
    expect(after).toMatchObject({ locked: false, policyLocked: false });
    expect(after.actions.map((a) => a.action)).toEqual(['unlock', 'lock']);
    expect(await new ClickhouseQueries(client).idCounts('actions')).toMatchObject({ final: out.actions.length + 2 });

    // A worker's lock (Redis) shows as policyLocked.
    await locks.lockedByFloodgate('eve@example.com');
    expect(((await api.app.inject({ method: 'GET', url: '/accounts/eve@example.com', headers: auth(READ) })).json() as { policyLocked: boolean }).policyLocked).toBe(true);
  });

  it('/health reports ClickHouse and Redis; /metrics carries the sink and API counters; /openapi.json is served', async () => {
    const h = await api.app.inject({ method: 'GET', url: '/health' });
    expect(h.statusCode).toBe(200);
    expect(h.json()).toMatchObject({ status: 'ok', services: { clickhouse: { reachable: true, bufferedRows: 0 }, redis: { reachable: true } } });
    expect((h.json() as { services: { clickhouse: { version: string } } }).services.clickhouse.version).toMatch(/^\d+\.\d+/);
    const m = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(m.body).toMatch(/^floodgate_clickhouse_rows_inserted_total\{table="actions"\} 2$/m);
    expect(m.body).toMatch(/^floodgate_api_actions_total\{kind="lock",ok="true"\} 1$/m);
    expect(m.body).not.toContain('@');
    const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).sort()).toEqual(['/accounts/{account}', '/accounts/{account}/lock', '/accounts/{account}/unlock', '/findings', '/health', '/metrics', '/openapi.json']);
  });

  it("unlock releases what a worker's hold put on hold, read from the actions in ClickHouse", async () => {
    const target = 'trudy@example.com';
    const hold: ActionRecord = { id: 'hold-trudy-1', ts: Date.now() - 1000, action: 'hold', account: target, ok: true, dryRun: false, changed: true, backend: 'postfix', detail: 'held 2', by: 'policy', reason: ['x'], data: { queueIds: ['4F2A31C0B7', '4F2A31C0B8'] } };
    const sink = new ClickhouseSink(client, { batchRows: 10, flushMs: 20, maxBufferedRows: 1000 });
    sink.add('actions', [actionRow(hold), actionRow(hold)]); // stored twice (a replayed batch): one record
    await sink.close();
    expect((await new ClickhouseQueries(client).heldQueueIds(target)).sort()).toEqual(['4F2A31C0B7', '4F2A31C0B8']);
    const unlock = await api.app.inject({ method: 'POST', url: `/accounts/${target}/unlock`, headers: auth(ACT) });
    expect(unlock.statusCode, unlock.body).toBe(200);
    expect((unlock.json() as { records: ActionRecord[] }).records.map((r) => r.action)).toEqual(['unlock', 'release']);
    expect(zmprov.calls.at(-1)).toEqual(['/opt/zimbra/common/sbin/postsuper', '-H', '-']);
    expect(zmprov.inputs.at(-1)!.split('\n').filter(Boolean).sort()).toEqual(['4F2A31C0B7', '4F2A31C0B8']);
    expect(await new ClickhouseQueries(client).heldQueueIds(target)).toEqual([]); // the unlock and the release are stored
  });

  it('with ClickHouse unreachable: /health is 503 degraded and reads are 503 FG_CLICKHOUSE_UNAVAILABLE, not a crash', async () => {
    const dead = createClickhouseClient(chConfig({ url: `http://127.0.0.1:${await freePort()}`, database: db }), { requestTimeoutMs: 2000 });
    const down = createDistributedApi({ cfg, tokens: [{ name: 'grafana', role: 'read', token: READ }], clickhouse: dead, redis, log: createLogger('test-api', 'error') });
    try {
      const h = await down.app.inject({ method: 'GET', url: '/health' });
      expect(h.statusCode).toBe(503);
      expect(h.json()).toMatchObject({ status: 'degraded', services: { clickhouse: { reachable: false }, redis: { reachable: true } } });
      const r = await down.app.inject({ method: 'GET', url: '/findings', headers: auth(READ) });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({ error: { code: 'FG_CLICKHOUSE_UNAVAILABLE' } });
    } finally {
      await down.close();
      await dead.close();
    }
  });
});

describe('floodgate api: the binary', () => {
  const db = testDatabase();
  const prefix = testPrefix();
  const dir = mkdtempSync(join(tmpdir(), 'fg-api-'));
  let child: ChildProcess | undefined;
  let client: ChClient;

  beforeAll(async () => {
    client = await sharedClient('default');
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await dropDatabase(client, db);
    await client.close();
    const redis = new Redis(SHARED_REDIS_URL);
    await deletePrefix(redis, prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it("migrates, serves the API with token auth, locks through the zmprov program, holds the account's queued mail, and exits 0 on SIGTERM", async () => {
    const standinLog = join(dir, 'standin.log');
    const cfgPath = join(dir, 'floodgate.yaml');
    writeFileSync(
      cfgPath,
      [
        'timezone: UTC',
        'api:',
        '  tokens:',
        '    - { name: grafana, role: read, tokenEnv: FG_TEST_READ }',
        '    - { name: oncall, role: act, tokenEnv: FG_TEST_ACT }',
        'actions:',
        // The stand-in records into FG_STANDIN_LOG, which floodgate's allow-listed child environment drops: env(1) sets it.
        `  zmprov: { path: ${JSON.stringify(join(root, 'test', 'fixtures', 'bin', 'zmprov'))}, prefix: ["/usr/bin/env", ${JSON.stringify(`FG_STANDIN_LOG=${standinLog}`)}] }`,
        `  queue: { postqueuePath: ${JSON.stringify(join(root, 'test', 'fixtures', 'bin', 'postqueue'))}, postsuperPath: ${JSON.stringify(join(root, 'test', 'fixtures', 'bin', 'postsuper'))}, prefix: ["/usr/bin/env", ${JSON.stringify(`FG_STANDIN_LOG=${standinLog}`)}] }`,
        'clickhouse:',
        `  url: ${SHARED_CLICKHOUSE_URL}`,
        `  database: ${db}`,
        'redis:',
        `  url: ${SHARED_REDIS_URL}`,
        `  keyPrefix: "${prefix}"`,
        '',
      ].join('\n'),
    );
    child = spawn(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'api', '--config', cfgPath, '--listen', '127.0.0.1:0'], {
      env: { ...process.env, FG_TEST_READ: READ, FG_TEST_ACT: ACT },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const address = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'api listening' line: ${stderr}`)), 60_000);
      child!.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /"address":"(http:\/\/[^"]+)".*"msg":"api listening"|"msg":"api listening".*"address":"(http:\/\/[^"]+)"/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve((m[1] ?? m[2])!);
        }
      });
      child!.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });

    const get = (path: string, token?: string) => fetch(`${address}${path}`, { headers: token ? auth(token) : {} });
    expect((await get('/findings')).status).toBe(401);
    const ok = await get('/findings', READ);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ findings: [], count: 0 }); // migrated, empty
    // A worker stored bob's submission a minute ago: its queue id is one the stand-in's queue lists under another sender.
    const submission = { kind: 'smtp.client', ts: Date.now() - 60_000, host: 'mx1', program: 'postfix/submission/smtpd', src: { file: '/var/log/mail.log', offset: 4096 }, queueId: '3kx9Lz1qYwzABCd', ip: '203.0.113.9', account: 'bob@example.com', service: 'submission' } as Event;
    const dbClient = createClickhouseClient(chConfig({ database: db }));
    const seedSink = new ClickhouseSink(dbClient, { batchRows: 10, flushMs: 20, maxBufferedRows: 100 });
    seedSink.add('events', [eventRow(submission, 0)]);
    await seedSink.close();
    await dbClient.close();
    const health = await get('/health');
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', services: { clickhouse: { reachable: true }, redis: { reachable: true } } });
    const post = (path: string, token: string) => fetch(`${address}${path}`, { method: 'POST', headers: { ...auth(token), 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'ticket 1' }) });
    expect((await post('/accounts/bob@example.com/lock', READ)).status).toBe(403);
    const lock = await post('/accounts/bob@example.com/lock', ACT);
    expect(lock.status).toBe(200);
    const calls = readFileSync(standinLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prog: string; argv: string[]; stdin?: string; leakedEnv: string[] });
    expect(calls.map((c) => [c.prog, ...c.argv])).toEqual([
      ['zmprov', 'ga', 'bob@example.com', 'zimbraAccountStatus'],
      ['zmprov', 'ma', 'bob@example.com', 'zimbraAccountStatus', 'locked'],
      ['postqueue', '-j'],
      ['postsuper', '-h', '-'],
    ]);
    // bob's own mail by its sender, and the message his submission left queued under news@example.com by its id from ClickHouse.
    expect(calls[3]!.stdin!.trim().split('\n').sort()).toEqual(['3kx9Lz1qYwzABCd', '4F2A31C0B3']);
    expect(calls.every((c) => c.leakedEnv.length === 0)).toBe(true); // tokens are not passed to the program
    const rows = await client.query<{ action: string; by: string; ok: number }>(`SELECT action, by, ok FROM \`${db}\`.actions FINAL ORDER BY ts_ms, action DESC`);
    expect(rows).toEqual([
      { action: 'lock', by: 'oncall', ok: 1 },
      { action: 'hold', by: 'oncall', ok: 1 },
    ]);

    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).not.toContain(READ);
    expect(stderr).not.toContain(ACT);
  });
});
