// Partition snapshots against the real Redis on 127.0.0.1:6379.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/redis/connection.js';
import { PartitionSnapshots, serializeState } from '../../src/redis/snapshots.js';
import { deletePrefix, redisConfig, testPrefix } from './redis-server.js';

const prefix = testPrefix();
let redis: Redis;
let snaps: PartitionSnapshots;

beforeAll(async () => {
  redis = connectRedis(redisConfig({ keyPrefix: prefix }), { commandTimeoutMs: 20_000 });
  await redis.ping();
  snaps = new PartitionSnapshots(redis, prefix);
});

afterAll(async () => {
  await deletePrefix(redis, prefix);
  redis.disconnect();
});

/** Detector-window-like JSON of about `bytes` bytes: accounts with timestamps and IP sets. */
function bigState(bytes: number): { windows: Record<string, { count: number; times: number[]; ips: string[] }> } {
  const windows: Record<string, { count: number; times: number[]; ips: string[] }> = {};
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const w = {
      count: i % 97,
      times: Array.from({ length: 40 }, (_, j) => 1_700_000_000_000 + i * 13 + j * 1000),
      ips: Array.from({ length: 8 }, (_, j) => `198.51.${(i + j) % 256}.${(i * 7 + j) % 256}`),
    };
    const k = `user${i}@example${i % 50}.org`;
    windows[k] = w;
    size += k.length + JSON.stringify(w).length + 4; // "k": and the comma
  }
  return { windows };
}

describe('PartitionSnapshots', () => {
  it('round-trips a 20 MB state compressed, with its offset and save time', async () => {
    const state = bigState(20 * 1024 * 1024);
    const json = JSON.stringify(state);
    expect(json.length).toBeGreaterThan(20 * 1024 * 1024);
    const before = Date.now();
    const r = await snaps.save('detect', 'floodgate.events', 3, { offset: '9007199254740993', state });
    expect(r.saved).toBe(true);
    if (!r.saved) return;
    expect(r.stateBytes).toBe(Buffer.byteLength(json));
    // Compressed on the wire and in Redis: the value Redis holds is the compressed size, far below the JSON.
    expect(r.bytes).toBeLessThan(r.stateBytes / 5);
    expect(await redis.hstrlen(snaps.key('detect', 'floodgate.events', 3), 'state')).toBe(r.bytes);

    const t0 = performance.now();
    const loaded = await snaps.load('detect', 'floodgate.events', 3);
    const loadMs = performance.now() - t0;
    expect(loaded?.offset).toBe('9007199254740993'); // beyond 2^53: kept exact as a string
    expect(loaded?.savedAt).toBeGreaterThanOrEqual(before);
    expect(JSON.stringify(loaded?.state)).toBe(json);
    const s = snaps.stats();
    expect(s.saves).toBe(1);
    expect(s.bytesWritten).toBe(r.bytes);
    expect(s.loads).toBe(1);
    const metrics = snaps.metrics();
    expect(metrics.find((m) => m.name === 'floodgate_snapshot_saved_bytes_total')?.samples[0]?.value).toBe(r.bytes);
    process.stdout.write(
      `snapshot 20 MB: json ${(r.stateBytes / 1048576).toFixed(1)} MiB → ${(r.bytes / 1048576).toFixed(2)} MiB, save ${r.ms.toFixed(0)} ms, load ${loadMs.toFixed(0)} ms\n`,
    );
  });

  it('loads nothing for a partition never saved, and nothing after delete', async () => {
    expect(await snaps.load('detect', 'floodgate.events', 99)).toBeUndefined();
    await snaps.save('detect', 'floodgate.events', 98, { offset: '5', state: { a: 1 } });
    expect(await snaps.delete('detect', 'floodgate.events', 98)).toBe(true);
    expect(await snaps.load('detect', 'floodgate.events', 98)).toBeUndefined();
    expect(await snaps.delete('detect', 'floodgate.events', 98)).toBe(false);
  });

  it('refuses to overwrite a newer offset with an older one (a zombie worker), comparing as integers', async () => {
    expect((await snaps.save('g', 't', 0, { offset: '100', state: { by: 'successor' } })).saved).toBe(true);
    // '99' > '100' as text; as offsets it is older and must be refused.
    const zombie = await snaps.save('g', 't', 0, { offset: '99', state: { by: 'zombie' } });
    expect(zombie).toEqual({ saved: false, currentOffset: '100' });
    expect(await snaps.load('g', 't', 0)).toMatchObject({ offset: '100', state: { by: 'successor' } });
    // Same offset again (a retried save) and a newer one are accepted.
    expect((await snaps.save('g', 't', 0, { offset: '100', state: { by: 'retry' } })).saved).toBe(true);
    expect((await snaps.save('g', 't', 0, { offset: '1000', state: { by: 'later' } })).saved).toBe(true);
    expect((await snaps.save('g', 't', 0, { offset: '999', state: { by: 'zombie' } })).saved).toBe(false);
    expect(await snaps.load('g', 't', 0)).toMatchObject({ offset: '1000', state: { by: 'later' } });
    // int64 range, compared beyond Number precision.
    expect((await snaps.save('g', 't', 0, { offset: '9223372036854775807', state: 1 })).saved).toBe(true);
    expect((await snaps.save('g', 't', 0, { offset: '9223372036854775806', state: 2 })).saved).toBe(false);
    expect(snaps.stats().staleRefused).toBeGreaterThanOrEqual(3);
  });

  it('rejects offsets that are not canonical int64 decimals before touching Redis', async () => {
    for (const bad of ['-1', '01', '1e3', ' 1', '', '9223372036854775808', '1; DEL x']) {
      await expect(snaps.save('g', 't', 7, { offset: bad, state: {} })).rejects.toMatchObject({ code: 'FG_INTERNAL' });
    }
    expect(await snaps.load('g', 't', 7)).toBeUndefined();
  });

  it('concurrent saves and loads never see a torn snapshot, and the newest offset wins', async () => {
    // Each state carries its own offset and a payload derived from it; a torn
    // write would pair one save's offset with another's state.
    const offsets = Array.from({ length: 40 }, (_, i) => 1000 + ((i * 17) % 40));
    const stateFor = (o: number) => ({ offset: o, payload: Array.from({ length: 2000 }, (_, j) => `${o}:${j}`) });
    const seen: Array<{ offset: string; state: unknown }> = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const s = await snaps.load('g', 'torn', 1);
        if (s) seen.push(s);
      }
    })();
    const results = await Promise.all(offsets.map((o) => snaps.save('g', 'torn', 1, { offset: String(o), state: stateFor(o) })));
    reading = false;
    await reader;
    expect(results.some((r) => r.saved)).toBe(true);
    const final = await snaps.load('g', 'torn', 1);
    expect(final?.offset).toBe(String(Math.max(...offsets)));
    expect(final?.state).toEqual(stateFor(Math.max(...offsets)));
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s.state).toEqual(stateFor(Number(s.offset)));
    // Offsets seen by the reader never go backwards.
    for (let i = 1; i < seen.length; i++) expect(BigInt(seen[i]!.offset) >= BigInt(seen[i - 1]!.offset)).toBe(true);
  });

  it('keeps group, topic and partition apart: hostile names cannot reach another key', async () => {
    await snaps.save('a:b', 'c', 1, { offset: '1', state: 'first' });
    await snaps.save('a', 'b:c', 1, { offset: '2', state: 'second' });
    await snaps.save('*', '\n$(rm -rf /)', 1, { offset: '3', state: 'third' });
    expect((await snaps.load('a:b', 'c', 1))?.state).toBe('first');
    expect((await snaps.load('a', 'b:c', 1))?.state).toBe('second');
    expect((await snaps.load('*', '\n$(rm -rf /)', 1))?.state).toBe('third');
    expect(snaps.key('*', '\n$(rm -rf /)', 1)).toMatch(/^[A-Za-z0-9._%:-]+$/);
    expect(() => snaps.key('g', 't', -1)).toThrow(/partition/);
    expect(() => snaps.key('g', 't', 1.5)).toThrow(/partition/);
  });

  it('reports a damaged snapshot as FG_REDIS_FAILED instead of returning garbage', async () => {
    await snaps.save('g', 'damaged', 0, { offset: '10', state: { ok: true } });
    await redis.hset(snaps.key('g', 'damaged', 0), 'state', Buffer.from('not brotli at all'));
    await expect(snaps.load('g', 'damaged', 0)).rejects.toMatchObject({ code: 'FG_REDIS_FAILED', message: expect.stringMatching(/does not decode/) });
    // A stored size smaller than the real one is refused rather than inflated without bound.
    await snaps.save('g', 'damaged', 1, { offset: '10', state: { big: 'x'.repeat(10_000) } });
    await redis.hset(snaps.key('g', 'damaged', 1), 'rawBytes', '100');
    await expect(snaps.load('g', 'damaged', 1)).rejects.toMatchObject({ code: 'FG_REDIS_FAILED' });
  });

  it('saves a state serialised earlier as it was then, not as it is when saved (checkpoints save after ClickHouse took the rows)', async () => {
    const state = { windows: { 'a@example.org': [1, 2] } as Record<string, number[]> };
    const taken = serializeState(7, state);
    state.windows['b@example.org'] = [3];
    state.windows['a@example.org']!.push(4);
    const own = new PartitionSnapshots(redis, prefix);
    const r = await own.save('detect', 'floodgate.events', 7, { offset: '42', state: taken });
    expect(r.saved).toBe(true);
    const loaded = await own.load('detect', 'floodgate.events', 7);
    expect(loaded).toMatchObject({ offset: '42', state: { windows: { 'a@example.org': [1, 2] } } });
    expect(Object.keys((loaded?.state as typeof state).windows)).toEqual(['a@example.org']);
    expect(() => serializeState(7, { n: 1n })).toThrow(/partition 7 is not JSON-serialisable/);
  });
});
