/**
 * Runs the policy's decisions in distributed mode, exactly once per decision
 * across workers: a partition replayed after a crash or a rebalance derives
 * the same decisions again (same events, same state), with the same
 * deterministic key, and the Redis lease lets only the first run act. An
 * account some worker or an operator already locked is not locked again, and
 * the lock budget is shared by all workers. Every action is recorded in
 * ClickHouse like standalone records it in its store.
 */
import type { ActionRecord } from '../actions/index.js';
import type { ActionHook } from '../cli/actions-hook.js';
import { actionRow } from '../clickhouse/rows.js';
import type { ClickhouseSink } from '../clickhouse/sink.js';
import type { Decision } from '../policy/policy.js';
import { decisionKey } from '../policy/decision-key.js';
import type { ActionLease } from '../redis/action-lease.js';
import type { LockBudget, SharedLockState } from '../redis/locks.js';
import type { Logger } from './log.js';

export interface DistributedActionsOptions {
  hook: ActionHook;
  lease: ActionLease;
  locks: SharedLockState;
  budget: LockBudget;
  sink: ClickhouseSink;
  log: Logger;
  workerId: string;
  lockBudgetPerHour: number;
  /** How long a claim protects an action in progress (a dead worker's claim expires after this). */
  leaseMs?: number;
  now?: () => number;
}

export interface ActionMetrics {
  executed: number;
  skippedDuplicate: number;
  skippedAlreadyLocked: number;
  budgetDowngrades: number;
  failures: number;
}

export class DistributedActions {
  readonly metrics: ActionMetrics = { executed: 0, skippedDuplicate: 0, skippedAlreadyLocked: 0, budgetDowngrades: 0, failures: 0 };
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private readonly o: DistributedActionsOptions;
  private readonly now: () => number;

  constructor(o: DistributedActionsOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  /** Queue a decision; actions run one at a time, in decision order. */
  submit(d: Decision): void {
    if (d.action === 'none') return;
    this.pending++;
    this.chain = this.chain
      .then(() => this.run(d))
      .catch((e: unknown) => {
        this.metrics.failures++;
        this.o.log.error({ err: (e as Error).message, action: d.action, entity: d.entity.kind }, 'action failed');
      })
      .finally(() => this.pending--);
  }

  /** Resolves when every queued decision has been handled (checkpoints wait for it). */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.chain;
  }

  private async run(d: Decision): Promise<void> {
    const episode = `decision:${decisionKey(d)}`;
    const claim = await this.o.lease.claim(episode, this.o.workerId, this.o.leaseMs ?? 120_000);
    if (claim !== 'claimed') {
      this.metrics.skippedDuplicate++;
      return;
    }
    try {
      let decision = d;
      if (d.action === 'lock' && d.account !== undefined) {
        if (await this.o.locks.isLocked(d.account)) {
          this.metrics.skippedAlreadyLocked++;
          await this.o.lease.complete(episode, this.o.workerId, { skipped: 'already locked' });
          return;
        }
        if (!d.dryRun && !(await this.o.budget.tryConsume(this.o.lockBudgetPerHour, this.now(), episode))) {
          this.metrics.budgetDowngrades++;
          decision = { ...d, action: 'alert', hold: false, reasons: [...d.reasons, `lock budget of ${this.o.lockBudgetPerHour}/h spent across workers: alerting instead`] };
        }
      }
      const records: ActionRecord[] = await this.o.hook.execute(decision);
      if (records.length > 0) this.o.sink.add('actions', records.map(actionRow));
      const locked = records.find((r) => r.action === 'lock' && r.ok && r.changed);
      if (locked && decision.account !== undefined) await this.o.locks.lockedByFloodgate(decision.account);
      this.metrics.executed++;
      await this.o.lease.complete(episode, this.o.workerId, { actions: records.map((r) => ({ id: r.id, action: r.action, ok: r.ok })) });
    } catch (e) {
      await this.o.lease.release(episode, this.o.workerId).catch(() => undefined);
      throw e;
    }
  }
}
