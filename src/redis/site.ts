/**
 * Local domains learnt from the logs (src/detect/site.ts), shared between
 * detect workers: a domain one worker learns from a delivery is local for
 * every worker. One Redis set, capped like SiteKnowledge's own list, filled
 * in batches (one round trip per call) and only with domains this process has
 * not sent before.
 */
import type { Redis } from 'ioredis';
import { redisCall } from './connection.js';
import { defineScript, runScript } from './scripts.js';

/** Same cap as SiteKnowledge's MAX_LEARNT. */
export const MAX_SHARED_DOMAINS = 10_000;
/** Domain names are at most 253 characters; anything longer is not one. */
const MAX_DOMAIN_LENGTH = 253;
const BATCH = 1000;

// Adds until the set holds ARGV[1] members; returns how many were new.
const ADD_LUA = `
local cap = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV do
  if redis.call('SCARD', KEYS[1]) >= cap then break end
  added = added + redis.call('SADD', KEYS[1], ARGV[i])
end
return added
`;

export interface SharedSiteOptions {
  /** Most domains kept. Default MAX_SHARED_DOMAINS. */
  cap?: number;
}

export class SharedSiteDomains {
  private readonly key: string;
  private readonly cap: number;
  /** Domains already in Redis as far as this process knows: not sent again. */
  private readonly sent = new Set<string>();

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    opts: SharedSiteOptions = {},
  ) {
    this.key = `${keyPrefix}site:learnt-domains`;
    this.cap = opts.cap ?? MAX_SHARED_DOMAINS;
    defineScript(redis, 'fgSiteAdd', ADD_LUA);
  }

  /** Add learnt domains (lower-cased; empty and over-long names skipped). Returns how many were new to Redis. */
  async add(domains: readonly string[]): Promise<number> {
    const fresh = new Set<string>();
    for (const d of domains) {
      const dom = d.toLowerCase();
      if (dom === '' || dom.length > MAX_DOMAIN_LENGTH || this.sent.has(dom)) continue;
      fresh.add(dom);
    }
    if (fresh.size === 0) return 0;
    const list = [...fresh];
    let added = 0;
    for (let i = 0; i < list.length; i += BATCH) {
      const chunk = list.slice(i, i + BATCH);
      added += Number(await redisCall(this.redis, 'sharing learnt domains', () => runScript(this.redis, 'fgSiteAdd', this.key, String(this.cap), ...chunk)));
      // Remember only what Redis has now seen, and never more than the cap, so the local set stays bounded.
      for (const d of chunk) if (this.sent.size < this.cap) this.sent.add(d);
    }
    return added;
  }

  async all(): Promise<string[]> {
    const members = await redisCall(this.redis, 'reading learnt domains', () => this.redis.smembers(this.key));
    return members.sort();
  }
}
