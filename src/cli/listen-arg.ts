import { usageError } from './args.js';

/** host:port or [v6]:port, as `--listen` style options take it. */
export function parseHostPort(flag: string, v: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$/.exec(v) ?? /^([^\s:]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw usageError(`${flag} must be host:port, e.g. 127.0.0.1:8025 (got '${v}')`);
  return { host: m[1]!, port: Number(m[2]) };
}
