/**
 * `floodgate run`: real files, the real built binary, real kill -9. The
 * reference is replay on the same file (in process for messages, the CLI for
 * findings): the store must hold every message and finding exactly once.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { generateLines } from '../bench/generate.js';
import * as S from '../bench/scenarios.js';
import { loadConfig } from '../src/config/config.js';
import type { Message } from '../src/correlator/message.js';
import { ZoneClock } from '../src/envelope/zone.js';
import type { Finding } from '../src/detect/finding.js';
import { DetectPipeline } from '../src/pipeline/detect-pipeline.js';
import { mergeInputs } from '../src/pipeline/merge.js';
import { tiedTo } from './helpers/queue-ids.js';

const bin = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'fg-run-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const LINES = [...generateLines({ lines: 30_000, seed: 7 })];
const text = (lines: string[]) => lines.map((l) => l + '\n').join('');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(name: string) {
  const dir = mkdtempSync(join(root, `${name}-`));
  const log = join(dir, 'mail.log');
  const db = join(dir, 'fg.db');
  const cfg = join(dir, 'floodgate.yaml');
  writeFileSync(cfg, `timezone: UTC\ninputs:\n  - path: ${log}\nstore:\n  path: ${db}\n  retentionDays: 3650\n`);
  return { dir, log, db, cfg };
}

/**
 * A stolen account's forged-sender flood that the receivers throttle (9 in 10
 * recipients deferred and retried), after hours of ordinary traffic, written
 * to `log`.
 */
function writeThrottledFlood(log: string, o: { seed: number; historyHours: number; count: number }) {
  const sl = new S.ScenarioLog(o.seed);
  const users = S.users(12);
  const victim = users[0]!.account;
  const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
  S.background(sl, { start: EP - o.historyHours * S.HOUR, end: EP + S.HOUR, users, inboundPerHour: 10 });
  S.forgedSenderFlood(sl, { account: victim, ips: ['41.203.18.77'], start: EP, count: o.count, paceMs: 6000, deferRate: 0.9 });
  const lines = sl.render();
  writeFileSync(log, text(lines));
  return { lines, users, victim };
}

/** Replay in process: messages and findings emitted before the end-of-input flush (a live run keeps those open). */
async function replayReference(cfgPath: string, file: string) {
  const cfg = loadConfig(cfgPath);
  const messages: Message[] = [];
  const findings: Finding[] = [];
  let flushing = false;
  const p = new DetectPipeline(cfg, {
    onMessage: (m) => !flushing && messages.push(structuredClone(m)),
    onFinding: (f) => !flushing && findings.push(f),
  });
  await mergeInputs([{ path: file }], p.lines, (r) => p.feed(r), { zone: new ZoneClock('UTC') });
  await p.drain();
  flushing = true;
  await p.finish();
  return { messages, findings };
}

/** `floodgate replay` itself: its findings (all of them, flush included). */
function replayCli(cfgPath: string, file: string): Finding[] {
  const r = spawnSync(process.execPath, [bin, 'replay', '--config', cfgPath, '--json', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  expect(r.status).toBe(0);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Finding & { type: string })
    .filter((o) => o.type === 'finding');
}

function readStore(db: string) {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const messages = d.prepare<[], { json: string }>('SELECT json FROM messages ORDER BY id').all().map((r) => JSON.parse(r.json) as Message);
    const findings = d.prepare<[], { json: string }>('SELECT json FROM findings ORDER BY id').all().map((r) => JSON.parse(r.json) as Finding);
    const positions = d.prepare<[], { input: string; lines: number }>('SELECT input, lines FROM positions').all();
    const actions = d.prepare<[], { action: string; dry_run: number }>('SELECT action, dry_run FROM actions ORDER BY ts').all();
    const decisions = d.prepare<[], { n: number }>('SELECT count(*) AS n FROM decisions').get()!.n;
    const state = d.prepare<[], { json: string }>("SELECT json FROM state WHERE k = 'pipeline'").get();
    const dup = state ? (JSON.parse(state.json) as { counters: { duplicateMessages: number } }).counters.duplicateMessages : 0;
    return { messages, findings, positions, actions, decisions, duplicateMessages: dup };
  } finally {
    d.close();
  }
}

function linesInStore(db: string): number {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return d.prepare<[], { n: number | null }>('SELECT sum(lines) AS n FROM positions').get()?.n ?? 0;
    } finally {
      d.close();
    }
  } catch {
    return 0; // not created yet
  }
}

const fkey = (f: Finding) => `${f.detector}|${f.entity.kind}:${f.entity.id}|${f.ts}`;
const mkey = (m: Message) => `${m.host}|${m.queueId}|${m.firstTs}`;

function spawnRun(args: string[]) {
  const child = spawn(process.execPath, [bin, 'run', ...args], { env: { ...process.env, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, stderr: () => stderr };
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000, child?: ChildProcess) {
  const t0 = Date.now();
  while (!cond()) {
    if (child && child.exitCode !== null) throw new Error(`run exited (${child.exitCode}) while waiting for ${what}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Same messages (as JSON) and findings as the replay reference, each exactly once. */
async function expectExactlyOnce(s: ReturnType<typeof setup>, reference: string, opts: { sameOffsets: boolean }) {
  const ref = await replayReference(s.cfg, reference);
  const got = readStore(s.db);
  expect(got.duplicateMessages).toBe(0);
  const keys = got.messages.map(mkey);
  expect(new Set(keys).size).toBe(keys.length);
  expect([...keys].sort()).toEqual(ref.messages.map(mkey).sort());
  if (opts.sameOffsets) {
    const byKey = new Map(got.messages.map((m) => [mkey(m), m]));
    for (const m of ref.messages) expect(byKey.get(mkey(m))).toEqual(JSON.parse(JSON.stringify(m)));
  }
  expect(got.findings.map(fkey).sort()).toEqual(ref.findings.map(fkey).sort());
  expect(got.positions.reduce((n, p) => n + p.lines, 0)).toBe(LINES.length);
  return { ref, got };
}

describe('floodgate run', () => {
  it('--once stores the same findings and messages as replay', async () => {
    const s = setup('once');
    writeFileSync(s.log, text(LINES));
    const r = spawnSync(process.execPath, [bin, 'run', '--config', s.cfg, '--once'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(r.status, r.stderr).toBe(0);
    const { ref, got } = await expectExactlyOnce(s, s.log, { sameOffsets: true });
    expect(got.messages.length).toBeGreaterThan(1000);
    expect(got.findings.length).toBeGreaterThan(5);
    // The compromised-account burst was found and (dry-run) locked once.
    expect(got.actions.filter((a) => a.action === 'lock')).toEqual([{ action: 'lock', dry_run: 1 }]);
    expect(got.positions).toEqual([{ input: s.log, lines: LINES.length }]);
    // `floodgate replay` itself agrees, except for findings it makes at end of input (open messages flushed).
    const cli = replayCli(s.cfg, s.log);
    const live = new Set(ref.findings.map(fkey));
    expect(cli.map(fkey).filter((k) => live.has(k)).sort()).toEqual(got.findings.map(fkey).sort());
    // Status lines are JSON and name no account at info level.
    for (const l of r.stderr.split('\n').filter(Boolean)) expect(() => JSON.parse(l)).not.toThrow();
    expect(r.stderr).not.toMatch(/@example\.com/);

    // A second --once on the unchanged file adds nothing.
    const again = spawnSync(process.execPath, [bin, 'run', '--config', s.cfg, '--once'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(again.status, again.stderr).toBe(0);
    const after = readStore(s.db);
    expect(after.messages.length).toBe(got.messages.length);
    expect(after.findings.length).toBe(got.findings.length);
    expect(after.actions.length).toBe(got.actions.length);
  }, 60_000);

  it("holds (dry run) the locked account's queued mail by the queue ids its lines carry, forged senders or not", () => {
    const s = setup('hold');
    const { lines, victim } = writeThrottledFlood(s.log, { seed: 1, historyHours: 72, count: 300 });
    // The victim's queue ids from the log text: its submissions, and the ids amavis re-injected them as.
    const first = new Set(lines.flatMap((l) => /: ([0-9A-F]{10}): client=.*sasl_username=(\S+)$/.exec(l)?.[2] === victim ? [/: ([0-9A-F]{10}): client=/.exec(l)![1]!] : []));
    const theirs = new Set(first);
    for (const l of lines) {
      const m = /: ([0-9A-F]{10}): to=<.*queued as ([0-9A-F]{10})\)$/.exec(l);
      if (m && first.has(m[1]!)) theirs.add(m[2]!);
    }
    const r = spawnSync(process.execPath, [bin, 'run', '--config', s.cfg, '--once'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(r.status, r.stderr).toBe(0);
    const d = new Database(s.db, { readonly: true, fileMustExist: true });
    const holds = d.prepare<[], { json: string }>("SELECT json FROM actions WHERE action = 'hold'").all().map((x) => JSON.parse(x.json) as { account: string; dryRun: boolean; data: { queueIds: string[] } });
    d.close();
    expect(holds.map((h) => [h.account, h.dryRun])).toEqual([[victim, true]]);
    const ids = holds[0]!.data.queueIds;
    expect(ids.length).toBeGreaterThan(10);
    expect(ids.filter((id) => !theirs.has(id))).toEqual([]);
  }, 60_000);

  it("an operator's lock through run's API holds the account's mail still queued, by the queue ids the correlator ties to it", async () => {
    const s = setup('api-hold');
    const { lines, users, victim } = writeThrottledFlood(s.log, { seed: 4, historyHours: 24, count: 120 });
    // From the log text: the victim's queue ids (submissions, and their re-injections), and which ones the file leaves queued
    // (deferred, never sent or bounced after).
    const tied = tiedTo(lines, victim);
    const theirs = new Set([...tied.ids, ...tied.hops]);
    const last = new Map<string, string>();
    for (const l of lines) {
      const m = /postfix\/smtp\[\d+\]: ([0-9A-F]{10}): to=<[^>]*>, .*status=(\w+)/.exec(l);
      if (m) last.set(m[1]!, m[2]!);
    }
    const queued = [...last].filter(([id, st]) => st === 'deferred' && theirs.has(id)).map(([id]) => id).sort();
    expect(queued.length).toBeGreaterThan(20);
    // postqueue -j: each queued flood message under a forged sender never seen finished, plus another user's mail.
    const queueFile = join(s.dir, 'queue.jsonl');
    const listing = queued.map((id, i) => ({ queue_name: 'deferred', queue_id: id, sender: `q${i}z@yahoo.com.tw`, recipients: [{ address: `r${i}@hinet.net` }] }));
    listing.push({ queue_name: 'deferred', queue_id: '9F00D1CE42', sender: users[3]!.account, recipients: [{ address: 'a@example.net' }] });
    writeFileSync(queueFile, listing.map((q) => JSON.stringify(q)).join('\n') + '\n');
    const standinLog = join(s.dir, 'standin.log');
    const env = `["/usr/bin/env", ${JSON.stringify(`FG_STANDIN_LOG=${standinLog}`)}, ${JSON.stringify(`FG_STANDIN_QUEUE=${queueFile}`)}]`;
    const fixture = (name: string) => JSON.stringify(join(import.meta.dirname, 'fixtures', 'bin', name));
    appendFileSync(
      s.cfg,
      [
        'api:',
        '  tokens: [{ name: oncall, role: act, tokenEnv: FG_TEST_ACT }]',
        'actions:',
        `  zmprov: { path: ${fixture('zmprov')}, prefix: ${env} }`,
        `  queue: { postqueuePath: ${fixture('postqueue')}, postsuperPath: ${fixture('postsuper')}, prefix: ${env} }`,
        '',
      ].join('\n'),
    );
    const token = 'act-token-for-the-run-test-0123456789';
    const child = spawn(process.execPath, [bin, 'run', '--config', s.cfg, '--poll-ms', '20', '--listen', '127.0.0.1:0'], { env: { ...process.env, TZ: 'UTC', FG_TEST_ACT: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(() => /"msg":"api listening"/.test(stderr), 'the API', 20_000, child);
      const address = /"address":"(http:\/\/[^"]+)"/.exec(stderr)![1]!;
      await until(() => linesInStore(s.db) === lines.length, 'the whole file', 30_000, child);
      const res = await fetch(`${address}/accounts/${victim}/lock`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"reason":"ticket 12"}' });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { records: { action: string; ok: boolean; data?: { queueIds?: string[] } }[] };
      expect(body.records.map((r) => [r.action, r.ok])).toEqual([
        ['lock', true],
        ['hold', true],
      ]);
      const runs = readFileSync(standinLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prog: string; argv: string[]; stdin?: string });
      const held = runs.filter((r) => r.prog === 'postsuper');
      expect(held.map((r) => r.argv)).toEqual([['-h', '-']]);
      expect(held[0]!.stdin!.trim().split('\n').sort()).toEqual(queued);
    } finally {
      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
    }
  }, 60_000);

  it('kill -9 mid-file, restart: every line counts exactly once', async () => {
    const s = setup('kill');
    writeFileSync(s.log, '');
    const run1 = spawnRun(['--config', s.cfg, '--checkpoint-ms', '150', '--poll-ms', '20', '--no-api']);
    // The file grows while floodgate follows it.
    let written = 0;
    const writer = (async () => {
      while (written < LINES.length) {
        const n = Math.min(500, LINES.length - written);
        appendFileSync(s.log, text(LINES.slice(written, written + n)));
        written += n;
        await sleep(40);
      }
    })();
    await until(() => linesInStore(s.db) >= 5000, 'a checkpoint past 5000 lines', 30_000, run1.child);
    run1.child.kill('SIGKILL');
    const ex = await run1.exited;
    expect(ex.signal).toBe('SIGKILL');
    const atKill = linesInStore(s.db);
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(LINES.length);
    await writer;

    const run2 = spawnSync(process.execPath, [bin, 'run', '--config', s.cfg, '--once'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(run2.status, run2.stderr).toBe(0);
    expect(run2.stderr).toContain('"restored":true');
    const { got } = await expectExactlyOnce(s, s.log, { sameOffsets: true });
    // Actions are not repeated by the re-processed lines.
    expect(got.actions.filter((a) => a.action === 'lock')).toHaveLength(1);
  }, 90_000);

  it('a rename rotation while running, then kill -9 and restart: exactly once', async () => {
    const s = setup('rotate');
    const half = 14_000;
    const whole = join(s.dir, 'whole.log');
    writeFileSync(whole, text(LINES));
    writeFileSync(s.log, text(LINES.slice(0, half)));
    const run1 = spawnRun(['--config', s.cfg, '--checkpoint-ms', '100', '--poll-ms', '20', '--no-api']);
    await until(() => linesInStore(s.db) >= half, 'the first file committed', 30_000, run1.child);
    // logrotate `create`: rename, a new file, the writer reopens.
    renameSync(s.log, `${s.log}.1`);
    writeFileSync(s.log, '');
    let written = half;
    while (written < LINES.length) {
      const n = Math.min(1000, LINES.length - written);
      appendFileSync(s.log, text(LINES.slice(written, written + n)));
      written += n;
      await sleep(30);
      if (written >= 20_000 && !run1.child.killed && linesInStore(s.db) > half) run1.child.kill('SIGKILL');
    }
    if (!run1.child.killed) {
      await until(() => linesInStore(s.db) > half, 'a checkpoint in the new file', 30_000, run1.child);
      run1.child.kill('SIGKILL');
    }
    expect((await run1.exited).signal).toBe('SIGKILL');
    const run2 = spawnSync(process.execPath, [bin, 'run', '--config', s.cfg, '--once'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(run2.status, run2.stderr).toBe(0);
    // Offsets of the second file start at 0 again, so compare by message identity, not by source offset.
    await expectExactlyOnce(s, whole, { sameOffsets: false });
    expect(`${run1.stderr()}${run2.stderr}`).toContain('"msg":"rotation","input"');
  }, 90_000);

  it('SIGTERM: final checkpoint, exit 0', async () => {
    const s = setup('term');
    writeFileSync(s.log, text(LINES));
    // No periodic checkpoint within the test: what is stored comes from the final one.
    const run = spawnRun(['--config', s.cfg, '--checkpoint-ms', '3600000', '--poll-ms', '20', '--listen', '127.0.0.1:0']);
    await until(() => run.stderr().includes('"msg":"api listening"'), 'the API', 20_000, run.child);
    await sleep(4000); // ample for 30k lines
    expect(linesInStore(s.db)).toBe(0);
    run.child.kill('SIGTERM');
    const ex = await run.exited;
    expect(ex.code, run.stderr()).toBe(0);
    expect(run.stderr()).toContain('"msg":"stopped"');
    await expectExactlyOnce(s, s.log, { sameOffsets: true });
  }, 60_000);
});

// Keep the byte-level helper honest: the reference file equals what the tests append.
it('the generated log is newline-terminated text', () => {
  expect(LINES).toHaveLength(30_000);
  const dir = mkdtempSync(join(root, 'gen-'));
  writeFileSync(join(dir, 'x.log'), text(LINES.slice(0, 3)));
  expect(readFileSync(join(dir, 'x.log'), 'utf8').split('\n')).toHaveLength(4);
});
