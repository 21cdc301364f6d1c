// Exactly-once action leases against the real Redis on 127.0.0.1:6379.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActionLease } from '../../src/redis/action-lease.js';
import { connectRedis } from '../../src/redis/connection.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-server.js';

const prefix = testPrefix();
let redisA: Redis;
let redisB: Redis;
let leaseA: ActionLease;
let leaseB: ActionLease;

beforeAll(async () => {
  // Two clients: two workers racing through separate connections.
  redisA = connectRedis(redisConfig(), { connectionName: 'fgtest-worker-a' });
  redisB = connectRedis(redisConfig(), { connectionName: 'fgtest-worker-b' });
  await Promise.all([redisA.ping(), redisB.ping()]);
  leaseA = new ActionLease(redisA, prefix, { retentionMs: 60_000 });
  leaseB = new ActionLease(redisB, prefix, { retentionMs: 60_000 });
});

afterAll(async () => {
  await deletePrefix(redisA, prefix);
  redisA.disconnect();
  redisB.disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ActionLease', () => {
  it('two owners claiming at once: exactly one gets it', async () => {
    for (let round = 0; round < 20; round++) {
      const ep = `lock:alice@example.org:${round}`;
      const results = await Promise.all([leaseA.claim(ep, 'worker-a', 10_000), leaseB.claim(ep, 'worker-b', 10_000)]);
      expect(results.filter((r) => r === 'claimed')).toHaveLength(1);
      expect(results.filter((r) => r === 'busy')).toHaveLength(1);
    }
  });

  it('many owners at once on one episode: one claim, the rest busy', async () => {
    const owners = Array.from({ length: 30 }, (_, i) => `w${i}`);
    const results = await Promise.all(owners.map((o, i) => (i % 2 ? leaseA : leaseB).claim('lock:storm@example.org:1', o, 10_000)));
    expect(results.filter((r) => r === 'claimed')).toHaveLength(1);
    expect(results.filter((r) => r === 'busy')).toHaveLength(29);
  });

  it('complete marks the episode done for everyone, with the record, for the retention time', async () => {
    const ep = 'lock:bob@example.org:1700000000000';
    expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('claimed');
    expect(await leaseA.complete(ep, 'worker-a', { action: 'lock', account: 'bob@example.org', ok: true })).toBe('completed');
    expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('done');
    expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('done');
    const st = await leaseB.status(ep);
    expect(st).toMatchObject({ state: 'done', owner: 'worker-a', record: { action: 'lock', ok: true } });
    const ttl = await redisA.pttl(leaseA.key(ep));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('complete or release by a non-owner is refused and changes nothing', async () => {
    const ep = 'lock:carol@example.org:1';
    expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('claimed');
    expect(await leaseB.complete(ep, 'worker-b', { forged: true })).toBe('not-owner');
    expect(await leaseB.release(ep, 'worker-b')).toBe(false);
    expect(await leaseB.extend(ep, 'worker-b', 60_000)).toBe(false);
    expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('busy');
    expect(await leaseA.status(ep)).toMatchObject({ state: 'claimed', owner: 'worker-a' });
    // Completing an episode nobody claimed is refused too.
    expect(await leaseB.complete('lock:nobody@example.org:1', 'worker-b', {})).toBe('not-owner');
    expect(await leaseB.status('lock:nobody@example.org:1')).toBeUndefined();
  });

  it('an expired claim (its worker died) lets a second owner claim, and the late first owner cannot complete', async () => {
    const ep = 'lock:dave@example.org:1';
    expect(await leaseA.claim(ep, 'worker-a', 150)).toBe('claimed');
    expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('busy');
    await sleep(300);
    expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('claimed');
    expect(await leaseA.complete(ep, 'worker-a', { late: true })).toBe('not-owner');
    expect(await leaseB.complete(ep, 'worker-b', { ok: true })).toBe('completed');
    expect((await leaseA.status(ep))?.owner).toBe('worker-b');
  });

  it('release after a failed action lets another attempt claim; extend keeps a long action claimed', async () => {
    const ep = 'webhook:erin@example.org:1';
    expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('claimed');
    expect(await leaseA.release(ep, 'worker-a')).toBe(true);
    expect(await leaseB.claim(ep, 'worker-b', 200)).toBe('claimed');
    expect(await leaseB.extend(ep, 'worker-b', 10_000)).toBe(true);
    await sleep(350);
    expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('busy');
    // The same owner claiming again (its own retry) keeps its claim.
    expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('claimed');
  });

  it('hostile episode keys stay in their own key and never collide', async () => {
    const hostile = ['$(reboot)', 'a\nb', '*', 'x:y', 'x%3Ay', 'lock:*:1', '\ud800', '', ' '];
    for (const ep of hostile) expect(await leaseA.claim(ep, 'worker-a', 10_000)).toBe('claimed');
    for (const ep of hostile) expect(await leaseB.claim(ep, 'worker-b', 10_000)).toBe('busy');
    const keys = new Set(hostile.map((ep) => leaseA.key(ep)));
    expect(keys.size).toBe(hostile.length);
    for (const k of keys) {
      expect(k.startsWith(prefix)).toBe(true);
      expect(k.slice(prefix.length)).toMatch(/^lease:[A-Za-z0-9._%~-]*$/);
      expect(await redisA.exists(k)).toBe(1);
    }
  });

  it('refuses a lease time that is not a positive integer', async () => {
    await expect(leaseA.claim('x', 'w', 0)).rejects.toMatchObject({ code: 'FG_INTERNAL' });
    await expect(leaseA.claim('x', 'w', Number.NaN)).rejects.toMatchObject({ code: 'FG_INTERNAL' });
  });
});
