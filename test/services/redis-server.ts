// Helpers for the Redis suites: the shared server on 6379 (started by
// scripts/services.sh; a suite fails, never skips, when it is missing), a
// random key prefix per file, and a private redis-server on a free port for
// the outage tests, so the shared one is never stopped.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { redisSchema, type RedisConfig } from '../../src/config/distributed.js';

export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';

export function testPrefix(): string {
  return `fgtest:${randomUUID()}:`;
}

export function redisConfig(over: Partial<RedisConfig> = {}): RedisConfig {
  return redisSchema.parse({ url: SHARED_REDIS_URL, ...over });
}

/** Delete every key under prefix (which must contain no glob characters). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) n += await redis.del(...keys);
  } while (cursor !== '0');
  return n;
}

export { freePort } from '../../bench/kafka-deployment.js';

/** A throw-away redis-server (no persistence, loopback only) that a test may stop and start again. */
export class PrivateRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'fg-redis-'));
  private readonly pidFile = join(this.dir, 'redis.pid');

  constructor(
    readonly port: number,
    private readonly password?: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  start(): void {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', this.pidFile, '--dir', this.dir, '--logfile', join(this.dir, 'redis.log')];
    if (this.password !== undefined) args.push('--requirepass', this.password);
    const r = spawnSync('redis-server', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`redis-server did not start: ${r.error?.message ?? r.stderr}`);
    this.waitFor(true);
  }

  /** SIGKILL by pid: the server vanishes like a crashed host, without a goodbye. */
  stop(): void {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    } catch {
      return;
    }
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.pidFile, { force: true });
    this.waitFor(false);
  }

  dispose(): void {
    this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private waitFor(up: boolean): void {
    for (let i = 0; i < 100; i++) {
      const args = ['-p', String(this.port), '--no-auth-warning'];
      if (this.password !== undefined) args.push('-a', this.password);
      const r = spawnSync('redis-cli', [...args, 'ping'], { encoding: 'utf8' });
      const answers = r.status === 0 && /PONG|NOAUTH/.test(r.stdout);
      if (answers === up) return;
      spawnSync('sleep', ['0.05']);
    }
    throw new Error(`private redis on ${this.port} did not ${up ? 'start' : 'stop'}`);
  }
}
