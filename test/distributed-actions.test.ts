// The distributed action runner's queue: what a checkpoint waits for.
import { describe, expect, it } from 'vitest';
import type { ActionRecord } from '../src/actions/index.js';
import type { ActionHook } from '../src/cli/actions-hook.js';
import type { ClickhouseSink } from '../src/clickhouse/sink.js';
import { DistributedActions } from '../src/distributed/distributed-actions.js';
import type { Logger } from '../src/distributed/log.js';
import type { Decision } from '../src/policy/policy.js';
import type { ActionLease } from '../src/redis/action-lease.js';
import type { LockBudget, SharedLockState } from '../src/redis/locks.js';

function decision(account: string): Decision {
  return { type: 'decision', account, entity: { kind: 'account', id: account }, action: 'alert', hold: false, dryRun: true, score: 5, reasons: ['test'], ts: 1, detectors: ['send-flood'], signals: [], evidence: [] };
}

/** An action hook whose executions finish when the test says so. */
function gatedHook() {
  const gates = new Map<string, () => void>();
  const started: string[] = [];
  const hook = {
    actuator: 'zmprov',
    execute: (d: Decision) =>
      new Promise<ActionRecord[]>((resolve) => {
        started.push(d.account!);
        gates.set(d.account!, () => resolve([]));
      }),
  } as unknown as ActionHook;
  return { hook, started, open: (account: string) => gates.get(account)!() };
}

function runner(hook: ActionHook): DistributedActions {
  const lease = { claim: async () => 'claimed', complete: async () => true, status: async () => undefined } as unknown as ActionLease;
  const locks = { isLocked: async () => false, lockedByFloodgate: async () => undefined } as unknown as SharedLockState;
  const budget = { tryConsume: async () => true } as unknown as LockBudget;
  const sink = { add: () => undefined } as unknown as ClickhouseSink;
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;
  return new DistributedActions({ hook, lease, locks, budget, sink, log, workerId: 'w1', lockBudgetPerHour: 10 });
}

const settles = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return done;
};

describe('DistributedActions queue', () => {
  it('queuedSoFar() waits for the decisions queued before it only; idle() also for those queued after', async () => {
    const { hook, started, open } = gatedHook();
    const actions = runner(hook);
    actions.submit(decision('a@example.org'));
    const soFar = actions.queuedSoFar();
    actions.submit(decision('b@example.org'));
    const idle = actions.idle();
    expect(await settles(soFar)).toBe(false);
    open('a@example.org');
    expect(await settles(soFar)).toBe(true);
    expect(started).toEqual(['a@example.org', 'b@example.org']);
    expect(await settles(idle)).toBe(false);
    open('b@example.org');
    expect(await settles(idle)).toBe(true);
    expect(actions.metrics.executed).toBe(2);
  });
});
