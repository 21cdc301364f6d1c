// Holding a locked account's queued mail by what the logs tie to it: a spam
// run that forges a new sender per message, throttled by the receivers, is
// held by queue id. postqueue shows no SASL user, and none of those senders
// was seen before, so matching senders alone would hold nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as S from '../bench/scenarios.js';
import { execRunner, type ActionRecord } from '../src/actions/index.js';
import { createActionRunner } from '../src/cli/actions-hook.js';
import type { Decision } from '../src/policy/policy.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { DetectPipeline } from '../src/pipeline/detect-pipeline.js';
import { mergeInputs } from '../src/pipeline/merge.js';
import { bin, standinLog } from './actions/helpers.js';
import { scenarioConfig } from './helpers/scenario-run.js';

const T0 = Date.UTC(2026, 10, 24, 0, 0, 0);
const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
const U = S.users(12);

const dir = mkdtempSync(join(tmpdir(), 'floodgate-hold-'));
const log = standinLog();
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  log.cleanup();
});

describe('a locked account’s queued mail is held by the queue ids its log lines carry', () => {
  it('holds every message of a throttled forged-sender flood the logs showed queued, and nothing else', async () => {
    const victim = U[0]!.account;
    const sl = new S.ScenarioLog(1);
    S.background(sl, { start: T0, end: EP + 2 * S.HOUR, users: U, inboundPerHour: 10 });
    S.forgedSenderFlood(sl, { account: victim, ips: ['41.203.18.77'], start: EP, count: 300, paceMs: 6000, deferRate: 0.9 });
    const lines = sl.render();
    const file = join(dir, 'flood.log');
    writeFileSync(file, lines.join('\n') + '\n');

    // From the log text alone: each deferred message's queue id (all the flood's: the background has no deferrals), and where its first deferral is.
    const firstDeferral = new Map<string, number>();
    let offset = 0;
    for (const l of lines) {
      const m = /postfix\/smtp\[\d+\]: ([0-9A-F]{10}): to=<[^>]*>, .*status=deferred/.exec(l);
      if (m && !firstDeferral.has(m[1]!)) firstDeferral.set(m[1]!, offset);
      offset += Buffer.byteLength(l) + 1;
    }
    expect(firstDeferral.size).toBeGreaterThan(100);
    // The queue as postqueue -j shows it: the flood's messages, each under its own forged sender, plus mail that is not the account's.
    const queue = [...firstDeferral.keys()].map((id, i) => ({ queue_name: 'deferred', queue_id: id, sender: `x${i}q@yahoo.com.tw`, recipients: [{ address: `r${i}@hinet.net` }] }));
    queue.push({ queue_name: 'deferred', queue_id: '9F00D1CE42', sender: 'newsletter@example.com', recipients: [{ address: 'a@example.net' }] });
    queue.push({ queue_name: 'active', queue_id: '9F00D1CE43', sender: 'y7q@yahoo.com.tw', recipients: [{ address: 'b@hinet.net' }] }); // someone else's, same forged domain
    const queueFile = join(dir, 'queue.jsonl');
    writeFileSync(queueFile, queue.map((q) => JSON.stringify(q)).join('\n') + '\n');

    const cfg = scenarioConfig({
      policy: { dryRun: false, holdOnLock: true },
      actions: { zmprov: { path: bin('zmprov') }, queue: { postqueuePath: bin('postqueue'), postsuperPath: bin('postsuper') } },
    });
    const records: ActionRecord[] = [];
    const pending: Promise<unknown>[] = [];
    let at = 0; // byte offset of the line being fed
    let lockAt = -1;
    const pipeline: DetectPipeline = new DetectPipeline(cfg, {
      onDecision: (d: Decision) => {
        if (d.action !== 'lock') return;
        lockAt = at;
        pending.push(hook.execute(d));
      },
    });
    const hook = createActionRunner(cfg, (r) => records.push(r), {
      runner: execRunner({ env: { FG_STANDIN_LOG: log.path, FG_STANDIN_QUEUE: queueFile } }),
      queuedMailOf: (account) => ({ senders: [], queueIds: pipeline.correlator.queueIdsOf(account) }),
    });
    await mergeInputs(
      [{ path: file, host: 'mx1' }],
      pipeline.lines,
      (rec) => {
        at = rec.offset;
        pipeline.feed(rec);
      },
      { zone: new ZoneClock('UTC'), year: 2026 },
    );
    await pipeline.finish();
    await Promise.all(pending);

    expect(lockAt).toBeGreaterThan(0);
    const want = [...firstDeferral].filter(([, o]) => o < lockAt).map(([id]) => id).sort();
    expect(want.length).toBeGreaterThan(10);
    const hold = records.find((r) => r.action === 'hold')!;
    expect(hold, JSON.stringify(records)).toBeDefined();
    expect(hold.ok).toBe(true);
    const runs = log.runs().filter((r) => r.prog === 'postsuper');
    expect(runs).toHaveLength(1);
    expect(runs[0]!.argv).toEqual(['-h', '-']);
    expect(runs[0]!.stdin!.trim().split('\n').sort()).toEqual(want);
  });
});
