/**
 * The real DnsLookup: node's c-ares `Resolver` pointed at the configured
 * servers, wrapped so that detectors can fire lookups from the hot path
 * without ever hurting it:
 *
 * - cache by TTL (A answers carry their TTL; other types use `defaultTtlMs`),
 *   negative answers (NXDOMAIN, NODATA) cached `negativeTtlMs`, LRU-bounded
 *   by `cacheMax`; errors (timeout, SERVFAIL, refused) are not cached;
 * - in-flight de-duplication: concurrent asks for one name share one query;
 * - a token bucket (`maxQueriesPerSecond`, burst of one second's worth):
 *   a query beyond it is rejected at once with code `ERATELIMIT`, never queued;
 * - a hard deadline per query (`timeoutMs`) on top of c-ares' own retries:
 *   the promise rejects with code `ETIMEOUT` by then, whatever the server does.
 *
 * Outcomes: NXDOMAIN/NODATA resolve to []; everything else that is not an
 * answer rejects with a `DnsLookupError` whose `code` says why.
 * The clock is injected (default Date.now): it only ages the cache and
 * refills the bucket, it never reaches a detection decision.
 */
import { Resolver } from 'node:dns/promises';
import type { DnsLookup, DnsRrType } from './dns.js';

export interface DnsLookupOptions {
  /** Name servers, `ip` or `ip:port` (`[v6]:port` for IPv6 with a port). Default: the system's. */
  servers?: string[];
  /** Overall deadline of one query in ms, retries included. Default 2000. */
  timeoutMs?: number;
  /** c-ares tries per server. Default 2. */
  tries?: number;
  /** Queries sent per second at most (cache hits and shared in-flight queries are free). Default 50. */
  maxQueriesPerSecond?: number;
  /** Cached answers kept at most (least recently used evicted). Default 10 000. */
  cacheMax?: number;
  /** How long NXDOMAIN/NODATA is remembered. Default 5 min. */
  negativeTtlMs?: number;
  /** TTL for answers whose TTL the resolver does not report (TXT, MX, AAAA, PTR). Default 5 min. */
  defaultTtlMs?: number;
  /** Bounds applied to reported TTLs. Defaults 30 s and 1 day. */
  minTtlMs?: number;
  maxTtlMs?: number;
  /** Clock for the cache and the rate limit. Default Date.now. */
  now?: () => number;
}

export type DnsLookupErrorCode = 'ETIMEOUT' | 'ERATELIMIT' | 'ESERVFAIL' | 'EREFUSED' | 'ECONNREFUSED' | 'EDNS';

export class DnsLookupError extends Error {
  constructor(
    readonly code: DnsLookupErrorCode | string,
    message: string,
  ) {
    super(message);
    this.name = 'DnsLookupError';
  }
}

export interface DnsLookupStats {
  /** Queries sent to a server. */
  queries: number;
  cacheHits: number;
  /** Asks that joined a query already in flight. */
  shared: number;
  rateLimited: number;
  timeouts: number;
  errors: number;
  cached: number;
  evicted: number;
}

export interface RealDnsLookup extends DnsLookup {
  resolve(name: string, rrtype: DnsRrType): Promise<unknown[]>;
  stats(): DnsLookupStats;
}

interface CacheEntry {
  exp: number;
  v: unknown[];
}

/** c-ares codes that mean "no such record": an answer, cached as []. */
const NEGATIVE = new Set(['ENOTFOUND', 'ENODATA']);

export function createDnsLookup(opts: DnsLookupOptions = {}): RealDnsLookup {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const tries = Math.max(1, opts.tries ?? 2);
  const rate = opts.maxQueriesPerSecond ?? 50;
  const cacheMax = opts.cacheMax ?? 10_000;
  const negativeTtl = opts.negativeTtlMs ?? 300_000;
  const defaultTtl = opts.defaultTtlMs ?? 300_000;
  const minTtl = opts.minTtlMs ?? 30_000;
  const maxTtl = opts.maxTtlMs ?? 86_400_000;
  const now = opts.now ?? Date.now;

  // c-ares' per-try timeout; the hard deadline below bounds the total whatever its backoff does
  const resolver = new Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / tries)), tries });
  if (opts.servers && opts.servers.length > 0) resolver.setServers(opts.servers);

  const cache = new Map<string, CacheEntry>();
  const inflight = new Map<string, Promise<unknown[]>>();
  const st: DnsLookupStats = { queries: 0, cacheHits: 0, shared: 0, rateLimited: 0, timeouts: 0, errors: 0, cached: 0, evicted: 0 };
  let tokens = rate;
  let refilled = now();

  function takeToken(): boolean {
    const t = now();
    if (t > refilled) {
      tokens = Math.min(rate, tokens + ((t - refilled) / 1000) * rate);
      refilled = t;
    }
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  function remember(key: string, v: unknown[], ttlMs: number): void {
    cache.delete(key);
    cache.set(key, { exp: now() + ttlMs, v });
    if (cache.size > cacheMax) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) {
        cache.delete(oldest);
        st.evicted++;
      }
    }
  }

  function clampTtl(ttlSeconds: number): number {
    return Math.min(maxTtl, Math.max(minTtl, ttlSeconds * 1000));
  }

  async function query(name: string, rrtype: DnsRrType): Promise<{ v: unknown[]; ttlMs: number }> {
    switch (rrtype) {
      case 'A': {
        const rs = await resolver.resolve4(name, { ttl: true });
        let ttl = Infinity;
        for (const r of rs) if (r.ttl < ttl) ttl = r.ttl;
        return { v: rs, ttlMs: rs.length > 0 ? clampTtl(ttl) : negativeTtl };
      }
      case 'AAAA': {
        const rs = await resolver.resolve6(name, { ttl: true });
        let ttl = Infinity;
        for (const r of rs) if (r.ttl < ttl) ttl = r.ttl;
        return { v: rs, ttlMs: rs.length > 0 ? clampTtl(ttl) : negativeTtl };
      }
      case 'TXT':
        return { v: await resolver.resolveTxt(name), ttlMs: defaultTtl };
      case 'MX':
        return { v: await resolver.resolveMx(name), ttlMs: defaultTtl };
      case 'PTR':
        return { v: await resolver.resolvePtr(name), ttlMs: defaultTtl };
    }
  }

  /** Raw answers as the Resolver gives them (A/AAAA with ttl), through cache, de-dup, bucket, deadline. */
  function lookup(name: string, rrtype: DnsRrType): Promise<unknown[]> {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const hit = cache.get(key);
    if (hit !== undefined) {
      if (hit.exp > now()) {
        st.cacheHits++;
        return Promise.resolve(hit.v);
      }
      cache.delete(key);
    }
    const running = inflight.get(key);
    if (running !== undefined) {
      st.shared++;
      return running;
    }
    if (!takeToken()) {
      st.rateLimited++;
      return Promise.reject(new DnsLookupError('ERATELIMIT', `DNS rate limit of ${rate} queries/s reached: ${rrtype} ${name} not queried`));
    }
    st.queries++;
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        st.timeouts++;
        reject(new DnsLookupError('ETIMEOUT', `DNS ${rrtype} ${name}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
    });
    const p = Promise.race([
      query(name, rrtype).then(
        (r) => {
          remember(key, r.v, r.v.length > 0 ? r.ttlMs : negativeTtl);
          return r.v;
        },
        (err: unknown) => {
          const code = (err as { code?: unknown }).code;
          if (typeof code === 'string' && NEGATIVE.has(code)) {
            remember(key, [], negativeTtl);
            return [] as unknown[];
          }
          if (code === 'ETIMEOUT') {
            if (!late) st.timeouts++;
          } else st.errors++;
          throw new DnsLookupError(typeof code === 'string' ? code : 'EDNS', `DNS ${rrtype} ${name}: ${(err as Error).message ?? String(err)}`);
        },
      ),
      deadline,
    ]).finally(() => {
      clearTimeout(timer);
      inflight.delete(key);
    });
    inflight.set(key, p);
    return p;
  }

  return {
    async a(name) {
      const rs = (await lookup(name, 'A')) as { address: string; ttl: number }[];
      return rs.map((r) => ({ address: r.address, ttl: r.ttl }));
    },
    async txt(name) {
      const rs = (await lookup(name, 'TXT')) as string[][];
      return rs.map((chunks) => chunks.join(''));
    },
    async resolve(name, rrtype) {
      const rs = await lookup(name, rrtype);
      // node's dns.resolve(name, 'A'|'AAAA') shape: plain addresses
      if (rrtype === 'A' || rrtype === 'AAAA') return (rs as { address: string }[]).map((r) => r.address);
      return rs;
    },
    stats() {
      return { ...st, cached: cache.size };
    },
  };
}
