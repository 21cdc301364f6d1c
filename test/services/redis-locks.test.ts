// Shared lock state, global lock budget and shared site knowledge against the real Redis on 127.0.0.1:6379.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/redis/connection.js';
import { LockBudget, SharedLockState } from '../../src/redis/locks.js';
import { SharedSiteDomains } from '../../src/redis/site.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-server.js';

const prefix = testPrefix();
let redis: Redis;
let redis2: Redis;

beforeAll(async () => {
  redis = connectRedis(redisConfig());
  redis2 = connectRedis(redisConfig());
  await Promise.all([redis.ping(), redis2.ping()]);
});

afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
  redis2.disconnect();
});

describe('SharedLockState', () => {
  it('round trip: what the API records, a worker on another connection sees', async () => {
    const api = new SharedLockState(redis, `${prefix}a:`, () => 1234);
    const worker = new SharedLockState(redis2, `${prefix}a:`);
    expect(await worker.isLocked('Alice@Example.org')).toBe(false);
    await api.lockedByOperator('Alice@Example.org');
    await api.lockedByFloodgate('bob@example.org');
    expect(await worker.isLocked('alice@example.org')).toBe(true);
    expect(await worker.isLocked('ALICE@EXAMPLE.ORG')).toBe(true);
    expect(await worker.lockedAccounts()).toEqual(['alice@example.org', 'bob@example.org']);
    expect(await worker.entry('alice@example.org')).toEqual({ by: 'operator', at: 1234 });
    expect(await worker.entry('bob@example.org')).toMatchObject({ by: 'floodgate' });
    await api.unlocked('ALICE@example.org');
    expect(await worker.isLocked('alice@example.org')).toBe(false);
    expect(await worker.entry('alice@example.org')).toBeUndefined();
    expect(await worker.lockedAccounts()).toEqual(['bob@example.org']);
  });

  it('hostile account strings are stored as given and reach no other key', async () => {
    const p = `${prefix}hostile:`;
    const locks = new SharedLockState(redis, p);
    const hostile = ['$(zmprov ma admin zimbraAccountStatus locked)', 'a\nb@example.org', '*', 'x:y@example.org', '`id`', '', '\u0000nul'];
    for (const a of hostile) await locks.lockedByOperator(a);
    for (const a of hostile) expect(await locks.isLocked(a)).toBe(true);
    expect(await locks.isLocked('a')).toBe(false);
    expect(await locks.isLocked('x')).toBe(false);
    expect((await locks.lockedAccounts()).sort()).toEqual(hostile.map((a) => a.toLowerCase()).sort());
    // Everything stays in the one hash under the prefix.
    expect(await redis.keys(`${p}*`)).toEqual([`${p}locked-accounts`]);
    await locks.unlocked('*');
    expect(await locks.isLocked('*')).toBe(false);
    expect(await locks.isLocked('x:y@example.org')).toBe(true);
  });
});

describe('LockBudget', () => {
  it('50 concurrent tryConsume with limit 5 from two clients: exactly 5 granted', async () => {
    const p = `${prefix}budget1:`;
    const a = new LockBudget(redis, p);
    const b = new LockBudget(redis2, p);
    const now = 1_700_000_000_000;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).tryConsume(5, now + i)));
    expect(results.filter(Boolean)).toHaveLength(5);
    expect(await a.spent(now + 100)).toBe(5);
    expect(await a.tryConsume(5, now + 1000)).toBe(false);
  });

  it('is a sliding hour: spends older than an hour stop counting', async () => {
    const p = `${prefix}budget2:`;
    const budget = new LockBudget(redis, p);
    const t0 = 1_700_000_000_000;
    expect(await budget.tryConsume(2, t0)).toBe(true);
    expect(await budget.tryConsume(2, t0 + 30 * 60_000)).toBe(true);
    expect(await budget.tryConsume(2, t0 + 59 * 60_000)).toBe(false);
    // At t0 + 1 h the first spend falls out of the window; the second still counts.
    expect(await budget.tryConsume(2, t0 + 3600_000)).toBe(true);
    expect(await budget.tryConsume(2, t0 + 3600_000 + 1)).toBe(false);
    expect(await budget.spent(t0 + 3600_000 + 1)).toBe(2);
    // The key expires on its own: no budget key lives forever.
    const ttl = await redis.pttl(`${p}lock-budget`);
    expect(ttl).toBeGreaterThan(0);
  });

  it('a replayed spend with the same id is not charged twice', async () => {
    const p = `${prefix}budget3:`;
    const budget = new LockBudget(redis, p);
    const t = 1_700_000_000_000;
    expect(await budget.tryConsume(2, t, 'lock:alice@example.org:1')).toBe(true);
    expect(await budget.tryConsume(2, t + 5, 'lock:alice@example.org:1')).toBe(true);
    expect(await budget.spent(t + 5)).toBe(1);
    expect(await budget.tryConsume(2, t + 6, 'lock:bob@example.org:1')).toBe(true);
    expect(await budget.tryConsume(2, t + 7, 'lock:carol@example.org:1')).toBe(false);
    // A limit of 0 grants nothing.
    expect(await new LockBudget(redis, `${prefix}budget4:`).tryConsume(0, t)).toBe(false);
  });
});

describe('SharedSiteDomains', () => {
  it('domains learnt by one worker are seen by another, lower-cased, without duplicates', async () => {
    const p = `${prefix}site1:`;
    const w1 = new SharedSiteDomains(redis, p);
    const w2 = new SharedSiteDomains(redis2, p);
    expect(await w1.add(['Example.org', 'mail.example.net', 'example.org', ''])).toBe(2);
    expect(await w2.add(['example.org', 'other.example'])).toBe(1);
    expect(await w1.all()).toEqual(['example.org', 'mail.example.net', 'other.example']);
    expect(await w2.all()).toEqual(await w1.all());
  });

  it('is bounded by its cap, also for large batches', async () => {
    const p = `${prefix}site2:`;
    const site = new SharedSiteDomains(redis, p, { cap: 1500 });
    const many = Array.from({ length: 2500 }, (_, i) => `d${i}.example`);
    expect(await site.add(many)).toBe(1500);
    expect(await redis.scard(`${p}site:learnt-domains`)).toBe(1500);
    expect(await new SharedSiteDomains(redis2, p, { cap: 1500 }).add(['late.example'])).toBe(0);
    expect(await site.add(['x'.repeat(300)])).toBe(0);
  });
});
