/**
 * Lua scripts through ioredis' defineCommand (EVALSHA, falling back to EVAL
 * after a Redis restart emptied the script cache). ioredis adds a method per
 * script to the client at run time, which its types cannot know; these two
 * helpers keep that cast in one place.
 */
import type { Redis } from 'ioredis';

type ScriptMethod = (...args: Array<string | Buffer>) => Promise<unknown>;

/** Define a script with one key on this client, once (later calls with the same name are no-ops). */
export function defineScript(redis: Redis, name: string, lua: string): void {
  if (typeof (redis as unknown as Record<string, unknown>)[name] !== 'function') redis.defineCommand(name, { numberOfKeys: 1, lua });
}

export function runScript(redis: Redis, name: string, key: string, ...args: Array<string | Buffer>): Promise<unknown> {
  const client = redis as unknown as Record<string, ScriptMethod>;
  const method = client[name];
  if (method === undefined) throw new Error(`redis script ${name} is not defined on this client`);
  return method.call(client, key, ...args);
}
