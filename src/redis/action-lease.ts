/**
 * Run an action (lock, hold, webhook) once per account episode across detect
 * workers, even when a partition is replayed after a crash or a rebalance.
 *
 * Before acting, a worker claims the episode: a Redis hash created only if
 * absent (the Lua equivalent of SET NX PX) with the worker as owner and a
 * lease time. Whoever gets 'claimed' acts, then marks the episode done; the
 * done mark is kept for `retentionMs` (7 days by default) so a replay within
 * that time gets 'done' and does nothing. 'busy' means another worker holds
 * the claim right now. If the action fails, the owner releases the claim so
 * a later attempt may retry.
 *
 * Trade-off: a worker that dies mid-action leaves a claim that expires after
 * its lease, and the action is then retried by another worker. If it died
 * after the side effect but before `complete`, the action runs twice: this is
 * at-least-once, not exactly-once, in that window. That is acceptable for
 * what floodgate does: `zmprov ma … zimbraAccountStatus locked` and holding
 * queued mail are idempotent, and webhooks carry a stable id the receiver can
 * deduplicate on. Keep leases longer than the slowest action (webhook retries
 * included) or renew them with `extend`.
 */
import type { Redis } from 'ioredis';
import { FloodgateError } from '../core/errors.js';
import { keyPart, redisCall } from './connection.js';
import { defineScript, runScript } from './scripts.js';

export type ClaimResult = 'claimed' | 'done' | 'busy';

export interface EpisodeStatus {
  state: 'claimed' | 'done';
  owner: string;
  /** What `complete` recorded (the action's audit record), when done. */
  record?: unknown;
  claimedAt?: number;
  completedAt?: number;
}

// A claim by the same owner again (its own retry) renews it rather than
// reporting 'busy' to itself.
const CLAIM_LUA = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'claimed', 'owner', ARGV[1], 'claimedAt', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 'claimed'
end
if state == 'done' then return 'done' end
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 'claimed'
end
return 'busy'
`;

const COMPLETE_LUA = `
if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'record', ARGV[2], 'completedAt', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// Used by release (ARGV[2] = '') and extend (ARGV[2] = new lease).
const OWNED_LUA = `
if redis.call('HGET', KEYS[1], 'state') ~= 'claimed' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`;

export interface ActionLeaseOptions {
  /** How long a done episode is remembered. Default 7 days. */
  retentionMs?: number;
  now?: () => number;
}

function checkMs(ms: number, what: string): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new FloodgateError('FG_INTERNAL', `${what} must be a positive integer of milliseconds, got ${ms}`);
}

export class ActionLease {
  private readonly retentionMs: number;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    opts: ActionLeaseOptions = {},
  ) {
    this.retentionMs = opts.retentionMs ?? 7 * 24 * 3600_000;
    checkMs(this.retentionMs, 'retentionMs');
    this.now = opts.now ?? Date.now;
    defineScript(redis, 'fgLeaseClaim', CLAIM_LUA);
    defineScript(redis, 'fgLeaseComplete', COMPLETE_LUA);
    defineScript(redis, 'fgLeaseOwned', OWNED_LUA);
  }

  /** The key of an episode; the episode text is encoded so it cannot reach another key. */
  key(episodeKey: string): string {
    return `${this.keyPrefix}lease:${keyPart(episodeKey)}`;
  }

  async claim(episodeKey: string, ownerId: string, ttlMs: number): Promise<ClaimResult> {
    checkMs(ttlMs, 'lease ttlMs');
    const r = await redisCall(this.redis, 'claiming an action', () => runScript(this.redis, 'fgLeaseClaim', this.key(episodeKey), ownerId, String(ttlMs), String(this.now())));
    if (r === 'claimed' || r === 'done' || r === 'busy') return r;
    throw new FloodgateError('FG_REDIS_FAILED', `unexpected reply from the lease script: ${String(r).slice(0, 40)}`);
  }

  /**
   * Mark the episode done with the action's record, only if `ownerId` still
   * holds the claim. 'not-owner' means the lease expired (another worker may
   * run the action again) or someone else holds it: the caller should log it.
   */
  async complete(episodeKey: string, ownerId: string, record: unknown): Promise<'completed' | 'not-owner'> {
    const json = JSON.stringify(record ?? null);
    const r = await redisCall(this.redis, 'completing an action', () =>
      runScript(this.redis, 'fgLeaseComplete', this.key(episodeKey), ownerId, json, String(this.retentionMs), String(this.now())),
    );
    return Number(r) === 1 ? 'completed' : 'not-owner';
  }

  /** Give the claim up after a failed action so another attempt may run it. False when not the owner (any more). */
  async release(episodeKey: string, ownerId: string): Promise<boolean> {
    const r = await redisCall(this.redis, 'releasing an action claim', () => runScript(this.redis, 'fgLeaseOwned', this.key(episodeKey), ownerId, ''));
    return Number(r) === 1;
  }

  /** Renew a claim for a long action (e.g. webhook retries). False when not the owner (any more). */
  async extend(episodeKey: string, ownerId: string, ttlMs: number): Promise<boolean> {
    checkMs(ttlMs, 'lease ttlMs');
    const r = await redisCall(this.redis, 'extending an action claim', () => runScript(this.redis, 'fgLeaseOwned', this.key(episodeKey), ownerId, String(ttlMs)));
    return Number(r) === 1;
  }

  /** Who holds or completed the episode, for the audit trail and the API. */
  async status(episodeKey: string): Promise<EpisodeStatus | undefined> {
    const h = await redisCall(this.redis, 'reading an action claim', () => this.redis.hgetall(this.key(episodeKey)));
    if (h['state'] !== 'claimed' && h['state'] !== 'done') return undefined;
    const out: EpisodeStatus = { state: h['state'], owner: h['owner'] ?? '' };
    if (h['claimedAt'] !== undefined) out.claimedAt = Number(h['claimedAt']);
    if (h['completedAt'] !== undefined) out.completedAt = Number(h['completedAt']);
    if (h['record'] !== undefined) {
      try {
        out.record = JSON.parse(h['record']);
      } catch {
        out.record = h['record'];
      }
    }
    return out;
  }
}
