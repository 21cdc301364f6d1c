/**
 * Lock state shared by the API and every detect worker, and the lock budget
 * they spend together.
 *
 * SharedLockState: which accounts are locked (and by whom) lives in one Redis
 * hash; account names are hash fields, so no account text ever becomes part
 * of a key. Names are lower-cased as the policy does (mail accounts are
 * case-insensitive).
 *
 * LockBudget: the per-process circuit breaker in src/policy/policy.ts cannot
 * stop N workers from locking N times the budget; this one is global. It is a
 * sliding hour like the policy's (a sorted set of lock times, trimmed on every
 * call), checked and spent in one Lua script, so concurrent callers never
 * spend more than the limit.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FloodgateError } from '../core/errors.js';
import { redisCall } from './connection.js';
import { defineScript, runScript } from './scripts.js';

export type LockedBy = 'operator' | 'floodgate';

export interface LockEntry {
  by: LockedBy;
  at: number;
}

export class SharedLockState {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.key = `${keyPrefix}locked-accounts`;
  }

  async isLocked(account: string): Promise<boolean> {
    const n = await redisCall(this.redis, 'reading the lock state', () => this.redis.hexists(this.key, account.toLowerCase()));
    return n === 1;
  }

  /** An operator locked the account (API): workers treat it as locked and never lock it again until unlocked. */
  async lockedByOperator(account: string): Promise<void> {
    await this.set(account, 'operator');
  }

  /** floodgate's own lock went through (a worker after a successful, non-dry-run lock). */
  async lockedByFloodgate(account: string): Promise<void> {
    await this.set(account, 'floodgate');
  }

  async unlocked(account: string): Promise<void> {
    await redisCall(this.redis, 'recording an unlock', () => this.redis.hdel(this.key, account.toLowerCase()));
  }

  async lockedAccounts(): Promise<string[]> {
    const names = await redisCall(this.redis, 'listing locked accounts', () => this.redis.hkeys(this.key));
    return names.sort();
  }

  /** Who locked the account and when; undefined when it is not locked. */
  async entry(account: string): Promise<LockEntry | undefined> {
    const v = await redisCall(this.redis, 'reading the lock state', () => this.redis.hget(this.key, account.toLowerCase()));
    if (v === null) return undefined;
    try {
      const e = JSON.parse(v) as Partial<LockEntry>;
      return { by: e.by === 'operator' ? 'operator' : 'floodgate', at: Number(e.at) };
    } catch {
      return { by: 'floodgate', at: Number.NaN };
    }
  }

  private async set(account: string, by: LockedBy): Promise<void> {
    const entry: LockEntry = { by, at: this.now() };
    await redisCall(this.redis, 'recording a lock', () => this.redis.hset(this.key, account.toLowerCase(), JSON.stringify(entry)));
  }
}

const HOUR_MS = 3600_000;

// KEYS[1] sorted set of spends (score = time); ARGV: now, limit, member.
// Spending the same member twice (a replayed decision) is not charged twice.
const BUDGET_LUA = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ${HOUR_MS})
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ${2 * HOUR_MS})
return 1
`;

export class LockBudget {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
  ) {
    this.key = `${keyPrefix}lock-budget`;
    defineScript(redis, 'fgLockBudget', BUDGET_LUA);
  }

  /**
   * Spend one lock of the hour ending at `nowMs` if fewer than `limitPerHour`
   * were spent in it; false when the budget is exhausted. Pass `spendId`
   * (e.g. the episode key) to make a replayed call free: spending an id
   * already spent within the hour returns true again without a new charge.
   */
  async tryConsume(limitPerHour: number, nowMs: number, spendId?: string): Promise<boolean> {
    if (!Number.isSafeInteger(limitPerHour) || limitPerHour < 0) throw new FloodgateError('FG_INTERNAL', `lock budget limit must be a non-negative integer, got ${limitPerHour}`);
    if (!Number.isFinite(nowMs)) throw new FloodgateError('FG_INTERNAL', `lock budget time must be finite, got ${nowMs}`);
    const member = spendId === undefined ? `anon:${randomUUID()}` : `id:${spendId}`;
    const r = await redisCall(this.redis, 'spending the lock budget', () =>
      runScript(this.redis, 'fgLockBudget', this.key, String(Math.floor(nowMs)), String(limitPerHour), member),
    );
    return Number(r) === 1;
  }

  /** Locks spent in the hour ending at nowMs (for /metrics). */
  async spent(nowMs: number): Promise<number> {
    return redisCall(this.redis, 'reading the lock budget', () => this.redis.zcount(this.key, `(${Math.floor(nowMs) - HOUR_MS}`, '+inf'));
  }
}
