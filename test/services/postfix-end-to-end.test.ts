/**
 * The standalone product on a real mail server's own log: a private Postfix
 * (Debian's 3.7, SASL through Dovecot, scripts/services.sh) takes a stolen
 * account's forged-sender flood over SMTP; `floodgate run` follows Postfix's
 * log file live (maillog_file), finds the account, locks it (the zmprov
 * stand-in records the command) and holds its queued mail through the real
 * postqueue and postsuper. No line here was written by floodgate's tests.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionRecord } from '../../src/actions/index.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { parseFiles } from '../../src/pipeline/parse-files.js';
import { POSTFIX_ACCOUNTS, POSTFIX_CONFIG_DIR, POSTFIX_SMTP_PORT, postfixQueue, REPO_ROOT, serviceCtl } from './helpers/services.js';
import { submit } from './helpers/smtp-submit.js';

const dir = mkdtempSync(join(tmpdir(), 'fg-postfix-e2e-'));
const maillog = join(POSTFIX_CONFIG_DIR, 'maillog');
const mailEnv = { ...process.env, MAIL_CONFIG: POSTFIX_CONFIG_DIR };
const standinLog = join(dir, 'standin.log');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function storedActions(db: string): ActionRecord[] {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return d.prepare<[], { json: string }>('SELECT json FROM actions ORDER BY ts').all().map((r) => JSON.parse(r.json) as ActionRecord);
    } finally {
      d.close();
    }
  } catch {
    return []; // not created yet, or busy this instant
  }
}

describe('floodgate run on a real Postfix log: a stolen account flooding through SASL submission', () => {
  let child: ChildProcess | undefined;
  let stderr = '';
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    execFileSync('/usr/sbin/postsuper', ['-d', 'ALL'], { env: mailEnv, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  beforeAll(async () => {
    await serviceCtl('up', 'postfix');
    execFileSync('/usr/sbin/postsuper', ['-d', 'ALL'], { env: mailEnv, stdio: 'ignore' });
    truncateSync(maillog, 0); // Postfix's postlogd appends (O_APPEND): this run's lines only
  }, 300_000);

  it('locks the account from the log lines Postfix wrote, holds every message the log showed it queue and no one else’s, and releases them on unlock', async () => {
    const env = `["/usr/bin/env", ${JSON.stringify(`FG_STANDIN_LOG=${standinLog}`)}, ${JSON.stringify(`MAIL_CONFIG=${POSTFIX_CONFIG_DIR}`)}]`;
    const cfg = join(dir, 'floodgate.yaml');
    const db = join(dir, 'fg.db');
    writeFileSync(
      cfg,
      [
        'timezone: UTC',
        'inputs:',
        `  - path: ${JSON.stringify(maillog)}`,
        'store:',
        `  path: ${JSON.stringify(db)}`,
        'policy:',
        '  dryRun: false',
        'api:',
        '  tokens: [{ name: oncall, role: act, tokenEnv: FG_TEST_ACT }]',
        'actions:',
        `  zmprov: { path: ${JSON.stringify(join(REPO_ROOT, 'test', 'fixtures', 'bin', 'zmprov'))}, prefix: ${env} }`,
        `  queue: { postqueuePath: /usr/sbin/postqueue, postsuperPath: /usr/sbin/postsuper, prefix: ${env} }`,
        '',
      ].join('\n'),
    );
    const token = 'act-token-for-the-postfix-test-0123456789';
    child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', cfg, '--poll-ms', '50', '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FG_TEST_ACT: token },
    });
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const smtp = { host: '127.0.0.1', port: POSTFIX_SMTP_PORT };

    // Bob's ordinary mail, then Alice's stolen password at work: a new sender in yahoo.com.tw on every message.
    const bobs: string[] = [];
    for (let i = 0; i < 5; i++) bobs.push(await submit({ ...smtp, ...POSTFIX_ACCOUNTS.bob, from: POSTFIX_ACCOUNTS.bob.user, to: [`friend${i}@example.org`] }));
    const alices: string[] = [];
    for (let i = 0; i < 90; i++) {
      alices.push(await submit({ ...smtp, ...POSTFIX_ACCOUNTS.alice, from: `${(i * 7919).toString(36)}q${i}@yahoo.com.tw`, to: [`v${i}@hinet.net`, `w${i}@example.net`] }));
    }

    let actions: ActionRecord[] = [];
    for (const t0 = Date.now(); ; await sleep(100)) {
      actions = storedActions(db);
      if (actions.some((a) => a.action === 'hold')) break;
      if (Date.now() - t0 > 30_000) throw new Error(`no hold within 30 s; actions: ${JSON.stringify(actions)}\n${stderr}`);
    }
    expect(actions.map((a) => [a.action, a.account, a.ok, a.dryRun])).toEqual([
      ['lock', POSTFIX_ACCOUNTS.alice.user, true, false],
      ['hold', POSTFIX_ACCOUNTS.alice.user, true, false],
    ]);
    // Locked for the forged senders together with the volume, as the policy explains it.
    expect(actions[0]!.reason.join('\n')).toMatch(/sender-mismatch: alice@example\.com sent \d+ messages .* with envelope senders it does not own/);
    expect(actions[0]!.reason.join('\n')).toContain('send-flood');
    const runs = readFileSync(standinLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prog: string; argv: string[] });
    expect(runs.map((r) => [r.prog, ...r.argv])).toEqual([
      ['zmprov', 'ga', POSTFIX_ACCOUNTS.alice.user, 'zimbraAccountStatus'],
      ['zmprov', 'ma', POSTFIX_ACCOUNTS.alice.user, 'zimbraAccountStatus', 'locked'],
    ]);

    // Held: only Alice's mail, by the queue ids the correlator tied to her (no sender of hers is in the queue), and
    // at least every message up to the send-flood ceiling (60 in 10 min by default) the lock needed.
    const held = (actions[1]!.data!.queueIds as string[]).slice().sort();
    for (const id of held) expect(alices, id).toContain(id);
    for (const id of alices.slice(0, 60)) expect(held, id).toContain(id);
    const queue = postfixQueue().messages;
    expect(queue.filter((m) => m.queueName === 'hold').map((m) => m.queueId).sort()).toEqual(held);
    for (const id of bobs) expect(queue.find((m) => m.queueId === id)?.queueName, id).not.toBe('hold');

    // The admin resets the password and unlocks through the API: the held mail goes back to the queue.
    const address = /"address":"(http:\/\/[^"]+)"/.exec(stderr)?.[1];
    expect(address, stderr).toBeDefined();
    const unlock = await fetch(`${address}/accounts/${POSTFIX_ACCOUNTS.alice.user}/unlock`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"reason":"password reset"}' });
    const body = (await unlock.json()) as { records: ActionRecord[] };
    expect(body.records.map((r) => [r.action, r.ok])).toEqual([
      ['unlock', true],
      ['release', true],
    ]);
    expect((body.records[1]!.data!.queueIds as string[]).slice().sort()).toEqual(held);
    const released = postfixQueue().messages;
    expect(released.filter((m) => m.queueName === 'hold')).toEqual([]);
    for (const id of held) expect(released.find((m) => m.queueId === id)?.queueName, id).toBe('deferred');
    expect(stderr).not.toContain('password');
    expect(stderr).not.toContain(token);

    // Every line Postfix wrote is one floodgate's parsers know.
    const parsed = await parseFiles([maillog], { zone: new ZoneClock('UTC') });
    expect(parsed.stats.lines).toBeGreaterThan(500);
    expect({ unknown: parsed.stats.unknown, unclaimed: parsed.stats.unclaimed, malformed: parsed.stats.malformed }).toEqual({ unknown: 0, unclaimed: 0, malformed: 0 });
  }, 120_000);

  it("follows Postfix's own log rotation (postfix logrotate: rename, then gzip), live and across a restart: every line once", async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    const gzBefore = new Set(readdirSync(POSTFIX_CONFIG_DIR));
    truncateSync(maillog, 0);
    const cfg = join(dir, 'rotate.yaml');
    const db = join(dir, 'rotate.db');
    writeFileSync(cfg, ['timezone: UTC', 'inputs:', `  - path: ${JSON.stringify(maillog)}`, 'store:', `  path: ${JSON.stringify(db)}`, ''].join('\n'));
    const startRun = async () => {
      stderr = '';
      child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'run', '--config', cfg, '--poll-ms', '50', '--checkpoint-ms', '200', '--no-api'], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      // Rotate only once run follows the file (it starts in about a second).
      for (const t0 = Date.now(); !stderr.includes('"msg":"starting"'); await sleep(50)) if (Date.now() - t0 > 20_000) throw new Error(`run did not start: ${stderr}`);
      await sleep(200);
    };
    const stopRun = async () => {
      const exited = new Promise((r) => child!.once('exit', r));
      child!.kill('SIGTERM');
      await exited;
    };
    const smtp = { host: '127.0.0.1', port: POSTFIX_SMTP_PORT, ...POSTFIX_ACCOUNTS.bob, from: POSTFIX_ACCOUNTS.bob.user };
    const ids: string[] = [];
    const send = async (tag: string, n: number) => {
      for (let i = 0; i < n; i++) ids.push(await submit({ ...smtp, to: [`${tag}${i}@example.org`] }));
      await sleep(1500); // Postfix logs each delivery attempt within a second or so
    };
    // Renames maillog to maillog.<time>, opens a new maillog, gzips the old one (so unlinks it).
    const logrotate = async () => {
      execFileSync('/usr/sbin/postfix', ['-c', POSTFIX_CONFIG_DIR, 'logrotate'], { stdio: 'ignore' });
      await sleep(1100); // the rotated name has one-second resolution
    };
    /** Lines Postfix wrote since the test began: the rotated files this test made (inflated) and the current one. */
    const written = () =>
      readdirSync(POSTFIX_CONFIG_DIR)
        .filter((f) => /^maillog\.\d{8}-\d{6}\.gz$/.test(f) && !gzBefore.has(f))
        .reduce((n, f) => n + gunzipSync(readFileSync(join(POSTFIX_CONFIG_DIR, f))).toString('utf8').split('\n').filter(Boolean).length, 0) +
      readFileSync(maillog, 'utf8').split('\n').filter(Boolean).length;
    const storedLines = async (want: number): Promise<number> => {
      let n = 0;
      for (const t0 = Date.now(); n < want && Date.now() - t0 < 20_000; await sleep(100)) {
        try {
          const d = new Database(db, { readonly: true, fileMustExist: true });
          try {
            n = d.prepare<[], { n: number | null }>('SELECT sum(lines) AS n FROM positions').get()?.n ?? 0;
          } finally {
            d.close();
          }
        } catch {
          // not yet created, or busy this instant
        }
      }
      return n;
    };

    // Live: rotated while run reads; it finishes the old file through its open descriptor.
    await startRun();
    await send('before', 15);
    await logrotate();
    await send('after', 15);
    let want = written();
    expect(await storedLines(want), stderr).toBe(want);
    expect(stderr).toContain('"kind":"rename"');

    // Stopped: mail goes on, Postfix rotates and gzips the file run was reading; the restart finishes it inflated.
    await stopRun();
    await send('while-down', 15);
    await logrotate();
    await send('after-restart', 10);
    await startRun();
    want = written();
    expect(await storedLines(want), stderr).toBe(want);
    expect(stderr).toContain('"kind":"resume-rotated"');
    expect(stderr).not.toContain('resume-lost');
    // Bob's messages: all deferred (the relay refuses), all still queued.
    const queue = postfixQueue().messages;
    for (const id of ids) expect(queue.find((m) => m.queueId === id), id).toBeDefined();
    expect(ids).toHaveLength(55);
  }, 180_000);

});
