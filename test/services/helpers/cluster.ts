// A throw-away floodgate deployment on the real services: its own topics,
// consumer group, ClickHouse database and Redis key prefix (so tests never
// see each other's data), a config file, and ship/detect processes spawned
// from the built CLI — the same binaries people run — whose logs are kept
// for the failure message.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { removeDeployment } from '../../../bench/remove-deployment.js';
import { CLICKHOUSE_URL, KAFKA_BROKERS, REDIS_URL, REPO_ROOT } from './services.js';

export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface ClusterOptions {
  partitions?: number;
  redisUrl?: string;
  /** Extra config merged at the top level (policy, actions, site...). */
  extra?: Record<string, unknown>;
  snapshotIntervalMs?: number;
  /** Merged into the clickhouse section; `url` also moves query() (a private server for outage tests). */
  clickhouse?: { url?: string } & Record<string, unknown>;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
}

export class Cluster {
  readonly id = `fgt${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'fg-cluster-'));
  readonly procs: Proc[] = [];
  private readonly opts: ClusterOptions;

  constructor(opts: ClusterOptions = {}) {
    this.opts = opts;
  }

  get database(): string {
    return this.id;
  }

  /** Config for one shipper (its inputs) plus everything shared. Returns its path. */
  config(name: string, inputs: { path: string; host?: string }[], ship: { host?: string } = {}): string {
    const doc = {
      timezone: 'UTC',
      inputs: inputs.map((i) => ({ path: i.path, ...(i.host ? { host: i.host } : {}) })),
      kafka: {
        brokers: KAFKA_BROKERS,
        topics: { lines: `${this.id}.lines`, events: `${this.id}.events`, deadLetter: `${this.id}.dead` },
        groupId: this.id,
        partitions: this.opts.partitions ?? 3,
        batchLines: 500,
      },
      clickhouse: { url: CLICKHOUSE_URL, database: this.id, flushMs: 200, ...this.opts.clickhouse },
      redis: { url: this.opts.redisUrl ?? REDIS_URL, keyPrefix: `${this.id}:`, snapshotIntervalMs: this.opts.snapshotIntervalMs ?? 1000 },
      ship: { statePath: join(this.dir, `${name}-ship.json`), ...(ship.host ? { host: ship.host } : {}) },
      ...this.opts.extra,
    };
    const path = join(this.dir, `${name}.yaml`);
    writeFileSync(path, stringify(doc));
    return path;
  }

  spawn(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const p = { name, child, logFile, exited };
    this.procs.push(p);
    return p;
  }

  ship(name: string, config: string): Proc {
    return this.spawn(name, ['ship', '--config', config, '--poll-ms', '100']);
  }

  detect(name: string, config: string, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
    return this.spawn(name, ['detect', '--config', config, '--worker-id', name, ...extraArgs], env);
  }

  async kill(p: Proc, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
    await p.exited;
  }

  logs(): string {
    return this.procs.map((p) => `--- ${p.name} (${p.logFile})\n${tail(readFileSync(p.logFile, 'utf8'), 40)}`).join('\n');
  }

  /** Rows of a query in this cluster's database (JSONEachRow). */
  async query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    const url = `${this.opts.clickhouse?.url ?? CLICKHOUSE_URL}/?database=${encodeURIComponent(this.id)}`;
    const res = await fetch(url, { method: 'POST', body: `${sql} FORMAT JSONEachRow` });
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse: ${text.slice(0, 500)}`);
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as T);
  }

  async count(sql: string): Promise<number> {
    const rows = await this.query<{ n: string | number }>(sql);
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => this.kill(p, 'SIGKILL')));
    await removeDeployment({ clickhouse: this.opts.clickhouse?.url ?? CLICKHOUSE_URL, kafka: KAFKA_BROKERS, redis: this.opts.redisUrl ?? REDIS_URL }, this.id, 'fg-test-cleanup');
  }
}

function tail(text: string, n: number): string {
  return text.split('\n').slice(-n).join('\n');
}

/** Poll until `check` returns a value (not undefined) or time runs out. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, onTimeout: () => string = () => ''): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) {
      const headline = `timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`;
      // The headline again at the end: CI keeps only the tail of a long failure (the logs come in between).
      throw new Error(`${headline}\n${onTimeout()}\n${headline}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Append lines in slices with pauses, like a live MTA writing its log. */
export async function appendSlowly(path: string, lines: readonly string[], slices: number, pauseMs: number): Promise<void> {
  const per = Math.ceil(lines.length / slices);
  for (let i = 0; i < lines.length; i += per) {
    appendFileSync(path, lines.slice(i, i + per).join('\n') + '\n');
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

export interface ReplayFinding {
  detector: string;
  entity: { kind: string; id: string };
  ts: number;
  score: number;
  severity: string;
}

/** `floodgate replay --json` over the files: the standalone answer to compare with. */
export async function replay(config: string, files: string[]): Promise<{ findings: ReplayFinding[]; decisions: { entity: { id: string }; action: string; ts: number }[] }> {
  const child = spawn(process.execPath, [CLI, 'replay', '--tz', 'UTC', '--config', config, ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`replay exited ${code}`);
  const lines = out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { type: string } & Record<string, unknown>);
  return {
    findings: lines.filter((l) => l.type === 'finding') as unknown as ReplayFinding[],
    decisions: lines.filter((l) => l.type === 'decision') as unknown as { entity: { id: string }; action: string; ts: number }[],
  };
}

/** The comparable identity of a finding: detector, entity, log time, score. */
export function findingKey(f: { detector: string; entity_id?: string; entity?: { id: string }; ts_ms?: number | string; ts?: number; score: number | string }): string {
  const entity = f.entity_id ?? f.entity?.id;
  const ts = f.ts_ms !== undefined ? Number(f.ts_ms) : f.ts;
  return `${f.detector}|${entity}|${ts}|${Number(f.score)}`;
}
