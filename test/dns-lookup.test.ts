import dns from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsLookup } from '../src/detect/dns-lookup.js';
import { denyRealDns, startDnsServer, type TestDnsServer } from './helpers/dns-server.js';

let undoDeny: () => void;
let srv: TestDnsServer;
let dead: TestDnsServer;

beforeAll(async () => {
  undoDeny = denyRealDns();
  srv = await startDnsServer({
    '9.113.0.203.zen.spamhaus.org': { A: ['127.0.0.2', '127.0.0.4'], ttl: 600 },
    'yahoo.com.tw': { TXT: ['v=spf1 include:_spf.example.net -all', 'google-site-verification=x'] },
    'long.example': { TXT: ['v=spf1 ' + 'ip4:192.0.2.1 '.repeat(30) + '-all'] },
    'mx.example': { MX: [{ exchange: 'mail.mx.example', priority: 10 }], AAAA: ['2001:db8::25'] },
    'nodata.example': { A: [] },
  });
  dead = await startDnsServer({}, { silent: true });
});

afterAll(async () => {
  await srv.close();
  await dead.close();
  undoDeny();
});

describe('createDnsLookup', () => {
  it('answers A with TTLs and caches until the TTL runs out', async () => {
    let t = 1_000_000;
    const d = createDnsLookup({ servers: [srv.address], now: () => t });
    const name = '9.113.0.203.zen.spamhaus.org';
    const before = srv.count(name);
    const a = await d.a(name);
    expect(a.map((r) => r.address).sort()).toEqual(['127.0.0.2', '127.0.0.4']);
    expect(a[0]!.ttl).toBe(600);
    expect(await d.a(name.toUpperCase())).toHaveLength(2);
    t += 599_000;
    await d.a(name);
    expect(srv.count(name) - before).toBe(1);
    expect(d.stats()).toMatchObject({ queries: 1, cacheHits: 2 });
    t += 2_000; // past the TTL
    await d.a(name);
    expect(srv.count(name) - before).toBe(2);
  });

  it('returns TXT records with chunks joined, and the generic resolve shapes', async () => {
    const d = createDnsLookup({ servers: [srv.address] });
    expect((await d.txt('yahoo.com.tw')).sort()).toEqual(['google-site-verification=x', 'v=spf1 include:_spf.example.net -all']);
    const long = await d.txt('long.example');
    expect(long[0]!.length).toBeGreaterThan(255);
    const chunked = (await d.resolve('long.example', 'TXT')) as string[][];
    expect(chunked[0]!.length).toBe(2);
    expect(await d.resolve('mx.example', 'MX')).toEqual([{ exchange: 'mail.mx.example', priority: 10 }]);
    expect(await d.resolve('mx.example', 'AAAA')).toEqual(['2001:db8::25']);
    expect(await d.resolve('9.113.0.203.zen.spamhaus.org', 'A')).toHaveLength(2);
  });

  it('turns NXDOMAIN and NODATA into [] and caches them', async () => {
    const d = createDnsLookup({ servers: [srv.address] });
    const before = srv.count('1.2.0.192.zen.spamhaus.org');
    expect(await d.a('1.2.0.192.zen.spamhaus.org')).toEqual([]);
    expect(await d.a('1.2.0.192.zen.spamhaus.org')).toEqual([]);
    expect(srv.count('1.2.0.192.zen.spamhaus.org') - before).toBe(1);
    expect(await d.a('nodata.example')).toEqual([]);
    expect(await d.txt('nowhere.example')).toEqual([]);
  });

  it('shares one query between concurrent asks for a name', async () => {
    const d = createDnsLookup({ servers: [srv.address] });
    const before = srv.count('yahoo.com.tw', 'TXT');
    const rs = await Promise.all([d.txt('yahoo.com.tw'), d.txt('yahoo.com.tw'), d.txt('yahoo.com.tw')]);
    expect(rs.every((r) => r.length === 2)).toBe(true);
    expect(srv.count('yahoo.com.tw', 'TXT') - before).toBe(1);
    expect(d.stats().shared).toBe(2);
  });

  it('rejects within the timeout when the server never answers, and caches nothing', async () => {
    const d = createDnsLookup({ servers: [dead.address], timeoutMs: 300, tries: 3 });
    const t0 = performance.now();
    await expect(d.a('9.113.0.203.zen.spamhaus.org')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(1000);
    expect(d.stats()).toMatchObject({ timeouts: 1, cached: 0 });
    await expect(d.txt('x.example')).rejects.toMatchObject({ code: 'ETIMEOUT' });
  });

  it('rejects queries beyond the rate limit at once, and refills with time', async () => {
    let t = 0;
    const d = createDnsLookup({ servers: [srv.address], maxQueriesPerSecond: 3, now: () => t });
    const names = ['a', 'b', 'c', 'd', 'e'].map((x) => `${x}.rate.example`);
    const results = await Promise.allSettled(names.map((n) => d.a(n)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'ERATELIMIT' });
    expect(String((results[3] as PromiseRejectedResult).reason.message)).toMatch(/rate limit of 3 queries\/s/);
    // cache hits cost nothing
    await expect(d.a('a.rate.example')).resolves.toEqual([]);
    t += 400; // 1.2 tokens back
    await expect(d.a('d.rate.example')).resolves.toEqual([]);
    await expect(d.a('e.rate.example')).rejects.toMatchObject({ code: 'ERATELIMIT' });
    expect(d.stats()).toMatchObject({ queries: 4, rateLimited: 3 });
  });

  it('keeps the cache bounded', async () => {
    const d = createDnsLookup({ servers: [srv.address], cacheMax: 2 });
    for (const n of ['x1', 'x2', 'x3', 'x4']) await d.a(`${n}.bounded.example`);
    expect(d.stats()).toMatchObject({ cached: 2, evicted: 2 });
  });
});

describe('the real-DNS guard', () => {
  it('fails any lookup that would leave loopback test servers', async () => {
    expect(() => dns.promises.resolve4('example.com')).toThrow(/real DNS lookup denied/);
    expect(() => new Resolver().resolveTxt('example.com')).toThrow(/real DNS lookup denied/);
    const stub = new Resolver();
    stub.setServers(['127.0.0.53']);
    expect(() => stub.resolve4('example.com')).toThrow(/real DNS lookup denied/);
    // a lookup built without servers uses the system's: denied too
    await expect(createDnsLookup({}).a('example.com')).rejects.toThrow(/real DNS lookup denied/);
  });
});
