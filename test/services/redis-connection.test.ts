// Connection behaviour: outages on a private redis-server (never the shared
// one on 6379), passwords from the environment, health, key encoding.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FloodgateError } from '../../src/core/errors.js';
import { connectRedis, keyPart, reconnectDelay, redisHealth, type RedisLogger } from '../../src/redis/connection.js';
import { PartitionSnapshots } from '../../src/redis/snapshots.js';
import { ActionLease } from '../../src/redis/action-lease.js';
import { freePort, PrivateRedis, redisConfig, testPrefix } from './redis-server.js';

function recordingLogger(): RedisLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push(`${msg} ${JSON.stringify(obj)}`),
    info: (obj, msg) => lines.push(`${msg} ${JSON.stringify(obj)}`),
  };
}

async function failure(p: Promise<unknown>): Promise<FloodgateError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof FloodgateError) return err;
    throw new Error(`expected a FloodgateError, got ${String(err)}`);
  }
  throw new Error('expected a failure, the call succeeded');
}

describe('Redis outage (private server)', () => {
  let server: PrivateRedis;
  let redis: Redis;
  const log = recordingLogger();

  beforeAll(async () => {
    server = new PrivateRedis(await freePort());
    server.start();
    redis = connectRedis(redisConfig({ url: server.url }), { logger: log, commandTimeoutMs: 4000 });
    await redis.ping();
  });

  afterAll(() => {
    redis.disconnect();
    server.dispose();
  });

  it('fails with FG_REDIS_UNAVAILABLE within the bounded wait while down, and the same client works once Redis is back', async () => {
    const prefix = testPrefix();
    const snaps = new PartitionSnapshots(redis, prefix);
    const lease = new ActionLease(redis, prefix);
    expect((await snaps.save('g', 't', 0, { offset: '1', state: { before: true } })).saved).toBe(true);

    server.stop();
    // Commands issued while down: none hangs; each fails with the Redis code, well within the bound.
    for (const op of [() => snaps.save('g', 't', 0, { offset: '2', state: {} }), () => lease.claim('ep', 'w', 1000), () => snaps.load('g', 't', 0)]) {
      const t0 = performance.now();
      const err = await failure(op());
      const ms = performance.now() - t0;
      expect(err.code).toBe('FG_REDIS_UNAVAILABLE');
      expect(err.message).toContain(`127.0.0.1:${server.port}`);
      expect(ms).toBeLessThan(5000);
    }
    const health = await redisHealth(redis, 500);
    expect(health.ok).toBe(false);

    // Redis back (empty: it keeps nothing on disk). The client reconnects by itself.
    server.start();
    let back = false;
    for (let i = 0; i < 60 && !back; i++) {
      back = (await redisHealth(redis, 500)).ok;
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).toBe(true);
    expect((await snaps.save('g', 't', 0, { offset: '3', state: { after: true } })).saved).toBe(true);
    expect(await snaps.load('g', 't', 0)).toMatchObject({ offset: '3', state: { after: true } });
    // Scripts are re-loaded after the restart wiped Redis' script cache.
    expect(await lease.claim('ep2', 'w', 1000)).toBe('claimed');
    // Logged once down and once back, not once per reconnect attempt.
    expect(log.lines.filter((l) => l.startsWith('redis unavailable'))).toHaveLength(1);
    expect(log.lines.filter((l) => l.startsWith('redis reachable again'))).toHaveLength(1);
  });

  it('a client started while Redis is down fails fast and connects once Redis comes up', async () => {
    const port = await freePort();
    const late = new PrivateRedis(port);
    const client = connectRedis(redisConfig({ url: late.url }), { commandTimeoutMs: 3000 });
    try {
      const t0 = performance.now();
      const err = await failure(new ActionLease(client, testPrefix()).claim('ep', 'w', 1000));
      expect(err.code).toBe('FG_REDIS_UNAVAILABLE');
      expect(performance.now() - t0).toBeLessThan(4000);
      late.start();
      let ok = false;
      for (let i = 0; i < 60 && !ok; i++) {
        ok = (await redisHealth(client, 500)).ok;
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ok).toBe(true);
    } finally {
      client.disconnect();
      late.dispose();
    }
  });
});

describe('Redis password', () => {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  let server: PrivateRedis;

  beforeAll(async () => {
    server = new PrivateRedis(await freePort(), password);
    server.start();
  });

  afterAll(() => server.dispose());

  it('authenticates with the password from the variable named by passwordEnv', async () => {
    const redis = connectRedis(redisConfig({ url: server.url, passwordEnv: 'FG_TEST_REDIS_PW' }), { env: { FG_TEST_REDIS_PW: password } });
    try {
      expect(await redisHealth(redis)).toMatchObject({ ok: true });
      expect(await new ActionLease(redis, testPrefix()).claim('ep', 'w', 1000)).toBe('claimed');
    } finally {
      redis.disconnect();
    }
  });

  it('a wrong password is FG_REDIS_UNAVAILABLE and neither the error nor the log carries a password', async () => {
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    const log = recordingLogger();
    const redis = connectRedis(redisConfig({ url: server.url, passwordEnv: 'FG_TEST_REDIS_PW' }), { env: { FG_TEST_REDIS_PW: wrong }, logger: log, commandTimeoutMs: 2000 });
    try {
      const err = await failure(new ActionLease(redis, testPrefix()).claim('ep', 'w', 1000));
      expect(err.code).toBe('FG_REDIS_UNAVAILABLE');
      const everything = `${err.message} ${String((err.cause as Error | undefined)?.message)} ${log.lines.join('\n')}`;
      expect(everything).not.toContain(wrong);
      expect(everything).not.toContain(password);
    } finally {
      redis.disconnect();
    }
  });

  it('no password where one is required is FG_REDIS_UNAVAILABLE naming the cause', async () => {
    const redis = connectRedis(redisConfig({ url: server.url }), { commandTimeoutMs: 2000 });
    try {
      const err = await failure(new ActionLease(redis, testPrefix()).claim('ep', 'w', 1000));
      expect(err.code).toBe('FG_REDIS_UNAVAILABLE');
      expect(err.message).toMatch(/password/);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses config that would leak or lack the password, without echoing it', () => {
    expect(() => connectRedis(redisConfig({ url: `redis://:${password}@127.0.0.1:${server.port}` }))).toThrow(
      expect.objectContaining({ code: 'FG_CONFIG_INVALID', message: expect.not.stringContaining(password) }),
    );
    expect(() => connectRedis(redisConfig({ url: server.url, passwordEnv: 'FG_TEST_UNSET_VAR' }), { env: {} })).toThrow(
      expect.objectContaining({ code: 'FG_CONFIG_INVALID', message: expect.stringContaining('FG_TEST_UNSET_VAR') }),
    );
  });
});

describe('shared Redis on 6379', () => {
  it('answers PING (the services are up); health reports latency', async () => {
    const redis = connectRedis(redisConfig());
    try {
      const h = await redisHealth(redis);
      expect(h).toMatchObject({ ok: true });
      if (h.ok) expect(h.latencyMs).toBeLessThan(1000);
    } finally {
      redis.disconnect();
    }
  });
});

describe('key parts and backoff', () => {
  it('encodes every hostile string into [A-Za-z0-9._%~-] and never maps two strings to one part', () => {
    const inputs = ['a:b', 'a%3Ab', 'a%253Ab', '*', '?', '[x]', 'a\nb', 'a\r\nb', '$(id)', '`id`', ' ', '', '~', '~x', '\ud800', '\udc00', '\ud800\udc00', 'é', 'e\u0301', 'A', 'a'];
    const parts = inputs.map(keyPart);
    expect(new Set(parts).size).toBe(inputs.length);
    for (const p of parts) expect(p).toMatch(/^[A-Za-z0-9._%~-]*$/);
    expect(keyPart('floodgate.events')).toBe('floodgate.events');
    expect(keyPart('a:b')).toBe('a%3Ab');
  });

  it('backs off exponentially up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelay(n, 1000))).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
  });
});
