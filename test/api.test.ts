/** The HTTP API through fastify.inject(): no network, a recording zmprov runner, a real (in-memory) store. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateLines } from '../bench/generate.js';
import { Actuator, type ActionRecord, type CommandRunner, type RunResult } from '../src/actions/index.js';
import { renderMetrics } from '../src/api/metrics.js';
import { buildApi, openApiDocument } from '../src/api/server.js';
import { validateConfig } from '../src/config/config.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { envelopeContext } from '../src/pipeline/line-parser.js';
import { Runner } from '../src/run/runner.js';
import { Store } from '../src/store/store.js';

const READ = 'read-token-0123456789abcdef';
const ACT = 'act-token-0123456789abcdef!';

/** Stands in for zmprov at the process boundary: records every argv, keeps each account's status. */
function recordingRunner() {
  const calls: string[][] = [];
  const inputs: string[] = [];
  const status = new Map<string, string>();
  const runner: CommandRunner = {
    async run(argv, opts): Promise<RunResult> {
      calls.push([...argv]);
      if (argv[0]!.endsWith('/postsuper')) {
        inputs.push(opts?.input ?? '');
        return { code: 0, stdout: '', stderr: `postsuper: Released from hold: ${(opts?.input ?? '').split('\n').filter(Boolean).length} messages\n` };
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

function setup() {
  const cfg = validateConfig({ timezone: 'UTC', store: { path: ':memory:' } });
  const store = new Store(':memory:');
  const runnerState = new Runner({ config: cfg, store, zone: new ZoneClock('UTC') });
  // Detection on a generated log (with its compromised-account burst), as a live run would have done.
  const ctx = envelopeContext({ file: 'gen.log', zone: new ZoneClock('UTC'), year: 2026 });
  let offset = 0;
  for (const line of generateLines({ lines: 30_000, seed: 7 })) {
    const rec = runnerState.pipeline.lines.envelope(line, offset, ctx);
    if (rec) runnerState.pipeline.feed(rec);
    offset += Buffer.byteLength(line) + 1;
  }
  const unlocked: string[] = [];
  const zmprov = recordingRunner();
  const actuator = new Actuator({ config: { dryRun: false }, runner: zmprov.runner, audit: (r) => store.recordAction(r) });
  const app = buildApi({
    store,
    tokens: [
      { name: 'grafana', role: 'read', token: READ },
      { name: 'oncall', role: 'act', token: ACT },
    ],
    actuator,
    policy: {
      unlocked: (a) => {
        unlocked.push(a);
        runnerState.pipeline.policy.unlocked(a);
      },
      lockedByOperator: (a) => runnerState.pipeline.policy.lockedByOperator(a),
      isLocked: (a) => runnerState.pipeline.policy.isLocked(a),
    },
    metrics: () => renderMetrics(runnerState.metricFamilies()),
    inputs: () => [{ path: '/var/log/zimbra.log', lines: 30_000, lagBytes: 0, rotations: 0 }],
  });
  return { app, store, runnerState, zmprov, unlocked };
}

describe('API', () => {
  let t: ReturnType<typeof setup>;
  beforeAll(async () => {
    t = setup();
    await t.runnerState.checkpoint(true); // findings, decisions, messages into the store
    await t.app.ready();
  });
  afterAll(async () => {
    await t.app.close();
    t.store.close();
  });
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  it('serves /health without auth', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/health' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'ok', inputs: [{ path: '/var/log/zimbra.log', lagBytes: 0 }] });
  });

  it('401 without a token or with an unknown one, 200 with a read token', async () => {
    const none = await t.app.inject({ method: 'GET', url: '/findings' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(none.json()).toMatchObject({ error: { code: 'FG_API_UNAUTHORIZED' } });
    const wrong = await t.app.inject({ method: 'GET', url: '/findings', headers: auth(READ.slice(0, -1) + 'X') });
    expect(wrong.statusCode).toBe(401);
    const basic = await t.app.inject({ method: 'GET', url: '/findings', headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(basic.statusCode).toBe(401);
    const ok = await t.app.inject({ method: 'GET', url: '/findings', headers: auth(READ) });
    expect(ok.statusCode).toBe(200);
    const body = ok.json() as { findings: { detector: string; ts: number }[]; count: number };
    expect(body.count).toBeGreaterThan(5);
    expect(body.findings.map((f) => f.ts)).toEqual([...body.findings.map((f) => f.ts)].sort((a, b) => b - a));
    // The act token reads too.
    expect((await t.app.inject({ method: 'GET', url: '/findings?limit=1', headers: auth(ACT) })).json()).toMatchObject({ count: 1 });
  });

  it('filters findings by detector, account and time', async () => {
    const all = (await t.app.inject({ method: 'GET', url: '/findings?limit=1000', headers: auth(READ) })).json() as { findings: { detector: string; ts: number; entity: { kind: string; id: string }; account?: string }[] };
    const f = all.findings.find((x) => x.entity.kind === 'account')!;
    const byDet = (await t.app.inject({ method: 'GET', url: `/findings?detector=${f.detector}`, headers: auth(READ) })).json() as { findings: { detector: string }[] };
    expect(byDet.findings.length).toBeGreaterThan(0);
    expect(byDet.findings.every((x) => x.detector === f.detector)).toBe(true);
    const byAcct = (await t.app.inject({ method: 'GET', url: `/findings?account=${encodeURIComponent(f.entity.id)}`, headers: auth(READ) })).json() as { findings: unknown[] };
    expect(byAcct.findings.length).toBeGreaterThan(0);
    const iso = new Date(f.ts).toISOString();
    const window = (await t.app.inject({ method: 'GET', url: `/findings?since=${encodeURIComponent(iso)}&until=${f.ts}`, headers: auth(READ) })).json() as { findings: { ts: number }[] };
    expect(window.findings.every((x) => x.ts === f.ts)).toBe(true);
    expect(window.findings.length).toBeGreaterThan(0);
  });

  it('400 naming the field for invalid queries', async () => {
    const cases: [string, string][] = [
      ['/findings?limit=0', 'limit'],
      ['/findings?limit=abc', 'limit'],
      ['/findings?since=yesterday-ish', 'since'],
      ['/findings?detector=DROP%20TABLE', 'detector'],
      ['/findings?colour=red', 'colour'],
    ];
    for (const [url, field] of cases) {
      const r = await t.app.inject({ method: 'GET', url, headers: auth(READ) });
      expect(r.statusCode, url).toBe(400);
      expect(r.json()).toMatchObject({ error: { code: 'FG_API_INVALID_REQUEST' } });
      expect((r.json() as { error: { message: string } }).error.message).toContain(field);
    }
    const acct = await t.app.inject({ method: 'GET', url: '/findings?account=-oProxyCommand%3Dx', headers: auth(READ) });
    expect(acct.statusCode).toBe(400);
    expect(acct.json()).toMatchObject({ error: { code: 'FG_ACTION_INVALID_ACCOUNT' } });
    const nf = await t.app.inject({ method: 'GET', url: '/nope', headers: auth(READ) });
    expect(nf.statusCode).toBe(404);
    expect(nf.json()).toMatchObject({ error: { code: 'FG_API_NOT_FOUND' } });
  });

  it('shows an account: findings, messages, decisions, lock state', async () => {
    const f = (t.store.findings({ limit: 1000 }) as { entity: { kind: string; id: string } }[]).find((x) => x.entity.kind === 'account')!;
    const r = await t.app.inject({ method: 'GET', url: `/accounts/${encodeURIComponent(f.entity.id.toUpperCase())}`, headers: auth(READ) });
    expect(r.statusCode).toBe(200);
    const b = r.json() as { account: string; findings: unknown[]; messages: unknown[]; decisions: unknown[]; locked: boolean; lockedDryRun: boolean };
    expect(b.account).toBe(f.entity.id.toLowerCase());
    expect(b.findings.length).toBeGreaterThan(0);
    expect(b.messages.length).toBeGreaterThan(0);
    expect(b.locked).toBe(false);
  });

  it('lock/unlock: 403 for a read token, real zmprov argv for an act token, recorded with the token name', async () => {
    const acct = 'alice@example.com';
    const before = t.zmprov.calls.length;
    const denied = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/lock`, headers: auth(READ) });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ error: { code: 'FG_API_FORBIDDEN' } });
    expect(t.zmprov.calls.length).toBe(before);

    const lock = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/lock`, headers: auth(ACT), payload: { reason: 'ticket 4711' } });
    expect(lock.statusCode, lock.body).toBe(200);
    expect(t.zmprov.calls.slice(before)).toEqual([
      ['/opt/zimbra/bin/zmprov', 'ga', acct, 'zimbraAccountStatus'],
      ['/opt/zimbra/bin/zmprov', 'ma', acct, 'zimbraAccountStatus', 'locked'],
    ]);
    expect(lock.json()).toMatchObject({ ok: true, records: [{ action: 'lock', account: acct, dryRun: false, changed: true, by: 'oncall', reason: ['ticket 4711'] }] });
    const shown = (await t.app.inject({ method: 'GET', url: `/accounts/${acct}`, headers: auth(READ) })).json() as { locked: boolean; policyLocked: boolean; actions: { action: string; by: string }[] };
    expect(shown.locked).toBe(true);
    expect(shown.policyLocked).toBe(true); // the policy will not lock it a second time
    expect(shown.actions[0]).toMatchObject({ action: 'lock', by: 'oncall' });

    const unlock = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/unlock`, headers: auth(ACT) });
    expect(unlock.statusCode, unlock.body).toBe(200);
    expect(t.zmprov.calls.slice(before + 2)).toEqual([
      ['/opt/zimbra/bin/zmprov', 'ga', acct, 'zimbraAccountStatus'],
      ['/opt/zimbra/bin/zmprov', 'ma', acct, 'zimbraAccountStatus', 'active'],
    ]);
    expect(t.unlocked).toEqual([acct]);
    expect(((await t.app.inject({ method: 'GET', url: `/accounts/${acct}`, headers: auth(READ) })).json() as { locked: boolean }).locked).toBe(false);

    const badBody = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/lock`, headers: auth(ACT), payload: { reason: 'x', force: true } });
    expect(badBody.statusCode).toBe(400);
    expect((badBody.json() as { error: { message: string } }).error.message).toContain('force');
  });

  it("unlock releases the mail the account's lock put on hold (from the stored audit trail), once; release: false keeps it held", async () => {
    const acct = 'bob@example.com';
    const hold = (id: string, queueIds: string[], extra: Partial<ActionRecord> = {}): ActionRecord => ({
      id,
      ts: Date.now(),
      action: 'hold',
      account: acct,
      ok: true,
      dryRun: false,
      changed: true,
      backend: 'postfix',
      detail: 'held',
      by: 'policy',
      reason: ['forged-sender'],
      data: { queueIds },
      ...extra,
    });
    const lock = () => t.app.inject({ method: 'POST', url: `/accounts/${acct}/lock`, headers: auth(ACT) });
    expect((await lock()).statusCode).toBe(200);
    // What the policy's lock held earlier (another process, or before a restart: only the store knows), and a dry run that held nothing.
    t.store.recordAction(hold('h1', ['4F2A31C0B1', '4F2A31C0B2']));
    t.store.recordAction(hold('h2', ['4F2A31C0B3'], { dryRun: true }));
    const before = t.zmprov.calls.length;
    const unlock = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/unlock`, headers: auth(ACT), payload: { reason: 'password reset' } });
    expect(unlock.statusCode, unlock.body).toBe(200);
    const records = (unlock.json() as { records: ActionRecord[] }).records;
    expect(records.map((r) => [r.action, r.ok, r.by])).toEqual([
      ['unlock', true, 'oncall'],
      ['release', true, 'oncall'],
    ]);
    expect(t.zmprov.calls.slice(before).at(-1)).toEqual(['/opt/zimbra/common/sbin/postsuper', '-H', '-']);
    expect(t.zmprov.inputs.at(-1)!.split('\n').filter(Boolean).sort()).toEqual(['4F2A31C0B1', '4F2A31C0B2']);
    expect(t.store.heldQueueIds(acct)).toEqual([]);

    // The next episode: locked again, nothing held since the unlock, so nothing is released.
    expect((await lock()).statusCode).toBe(200);
    const again = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/unlock`, headers: auth(ACT) });
    expect((again.json() as { records: ActionRecord[] }).records.map((r) => r.action)).toEqual(['unlock']);

    // Held, then unlocked with release: false (to delete the spam first): nothing released, and the trail says so.
    expect((await lock()).statusCode).toBe(200);
    t.store.recordAction(hold('h3', ['4F2A31C0B4']));
    const inputs = t.zmprov.inputs.length;
    const keep = await t.app.inject({ method: 'POST', url: `/accounts/${acct}/unlock`, headers: auth(ACT), payload: { release: false } });
    expect((keep.json() as { records: ActionRecord[] }).records.map((r) => r.action)).toEqual(['unlock']);
    expect(t.zmprov.inputs.length).toBe(inputs);
  });

  it('a hostile account name is refused with 400 before any process starts', async () => {
    const before = t.zmprov.calls.length;
    for (const name of ['-oProxyCommand=touch /tmp/x', 'a;rm -rf /', 'x@y@z', '$(reboot)@example.com', 'a b@example.com']) {
      for (const verb of ['lock', 'unlock']) {
        const r = await t.app.inject({ method: 'POST', url: `/accounts/${encodeURIComponent(name)}/${verb}`, headers: auth(ACT) });
        expect(r.statusCode, name).toBe(400);
        expect(r.json()).toMatchObject({ error: { code: 'FG_ACTION_INVALID_ACCOUNT' } });
      }
      const g = await t.app.inject({ method: 'GET', url: `/accounts/${encodeURIComponent(name)}`, headers: auth(READ) });
      expect(g.statusCode).toBe(400);
    }
    expect(t.zmprov.calls.length).toBe(before);
  });

  it('/metrics is Prometheus text with no account or IP in it', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain');
    const text = r.body;
    expect(text).toMatch(/^floodgate_lines_total 30000$/m);
    expect(text).toMatch(/^floodgate_findings_total\{detector="[a-z-]+"\} \d+$/m);
    expect(text).toMatch(/^floodgate_decisions_total\{action="(alert|lock)"\} \d+$/m);
    expect(text).toMatch(/^floodgate_actions_total\{kind="lock",ok="true"\} \d+$/m);
    expect(text).toContain('floodgate_checkpoint_last_seconds');
    expect(text).not.toContain('@');
    expect(text).not.toMatch(/\d+\.\d+\.\d+\.\d+/);
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+0-9.eInfNa]+)$/);
  });

  it('/openapi.json is an OpenAPI 3.1 document describing every route', async () => {
    const r = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(r.statusCode).toBe(200);
    const doc = JSON.parse(r.body) as { openapi: string; paths: Record<string, Record<string, { parameters?: { name: string }[] }>> };
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(routes.sort()).toEqual(
      ['GET /health', 'GET /metrics', 'GET /findings', 'GET /accounts/{account}', 'POST /accounts/{account}/lock', 'POST /accounts/{account}/unlock', 'GET /openapi.json'].sort(),
    );
    expect(doc.paths['/findings']!.get!.parameters!.map((p) => p.name).sort()).toEqual(['account', 'detector', 'limit', 'since', 'until']);
    expect(openApiDocument()).toEqual(doc);
    // Every documented route exists (no 404 for it).
    for (const route of routes) {
      const [method, path] = route.split(' ') as ['GET' | 'POST', string];
      const res = await t.app.inject({ method, url: path.replace('{account}', 'nobody@example.com'), headers: auth(READ) });
      expect(res.statusCode, route).not.toBe(404);
    }
  });
});

describe("API: an operator's lock holds the account's queued mail", () => {
  const acct = 'carol@example.com';
  /** postqueue -j as Postfix prints it: the account's own mail, a forged sender, an id the logs tie to it, another user's mail, one already held. */
  const queue = [
    { queue_name: 'deferred', queue_id: '5A1B2C3D01', sender: acct, recipients: [{ address: 'a@example.net' }] },
    { queue_name: 'active', queue_id: '5A1B2C3D02', sender: 'sales@yahoo.com.tw', recipients: [{ address: 'b@example.net' }] },
    { queue_name: 'deferred', queue_id: '5A1B2C3D03', sender: 'promo@other.example', recipients: [{ address: 'c@example.net' }] },
    { queue_name: 'deferred', queue_id: '5A1B2C3D04', sender: 'dave@example.com', recipients: [{ address: 'd@example.net' }] },
    { queue_name: 'hold', queue_id: '5A1B2C3D05', sender: acct, recipients: [{ address: 'e@example.net' }] },
  ];

  function holdSetup(lookup: (a: string) => { senders: string[]; queueIds: string[] }) {
    const calls: string[][] = [];
    const stdin: string[] = [];
    const status = new Map<string, string>();
    const runner: CommandRunner = {
      async run(argv, opts): Promise<RunResult> {
        calls.push([...argv]);
        const bin = argv[0]!;
        if (bin.endsWith('/postqueue')) return { code: 0, stdout: queue.map((m) => JSON.stringify(m)).join('\n') + '\n', stderr: '' };
        if (bin.endsWith('/postsuper')) {
          stdin.push(opts?.input ?? '');
          return { code: 0, stdout: '', stderr: '' };
        }
        const [, verb, account, ...rest] = argv;
        if (verb === 'ga') return { code: 0, stdout: `zimbraAccountStatus: ${status.get(account!) ?? 'active'}\n`, stderr: '' };
        status.set(account!, rest[1]!);
        return { code: 0, stdout: '', stderr: '' };
      },
    };
    const store = new Store(':memory:');
    const lookups: string[] = [];
    const app = buildApi({
      store,
      tokens: [{ name: 'oncall', role: 'act', token: ACT }],
      actuator: new Actuator({ config: { dryRun: false }, runner, audit: (r) => store.recordAction(r) }),
      policy: { unlocked: () => undefined, lockedByOperator: () => undefined, isLocked: () => false },
      metrics: () => '',
      hold: {
        onLock: true,
        queuedMailOf: (a) => {
          lookups.push(a);
          return lookup(a);
        },
      },
    });
    return { app, store, calls, stdin, lookups };
  }
  const post = (app: ReturnType<typeof buildApi>, url: string, payload?: object) =>
    app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${ACT}` }, ...(payload ? { payload } : {}) });
  const ids = (s: string | undefined) => (s ?? '').split('\n').filter(Boolean).sort();

  it('holds mail by the account, its forged senders and its queue ids; the unlock releases exactly that', async () => {
    const t = holdSetup(() => ({ senders: ['SALES@yahoo.com.tw'], queueIds: ['5A1B2C3D03'] }));
    const lock = await post(t.app, `/accounts/${acct}/lock`, { reason: 'phished' });
    expect(lock.statusCode, lock.body).toBe(200);
    const records = (lock.json() as { records: ActionRecord[] }).records;
    expect(records.map((r) => [r.action, r.ok, r.by])).toEqual([
      ['lock', true, 'oncall'],
      ['hold', true, 'oncall'],
    ]);
    expect(t.lookups).toEqual([acct]);
    expect(t.calls.at(-1)).toEqual(['/opt/zimbra/common/sbin/postsuper', '-h', '-']);
    // Not dave's mail, not the message already on hold.
    expect(ids(t.stdin.at(-1))).toEqual(['5A1B2C3D01', '5A1B2C3D02', '5A1B2C3D03']);
    expect(t.store.heldQueueIds(acct).sort()).toEqual(['5A1B2C3D01', '5A1B2C3D02', '5A1B2C3D03']);

    const unlock = await post(t.app, `/accounts/${acct}/unlock`);
    expect((unlock.json() as { records: ActionRecord[] }).records.map((r) => r.action)).toEqual(['unlock', 'release']);
    expect(t.calls.at(-1)).toEqual(['/opt/zimbra/common/sbin/postsuper', '-H', '-']);
    expect(ids(t.stdin.at(-1))).toEqual(['5A1B2C3D01', '5A1B2C3D02', '5A1B2C3D03']);
    await t.app.close();
    t.store.close();
  });

  it('hold: false locks only; a failed lookup still holds by the account address and says why', async () => {
    const t = holdSetup(() => {
      throw new Error('clickhouse: connect ECONNREFUSED');
    });
    const only = await post(t.app, `/accounts/${acct}/lock`, { hold: false });
    expect((only.json() as { records: ActionRecord[] }).records.map((r) => r.action)).toEqual(['lock']);
    expect(t.lookups).toEqual([]);
    expect(t.calls.some((c) => c[0]!.endsWith('/postqueue'))).toBe(false);

    const other = 'erin@example.com';
    const lock = await post(t.app, `/accounts/${other}/lock`);
    const hold = (lock.json() as { records: ActionRecord[] }).records[1]!;
    expect(hold).toMatchObject({ action: 'hold', ok: true, data: { hintsError: 'clickhouse: connect ECONNREFUSED' } });
    expect(hold.changed).toBe(false); // erin has nothing queued
    await t.app.close();
    t.store.close();
  });

  it('refuses release on a lock and hold on an unlock, before anything runs', async () => {
    const t = holdSetup(() => ({ senders: [], queueIds: [] }));
    for (const [verb, body, field] of [
      ['lock', { release: true }, 'release'],
      ['unlock', { hold: true }, 'hold'],
    ] as const) {
      const r = await post(t.app, `/accounts/${acct}/${verb}`, body);
      expect(r.statusCode).toBe(400);
      expect((r.json() as { error: { message: string } }).error.message).toContain(field);
    }
    expect(t.calls).toEqual([]);
    await t.app.close();
    t.store.close();
  });
});
