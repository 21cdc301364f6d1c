/**
 * One Redis client per process, configured so that an outage is an error
 * the caller can handle rather than a promise that never settles: commands
 * wait through a few reconnect attempts (capped backoff) and at most
 * `commandTimeoutMs`, then fail with FG_REDIS_UNAVAILABLE. The client itself
 * never gives up reconnecting, so once Redis is back the same client works.
 *
 * A command that timed out while queued for a reconnect may still be sent
 * once Redis is back (ioredis cannot take it out of its queue). Every write
 * in src/redis is safe to apply late: snapshots compare offsets, a lease
 * claim is re-entrant for its owner and expires, a budget spend only makes
 * the budget stricter.
 *
 * The password comes from the environment variable named by
 * `redis.passwordEnv`; it is handed to ioredis and nowhere else (no log line,
 * no error message carries it).
 */
import { Redis, ReplyError } from 'ioredis';
import type { RedisConfig } from '../config/distributed.js';
import { FloodgateError } from '../core/errors.js';

/** The few methods of a pino logger this module uses. */
export interface RedisLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface ConnectRedisOptions {
  /** Where the password variable is looked up (tests pass their own). Default process.env. */
  env?: NodeJS.ProcessEnv;
  logger?: RedisLogger;
  /** Upper bound of one command's wait, queued while reconnecting included. Default 5000. */
  commandTimeoutMs?: number;
  /** Reconnect attempts a queued command waits through before it fails. Default 2. */
  maxRetriesPerRequest?: number;
  /** Longest pause between reconnect attempts (the backoff doubles from 50 ms up to this). Default 1000. */
  retryCapMs?: number;
  /** How long one TCP connect may take (a blackholed host). Default 2000. */
  connectTimeoutMs?: number;
  /** Shown by CLIENT LIST, to tell workers apart. */
  connectionName?: string;
}

/** Capped exponential backoff; always a number, so the client keeps reconnecting for ever. */
export function reconnectDelay(attempt: number, capMs: number): number {
  return Math.min(capMs, 50 * 2 ** Math.min(attempt - 1, 16));
}

export function connectRedis(cfg: RedisConfig, opts: ConnectRedisOptions = {}): Redis {
  const env = opts.env ?? process.env;
  let parsed: URL;
  try {
    parsed = new URL(cfg.url);
  } catch {
    throw new FloodgateError('FG_CONFIG_INVALID', 'redis.url is not a URL (expected redis://host:port[/db])');
  }
  // A password written in the URL would end up in config files and in any
  // message that quotes the URL; the house rule is secrets by env name.
  if (parsed.password !== '') {
    throw new FloodgateError('FG_CONFIG_INVALID', 'redis.url must not contain a password: put it in an environment variable and name it in redis.passwordEnv');
  }
  let password: string | undefined;
  if (cfg.passwordEnv !== undefined) {
    password = env[cfg.passwordEnv];
    if (password === undefined || password === '') {
      throw new FloodgateError('FG_CONFIG_INVALID', `redis.passwordEnv names ${cfg.passwordEnv}, which is not set in the environment`);
    }
  }
  const capMs = opts.retryCapMs ?? 1000;
  const redis = new Redis(cfg.url, {
    ...(password !== undefined ? { password } : {}),
    ...(opts.connectionName !== undefined ? { connectionName: opts.connectionName } : {}),
    retryStrategy: (attempt) => reconnectDelay(attempt, capMs),
    maxRetriesPerRequest: opts.maxRetriesPerRequest ?? 2,
    commandTimeout: opts.commandTimeoutMs ?? 5000,
    connectTimeout: opts.connectTimeoutMs ?? 2000,
    // Connect now so that a wrong host shows up at start, not at the first snapshot.
    lazyConnect: false,
  });
  watchConnection(redis, opts.logger);
  return redis;
}

/**
 * ioredis emits 'error' on every failed reconnect; without a listener Node
 * prints each one. Log once when the link goes down and once when it is back.
 */
function watchConnection(redis: Redis, logger: RedisLogger | undefined): void {
  let down = false;
  const endpoint = redisEndpoint(redis);
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger?.warn({ redis: endpoint, err: safeMessage(err) }, 'redis unavailable; reconnecting');
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    logger?.info({ redis: endpoint }, 'redis reachable again');
  });
}

/** host:port of the client, for messages (never the URL, never credentials). */
export function redisEndpoint(redis: Redis): string {
  const o = redis.options;
  if (o.path) return o.path;
  return `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
}

function safeMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}

const unavailablePatterns = [
  /max retries per request/i,
  /command timed out/i,
  /connection is closed/i,
  /stream isn't writeable/i,
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|ENOTFOUND|EAI_AGAIN/,
];

/**
 * Translate what ioredis rejects with into FloodgateError: the link or the
 * password → FG_REDIS_UNAVAILABLE, a refused command → FG_REDIS_FAILED.
 * `what` says what floodgate was doing ("saving snapshot of partition 3").
 */
export function redisFailure(redis: Redis, what: string, err: unknown): FloodgateError {
  if (err instanceof FloodgateError) return err;
  const endpoint = redisEndpoint(redis);
  const msg = safeMessage(err);
  if (err instanceof ReplyError) {
    if (/^(WRONGPASS|NOAUTH)/.test(msg)) {
      return new FloodgateError('FG_REDIS_UNAVAILABLE', `redis at ${endpoint} refused the password while ${what} (check redis.passwordEnv)`, { cause: err });
    }
    if (/^LOADING/.test(msg)) {
      return new FloodgateError('FG_REDIS_UNAVAILABLE', `redis at ${endpoint} is still loading its data while ${what}`, { cause: err });
    }
    return new FloodgateError('FG_REDIS_FAILED', `redis at ${endpoint} refused a command while ${what}: ${msg}`, { cause: err });
  }
  if (unavailablePatterns.some((re) => re.test(msg))) {
    return new FloodgateError('FG_REDIS_UNAVAILABLE', `redis at ${endpoint} unavailable while ${what}: ${msg}`, { cause: err });
  }
  return new FloodgateError('FG_REDIS_FAILED', `redis at ${endpoint} failed while ${what}: ${msg}`, { cause: err });
}

/** Run one Redis operation; any failure becomes a FloodgateError naming what was being done. */
export async function redisCall<T>(redis: Redis, what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw redisFailure(redis, what, err);
  }
}

export type RedisHealth = { ok: true; latencyMs: number } | { ok: false; error: string };

/** PING with its own deadline, for /health: never waits longer than timeoutMs. */
export async function redisHealth(redis: Redis, timeoutMs = 1000): Promise<RedisHealth> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no PONG within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const reply = await Promise.race([redis.ping(), deadline]);
    if (reply !== 'PONG') return { ok: false, error: `unexpected PING reply` };
    return { ok: true, latencyMs: Math.round((performance.now() - started) * 10) / 10 };
  } catch (err) {
    return { ok: false, error: `redis at ${redisEndpoint(redis)}: ${safeMessage(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A key part from untrusted text (account, episode, group, topic): percent-
 * encoding of everything but [A-Za-z0-9._-], so a part can hold no ':' (our
 * separator), no glob character and no newline, and two different inputs
 * never give the same part. Text that is not well-formed UTF-16 (a lone
 * surrogate, which encodeURIComponent refuses) is base64url of its code
 * units behind a '~', which the percent form never starts with.
 */
export function keyPart(s: string): string {
  try {
    return encodeURIComponent(s).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  } catch {
    return `~${Buffer.from(s, 'utf16le').toString('base64url')}`;
  }
}
