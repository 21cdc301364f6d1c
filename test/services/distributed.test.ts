// Distributed mode end to end on the real services: log files appended →
// `floodgate ship` → Kafka → `floodgate detect` (parse, re-key, detect) →
// ClickHouse, compared with what `floodgate replay` finds on the same files.
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as S from '../../bench/scenarios.js';
import { HOLD_LOOKBACK_MS } from '../../src/actions/queued-mail.js';
import { tiedTo } from '../helpers/queue-ids.js';
import { appendSlowly, Cluster, findingKey, replay, waitFor } from './helpers/cluster.js';
import { REPO_ROOT } from './helpers/services.js';
import { freePort } from './redis-server.js';

const DEMO = join(REPO_ROOT, 'demo', 'zimbra-day.log');
const READ_TOKEN = 'read-token-for-tests-0123456789';

const clusters: Cluster[] = [];
afterAll(async () => {
  for (const c of clusters) await c.close();
});

function cluster(opts: ConstructorParameters<typeof Cluster>[0] = {}): Cluster {
  const c = new Cluster(opts);
  clusters.push(c);
  return c;
}

interface FindingRow {
  detector: string;
  entity_id: string;
  ts_ms: string;
  score: number;
  evidence: string;
  window: string;
}

async function storedFindings(c: Cluster): Promise<FindingRow[]> {
  return c.query<FindingRow>('SELECT detector, entity_id, ts_ms, score, evidence, window FROM findings FINAL');
}

/** Waits until ClickHouse holds exactly the findings replay gives (or times out showing the difference). */
async function expectSameFindingsAsReplay(c: Cluster, config: string, files: string[], timeoutMs = 90_000): Promise<string[]> {
  const want = (await replay(config, files)).findings.map(findingKey).sort();
  expect(want.length).toBeGreaterThan(0);
  let got: string[] = [];
  await waitFor(
    'the findings replay gives',
    async () => {
      got = (await storedFindings(c)).map((f) => findingKey(f)).sort();
      return JSON.stringify(got) === JSON.stringify(want) ? true : undefined;
    },
    timeoutMs,
    () => `want ${want.length} findings, ClickHouse has ${got.length}\nmissing: ${want.filter((w) => !got.includes(w)).slice(0, 10).join('\n')}\nextra: ${got.filter((g) => !want.includes(g)).slice(0, 10).join('\n')}\n${c.logs()}`,
  );
  return want;
}

/** The partitions of the last assignment a worker logged for a stage. */
function lastAssignment(log: string, stage: 'parse' | 'detect'): number[] | undefined {
  let last: number[] | undefined;
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"partitions assigned"')) continue;
    const rec = JSON.parse(line) as { stage: string; partitions: number[] };
    if (rec.stage === stage) last = rec.partitions;
  }
  return last;
}

/** Log time of a scenario line: syslog `Nov 27 10:01:02` or mailbox.log `2026-11-27 10:01:02,123`. */
function lineTime(line: string): number {
  const ts = /^\d{4}-/.test(line) ? Date.parse(`${line.slice(0, 19).replace(' ', 'T')}Z`) : Date.parse(`2026 ${line.slice(0, 15)} UTC`);
  if (!Number.isFinite(ts)) throw new Error(`no time in scenario line: ${line.slice(0, 40)}`);
  return ts;
}

/**
 * Append several hosts' lines as they would be written live: interleaved by
 * time. History goes ten minutes of log at a time; inside [fineFrom, fineTo)
 * five seconds at a time with a pause, so each host's lines reach Kafka in
 * about the order they were written (as with live MTAs), not a host ahead.
 */
async function appendInTimeOrder(files: [string, string[]][], fineFrom: number, fineTo: number): Promise<void> {
  const all = files.flatMap(([path, lines]) => lines.map((line) => ({ path, line, ts: lineTime(line) })));
  all.sort((a, b) => a.ts - b.ts);
  for (let i = 0; i < all.length; ) {
    const fine = all[i]!.ts >= fineFrom && all[i]!.ts < fineTo;
    const end = all[i]!.ts + (fine ? 5000 : 10 * S.MIN);
    const byFile = new Map<string, string[]>();
    for (; i < all.length && all[i]!.ts < end && (fine || all[i]!.ts < fineFrom || all[i]!.ts >= fineTo); i++) {
      const list = byFile.get(all[i]!.path) ?? [];
      list.push(all[i]!.line);
      byFile.set(all[i]!.path, list);
    }
    for (const [path, lines] of byFile) appendFileSync(path, lines.join('\n') + '\n');
    await new Promise((r) => setTimeout(r, fine ? 250 : 20));
  }
}

describe('floodgate ship → Kafka → floodgate detect → ClickHouse', () => {
  it('finds and (dry-run) locks the demo day\'s stolen account, with the same findings as replay, every event stored once', async () => {
    const c = cluster({ partitions: 3, extra: { api: { tokens: [{ name: 'soc', role: 'read', token: READ_TOKEN }] } } });
    const log = join(c.dir, 'zimbra.log');
    writeFileSync(log, '');
    const config = c.config('mta1', [{ path: log }], { host: 'mta1' });
    c.detect('w1', config);
    c.ship('ship1', config);
    const port = await freePort();
    c.spawn('api', ['api', '--config', config, '--listen', `127.0.0.1:${port}`]);
    const lines = readFileSync(DEMO, 'utf8').split('\n').filter((l) => l !== '');
    await appendSlowly(log, lines, 8, 300);

    const findings = await expectSameFindingsAsReplay(c, config, [log]);
    // Every event of every line, each stored once (the events table is keyed by a deterministic id).
    const parsed = await waitFor('all events stored', async () => {
      const r = await c.query<{ n: string; ids: string }>('SELECT count() AS n, uniqExact(id) AS ids FROM events FINAL');
      return Number(r[0]!.n) > 0 && Number(r[0]!.n) >= 26_000 ? r[0] : undefined;
    }, 60_000, () => c.logs());
    expect(Number(parsed.n)).toBe(Number(parsed.ids));
    const raw = await c.count('SELECT count() AS n FROM events');
    expect(raw).toBe(Number(parsed.n)); // no replayed duplicates either

    const locks = await c.query<{ account: string; dry_run: number }>("SELECT account, dry_run FROM decisions FINAL WHERE action = 'lock'");
    expect(locks.map((l) => l.account)).toEqual(['lucas@example.com']);
    expect(Number(locks[0]!.dry_run)).toBe(1);
    const actions = await waitFor('the dry-run lock recorded as an action', async () => {
      const r = await c.query<{ action: string; account: string; dry_run: number }>("SELECT action, account, dry_run FROM actions FINAL WHERE action = 'lock'");
      return r.length > 0 ? r : undefined;
    }, 30_000, () => c.logs());
    expect(actions).toEqual([{ action: 'lock', account: 'lucas@example.com', dry_run: 1 }]);
    const msgs = await c.count("SELECT count() AS n FROM messages FINAL WHERE sasl_user = 'lucas@example.com'");
    expect(msgs).toBeGreaterThan(0);
    expect(findings.some((f) => f.startsWith('sender-mismatch|lucas@example.com|'))).toBe(true);

    // The SOC sees the same through `floodgate api` (ClickHouse + Redis), with a token.
    const base = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${READ_TOKEN}` };
    const noToken = await fetch(`${base}/findings`);
    expect(noToken.status).toBe(401);
    const viaApi = (await (await fetch(`${base}/findings?limit=1000`, { headers: auth })).json()) as { findings: { detector: string; entity: { id: string }; ts: number; score: number }[] };
    expect(viaApi.findings.map((f) => findingKey(f)).sort()).toEqual(findings);
    const account = (await (await fetch(`${base}/accounts/lucas@example.com`, { headers: auth })).json()) as Record<string, unknown[]>;
    expect(JSON.stringify(account)).toContain('sender-mismatch');
  });

  it('two MTAs carrying one compromised account: its windows see both hosts, as replay of both files does', async () => {
    const c = cluster({ partitions: 4 });
    const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
    const users = S.users(8);
    const victim = users[2]!.account;
    const mta1 = new S.ScenarioLog(11, 'mta1');
    const mta2 = new S.ScenarioLog(12, 'mta2');
    S.background(mta1, { start: EP - 6 * S.HOUR, end: EP + S.HOUR, users: users.slice(0, 4), inboundPerHour: 6 });
    S.background(mta2, { start: EP - 6 * S.HOUR, end: EP + S.HOUR, users: users.slice(4), inboundPerHour: 6 });
    // The spammer spreads the flood over both outbound MTAs.
    // The spammer spreads its forged messages over both outbound MTAs.
    S.forgedSenderFlood(mta1, { account: victim, ips: ['41.203.18.77'], start: EP, count: 7, paceMs: 60_000 });
    S.forgedSenderFlood(mta2, { account: victim, ips: ['41.203.18.78'], start: EP + 30_000, count: 7, paceMs: 60_000 });
    const f1 = join(c.dir, 'mta1.log');
    const f2 = join(c.dir, 'mta2.log');
    writeFileSync(f1, '');
    writeFileSync(f2, '');
    const cfg1 = c.config('mta1', [{ path: f1 }], { host: 'mta1' });
    const cfg2 = c.config('mta2', [{ path: f2 }], { host: 'mta2' });
    c.detect('w1', cfg1);
    c.ship('ship1', cfg1);
    c.ship('ship2', cfg2);
    await appendInTimeOrder(
      [
        [f1, mta1.render()],
        [f2, mta2.render()],
      ],
      EP - S.MIN,
      EP + 10 * S.MIN,
    );

    // The same findings as one standalone replay over both files together:
    // the same detectors on the same entities. (Times and scores may differ a
    // little: two hosts' lines reach Kafka in arrival order, replay merges
    // them by timestamp.)
    // Only the victim's findings are compared: a borderline finding on some
    // other entity may tip either way with the hosts' arrival order.
    const want = new Set((await replay(cfg1, [f1, f2])).findings.filter((f) => f.entity.id === victim).map((f) => f.detector));
    expect(want.has('sender-mismatch')).toBe(true);
    await waitFor(
      'the detectors replay finds on the victim',
      async () => {
        const got = new Set((await storedFindings(c)).filter((f) => f.entity_id === victim).map((f) => f.detector));
        return [...want].every((k) => got.has(k)) && [...got].every((k) => want.has(k)) ? true : undefined;
      },
      90_000,
      () => c.logs(),
    );
    // And strictly more than either host alone shows: one account, not two half-signals.
    const victimFindings = (await storedFindings(c)).filter((f) => f.entity_id === victim);
    const stored = victimFindings.filter((f) => f.detector === 'sender-mismatch');
    expect(stored.length).toBeGreaterThan(0);
    // Its first window already holds messages from both hosts (the forged
    // messages alternate between the MTAs, each from its own client IP); had
    // each host's lines been detected apart, no window would name both IPs.
    const ipsSeen = new Set(stored.flatMap((f) => (JSON.parse(f.window) as { clientIps?: string[] }).clientIps ?? []));
    expect([...ipsSeen].sort(), `sender-mismatch windows: ${stored.map((f) => f.window).join(' ')}`).toEqual(['41.203.18.77', '41.203.18.78']);
    for (const alone of [f1, f2]) {
      const r = (await replay(cfg1, [alone])).findings.filter((f) => f.entity.id === victim && f.detector === 'sender-mismatch') as unknown as { window: { clientIps?: string[] } }[];
      expect(new Set(r.flatMap((f) => f.window.clientIps ?? [])).size).toBeLessThanOrEqual(1);
    }
    // The account is locked, as replay of both files locks it, and nobody else is.
    const wantLocks = (await replay(cfg1, [f1, f2])).decisions.filter((d) => d.action === 'lock').map((d) => d.entity.id);
    expect(wantLocks).toEqual([victim]);
    const locks = await waitFor('the lock', async () => {
      const r = await c.query<{ account: string }>("SELECT account FROM decisions FINAL WHERE action = 'lock'");
      return r.length > 0 ? r : undefined;
    }, 30_000, () => c.logs());
    expect(locks.map((l) => l.account)).toEqual(wantLocks);
  }, 300_000);

  it('a listed IP logging in is handed from the IP\'s partition to the account\'s: the account is locked as replay locks it', async () => {
    const c = cluster({ partitions: 4 });
    const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
    const users = S.users(8);
    const victim = users[4]!.account;
    const mx = new S.ScenarioLog(7, 'mx1');
    S.background(mx, { start: EP - 24 * S.HOUR, end: EP + S.HOUR, users, inboundPerHour: 6 });
    S.listedIpLogin(mx, { account: victim, ip: '185.100.87.41', start: EP, send: 40, paceMs: 15_000 });
    const log = join(c.dir, 'mx1.log');
    writeFileSync(log, mx.render().join('\n') + '\n');
    const config = c.config('mx1', [{ path: log }], { host: 'mx1' });
    const want = await replay(config, [log]);
    const wantLocks = want.decisions.filter((d) => d.action === 'lock').map((d) => d.entity.id);
    expect(wantLocks).toEqual([victim]); // the standalone answer, and what needs the hand-off
    expect(want.findings.some((f) => f.detector === 'rbl' && f.entity.id === victim)).toBe(true);
    c.detect('w1', config);
    c.ship('ship1', config);
    await waitFor(
      'the listed-ip finding and the lock',
      async () => {
        const rbl = await c.count(`SELECT count() AS n FROM findings FINAL WHERE detector = 'rbl' AND entity_id = '${victim}'`);
        const locks = await c.query<{ account: string }>("SELECT account FROM decisions FINAL WHERE action = 'lock'");
        return rbl > 0 && locks.length > 0 ? locks.map((l) => l.account) : undefined;
      },
      90_000,
      () => c.logs(),
    ).then((locks) => expect(locks).toEqual(wantLocks));
    const decision = await c.query<{ signals: string[] }>(`SELECT signals FROM decisions FINAL WHERE action = 'lock' AND account = '${victim}'`);
    expect(decision[0]!.signals).toContain('listed-ip');
  }, 180_000);

  it("a flood held in the queue (receivers throttle it): its settled recipients cross Kafka, and the findings are replay's", async () => {
    const c = cluster({ partitions: 4 });
    const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
    const users = S.users(8);
    const victim = users[1]!.account;
    const mx = new S.ScenarioLog(2, 'mx1');
    S.background(mx, { start: EP - 72 * S.HOUR, end: EP + S.HOUR, users, inboundPerHour: 6 });
    // from its usual IP, as itself: the deferrals (retried, still deferred 15 min on) are the compromise signal
    S.ownSenderFlood(mx, { account: victim, ip: users[1]!.ip, start: EP, perHour: 300, minutes: 40, deferRate: 0.9 });
    const log = join(c.dir, 'mx1.log');
    // The file ends with the flood's mail still queued: replay lets it go at the end of input, the detect
    // stage does not; before that, each settled recipient must have been counted alike on both paths.
    writeFileSync(log, mx.render().filter((l) => lineTime(l) < EP + 50 * S.MIN).join('\n') + '\n');
    const config = c.config('mx1', [{ path: log }], { host: 'mx1' });
    const want = await replay(config, [log]);
    expect(want.findings.some((f) => f.detector === 'bounce-ratio' && f.entity.id === victim)).toBe(true);
    expect(want.decisions.filter((d) => d.action === 'lock').map((d) => d.entity.id)).toEqual([victim]);
    c.detect('w1', config);
    c.ship('ship1', config);
    await expectSameFindingsAsReplay(c, config, [log]);
    const decision = await waitFor('the lock', async () => {
      const r = await c.query<{ signals: string[] }>(`SELECT signals FROM decisions FINAL WHERE action = 'lock' AND account = '${victim}'`);
      return r.length > 0 ? r : undefined;
    }, 30_000, () => c.logs());
    expect(decision[0]!.signals).toEqual(expect.arrayContaining(['volume', 'bounce-spike']));

    // The (dry-run) hold names the queue ids the worker read back from the stored events: each one the log ties to
    // the victim (its submissions and their re-injected ids), and every one of them logged in the day before the decision.
    const [lockTs] = await c.query<{ ts_ms: string }>(`SELECT ts_ms FROM decisions FINAL WHERE action = 'lock' AND account = '${victim}'`);
    const hold = await waitFor('the hold record', async () => {
      const r = await c.query<{ json: string }>(`SELECT json FROM actions FINAL WHERE action = 'hold' AND account = '${victim}'`);
      return r.length > 0 ? (JSON.parse(r[0]!.json) as { ok: boolean; data: { queueIds: string[]; hintsError?: string } }) : undefined;
    }, 30_000, () => c.logs());
    expect(hold.ok).toBe(true);
    expect(hold.data.hintsError).toBeUndefined();
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
    const tied = tiedTo(lines, victim);
    const at = Number(lockTs!.ts_ms);
    const beforeLock = tiedTo(lines.filter((l) => lineTime(l) >= at - HOLD_LOOKBACK_MS && lineTime(l) < at), victim);
    expect(beforeLock.ids.size).toBeGreaterThan(50);
    const named = new Set(hold.data.queueIds);
    for (const id of named) expect(tied.ids.has(id) || tied.hops.has(id), id).toBe(true);
    for (const id of [...beforeLock.ids, ...beforeLock.hops]) expect(named.has(id), id).toBe(true);
  }, 180_000);

  it('two detect workers produce the same findings as one', async () => {
    const c = cluster({ partitions: 4 });
    const log = join(c.dir, 'zimbra.log');
    copyFileSync(DEMO, log);
    const config = c.config('mta1', [{ path: log }], { host: 'mta1' });
    c.detect('w1', config);
    c.detect('w2', config);
    // Lines flow only once both workers own a share of the events partitions.
    const split = await waitFor(
      'both workers to own events partitions',
      () => {
        const owned = ['w1', 'w2'].map((w) => lastAssignment(readFileSync(join(c.dir, `${w}.log`), 'utf8'), 'detect'));
        return Promise.resolve(owned.every((o) => o !== undefined && o.length > 0 && o.length < 4) ? owned : undefined);
      },
      60_000,
      () => c.logs(),
    );
    expect(split.flat().sort()).toEqual([0, 1, 2, 3]);
    c.ship('ship1', config);
    await expectSameFindingsAsReplay(c, config, [log]);
    // Each worker really processed a share (opened partitions of its own).
    for (const w of ['w1', 'w2']) expect(readFileSync(join(c.dir, `${w}.log`), 'utf8')).toMatch(/"stage":"detect","partition":\d+,"from"/);
  });
});
