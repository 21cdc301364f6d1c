/**
 * Runs the policy's decisions in distributed mode, exactly once per decision
 * across workers: a partition replayed after a crash or a rebalance derives
 * the same decisions again (same events, same state), with the same
 * deterministic key, and the Redis lease lets only the first run act. An
 * account some worker or an operator already locked is not locked again, and
 * the lock budget is shared by all workers. Every action is recorded in
 * ClickHouse like standalone records it in its store.
 */
import { Sleepers } from '../core/sleepers.js';
import type { ActionRecord } from '../actions/index.js';
import { actionRecordSchema } from '../actions/types.js';
import type { ActionHook } from '../cli/actions-hook.js';
import { actionRow } from '../clickhouse/rows.js';
import type { ClickhouseSink } from '../clickhouse/sink.js';
import type { Decision } from '../policy/policy.js';
import { FloodgateError } from '../core/errors.js';
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
  /** Longest pause between attempts of a Redis step while Redis is unreachable (default 5000 ms). */
  redisRetryMaxMs?: number;
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
  private closed = false;
  private readonly sleepers = new Sleepers();

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

  /** Resolves when every queued decision has been handled, including those queued meanwhile. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.chain;
  }

  /**
   * Resolves when the decisions queued so far have been handled (later ones
   * may still run): what a checkpoint taken now needs. idle() could wait
   * for ever while decisions keep coming.
   */
  queuedSoFar(): Promise<void> {
    return this.chain;
  }

  /** Stop waiting for Redis (worker shutdown): a queued action still waiting fails; the next owner's replay decides it again. */
  close(): void {
    this.closed = true;
    this.sleepers.wakeAll();
  }

  /**
   * A Redis step of an action, repeated while Redis is unreachable rather
   * than failed: a decision dropped here would never be acted on (only a
   * replay from a checkpoint decides it again, and no checkpoint completes
   * while Redis is away), so an outage during a takeover meant no lock at
   * all. Each step is safe to repeat: a claim is re-entrant for its owner,
   * budget spends are keyed by episode, lock marks and completion are
   * idempotent.
   */
  private async untilRedis<T>(what: string, op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await op();
        if (attempt > 0) this.o.log.info({ what, attempts: attempt + 1 }, 'redis reachable again; the action goes on');
        return r;
      } catch (e) {
        if (this.closed || !(e instanceof FloodgateError) || e.code !== 'FG_REDIS_UNAVAILABLE') throw e;
        if (attempt === 0) this.o.log.warn({ what, err: e.message }, 'redis unavailable; the action waits for it');
        await this.sleepers.sleep(Math.min(this.o.redisRetryMaxMs ?? 5000, 100 * 2 ** Math.min(attempt, 10)));
      }
    }
  }

  /**
   * A replayed decision whose action an earlier run completed: that run may
   * have died after marking the episode done but before its sink stored the
   * audit rows (kill -9 within clickhouse.flushMs), which left an action with
   * no record. The rows kept with the episode are added again; with the same
   * ids they collapse into the stored ones if there are any.
   */
  private async storeAuditAgain(episode: string): Promise<void> {
    const status = await this.untilRedis('reading a completed action', () => this.o.lease.status(episode));
    const kept = actionRecordSchema.array().safeParse((status?.record as { actions?: unknown } | undefined)?.actions);
    if (kept.success && kept.data.length > 0) this.o.sink.add('actions', kept.data.map(actionRow));
  }

  private async run(d: Decision): Promise<void> {
    const episode = `decision:${decisionKey(d)}`;
    const claim = await this.untilRedis('claiming the action', () => this.o.lease.claim(episode, this.o.workerId, this.o.leaseMs ?? 120_000));
    if (claim === 'done') await this.storeAuditAgain(episode);
    if (claim !== 'claimed') {
      this.metrics.skippedDuplicate++;
      return;
    }
    try {
      let decision = d;
      if (d.action === 'lock' && d.account !== undefined) {
        const account = d.account;
        if (await this.untilRedis('reading the lock state', () => this.o.locks.isLocked(account))) {
          this.metrics.skippedAlreadyLocked++;
          await this.untilRedis('completing the action', () => this.o.lease.complete(episode, this.o.workerId, { skipped: 'already locked' }));
          return;
        }
        if (!d.dryRun && !(await this.untilRedis('spending the lock budget', () => this.o.budget.tryConsume(this.o.lockBudgetPerHour, this.now(), episode)))) {
          this.metrics.budgetDowngrades++;
          decision = { ...d, action: 'alert', hold: false, reasons: [...d.reasons, `lock budget of ${this.o.lockBudgetPerHour}/h spent across workers: alerting instead`] };
        }
      }
      const records: ActionRecord[] = await this.o.hook.execute(decision);
      if (records.length > 0) this.o.sink.add('actions', records.map(actionRow));
      const locked = records.find((r) => r.action === 'lock' && r.ok && r.changed);
      const lockedAccount = locked ? decision.account : undefined;
      if (lockedAccount !== undefined) await this.untilRedis('recording the lock', () => this.o.locks.lockedByFloodgate(lockedAccount));
      this.metrics.executed++;
      // The whole records, so that a replay can store them again (storeAuditAgain).
      await this.untilRedis('completing the action', () => this.o.lease.complete(episode, this.o.workerId, { actions: records }));
    } catch (e) {
      await this.o.lease.release(episode, this.o.workerId).catch(() => undefined);
      throw e;
    }
  }
}
