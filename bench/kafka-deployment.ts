/**
 * A private floodgate deployment on the real services, for the Kafka bench:
 * its own topics, consumer group, ClickHouse database and Redis key prefix
 * (so a run never reads another's rows), and `floodgate ship` /
 * `floodgate detect` as child processes of the built CLI — the binaries
 * people run, each on its own core if the machine has one to give — with
 * /metrics on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { removeDeployment, type DeploymentServices } from './remove-deployment.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export type ServiceAddresses = DeploymentServices;

/** The port of `host:port` or `http://host:port/...` (0 when there is none). */
export function portOf(address: string): number {
  return Number(/:(\d+)(?:\/.*)?$/.exec(address)?.[1] ?? 0);
}

/** Loopback services of `scripts/services.sh`, or FLOODGATE_BENCH_{KAFKA,CLICKHOUSE,REDIS}. */
export function serviceAddresses(env: NodeJS.ProcessEnv = process.env): ServiceAddresses {
  return {
    kafka: (env.FLOODGATE_BENCH_KAFKA ?? '127.0.0.1:9092')
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== ''),
    clickhouse: env.FLOODGATE_BENCH_CLICKHOUSE ?? 'http://127.0.0.1:8123',
    redis: env.FLOODGATE_BENCH_REDIS ?? 'redis://127.0.0.1:6379',
  };
}

/**
 * Each service answers, or one error naming every one that does not: the
 * phase measures the real path and never falls back to something else.
 */
export async function checkServices(a: ServiceAddresses): Promise<{ clickhouse: string; redis: string; kafkaBrokers: number }> {
  const problems: string[] = [];
  let clickhouse = '';
  let redis = '';
  let kafkaBrokers = 0;
  try {
    const res = await fetch(`${a.clickhouse}/?query=${encodeURIComponent('SELECT version()')}`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    clickhouse = (await res.text()).trim();
  } catch (e) {
    problems.push(`ClickHouse at ${a.clickhouse} (${(e as Error).message})`);
  }
  const r = new Redis(a.redis, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    redis = /redis_version:(\S+)/.exec(await r.info('server'))?.[1] ?? 'unknown';
  } catch (e) {
    problems.push(`Redis at ${a.redis} (${(e as Error).message})`);
  } finally {
    r.disconnect();
  }
  const admin = new Kafka({ clientId: 'floodgate-bench', brokers: a.kafka, logLevel: logLevel.NOTHING, connectionTimeout: 3000, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    kafkaBrokers = (await admin.describeCluster()).brokers.length;
  } catch (e) {
    problems.push(`Kafka at ${a.kafka.join(',')} (${(e as Error).message})`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  if (problems.length > 0) {
    throw new Error(`the kafka phase needs the real Kafka, ClickHouse and Redis; start them with 'bash scripts/services.sh up'. Not reachable: ${problems.join('; ')}`);
  }
  return { clickhouse, redis, kafkaBrokers };
}

/** What a deployment is configured with; printed with the results. */
export interface DeploymentSettings {
  partitions: number;
  /** kafka.batchLines: most lines per follower batch, i.e. per Kafka record. */
  batchLines: number;
  /** kafka.compression (lines topic) and kafka.eventsCompression. */
  compression: 'gzip' | 'none';
  eventsCompression: 'gzip' | 'none';
  /** kafka.linesFetchWaitMs: longest a parse stage's fetch of lines waits for more. */
  linesFetchWaitMs: number;
  /** clickhouse.flushMs / batchRows (events and messages), urgentFlushMs (findings, decisions, actions). */
  flushMs: number;
  urgentFlushMs: number;
  batchRows: number;
  /** redis.snapshotIntervalMs: detect checkpoints (ClickHouse flush, offset commit, state save). */
  snapshotIntervalMs: number;
  /** `floodgate ship --poll-ms` (an fs.watch event also wakes it within min(pollMs, 10) ms). */
  shipPollMs: number;
  /** The host the shipper keys its lines by (and gives lines without one). */
  shipHost: string;
  /** Two detect processes, `--stages parse` and `--stages detect`, instead of one running both (each stage gets a core). */
  splitStages: boolean;
  /** Without splitStages: how many `floodgate detect` processes run both stages in one consumer group (scale-out; default 1). */
  detectWorkers?: number;
  /** Extra node flags for the detect processes (e.g. a bigger young generation), when any. */
  workerNodeFlags?: string[];
}

export interface Child {
  name: string;
  proc: ChildProcess;
  logFile: string;
  metricsPort: number;
  exited: Promise<number | null>;
}

/** A TCP port free on loopback right now (the bench's children and the real-service tests listen on them). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class BenchDeployment {
  readonly id = `fgbench${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'fg-bench-kafka-'));
  readonly topics = { lines: `${this.id}.lines`, events: `${this.id}.events`, deadLetter: `${this.id}.dead` };
  /** The file the shipper follows; the bench appends to it. */
  readonly input = join(this.dir, 'mail.log');
  ship: Child | undefined;
  /** `floodgate detect` processes: one with both stages, or parse and detect apart. */
  readonly workers: Child[] = [];
  private readonly children: Child[] = [];

  constructor(
    readonly services: ServiceAddresses,
    readonly settings: DeploymentSettings,
    /** Extra node flags for the children (e.g. --cpu-prof). */
    private readonly nodeFlags: string[] = [],
  ) {
    writeFileSync(this.input, '');
  }

  private writeConfig(): string {
    const s = this.settings;
    const doc = {
      timezone: 'UTC',
      // The site of bench/phase.ts, so detectors judge the generated log alike.
      site: { localDomains: ['example.com'], outboundIps: ['198.51.100.10'] },
      inputs: [{ path: this.input }],
      kafka: {
        brokers: this.services.kafka,
        topics: this.topics,
        groupId: this.id,
        partitions: s.partitions,
        batchLines: s.batchLines,
        compression: s.compression,
        eventsCompression: s.eventsCompression,
        linesFetchWaitMs: s.linesFetchWaitMs,
      },
      clickhouse: { url: this.services.clickhouse, database: this.id, flushMs: s.flushMs, urgentFlushMs: s.urgentFlushMs, batchRows: s.batchRows },
      redis: { url: this.services.redis, keyPrefix: `${this.id}:`, snapshotIntervalMs: s.snapshotIntervalMs },
      ship: { statePath: join(this.dir, 'ship-state.json'), host: s.shipHost },
    };
    const path = join(this.dir, 'floodgate.yaml');
    writeFileSync(path, stringify(doc));
    return path;
  }

  private async spawnCli(name: string, args: string[], extraFlags: string[] = []): Promise<Child> {
    const metricsPort = await freePort();
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const proc = spawn(process.execPath, [...this.nodeFlags, ...extraFlags, CLI, ...args, '--metrics-listen', `127.0.0.1:${metricsPort}`], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const c = { name, proc, logFile, metricsPort, exited };
    this.children.push(c);
    return c;
  }

  /** Detect first (it creates the topics and the schema), then ship; both joined and running before this returns. */
  async start(timeoutMs = 120_000): Promise<void> {
    const config = this.writeConfig();
    const plan = this.settings.splitStages
      ? [
          { name: 'parse', stages: ['parse'] },
          { name: 'detect', stages: ['detect'] },
        ]
      : Array.from({ length: this.settings.detectWorkers ?? 1 }, (_, i) => ({ name: i === 0 ? 'detect' : `detect${i + 1}`, stages: ['parse', 'detect'] }));
    for (const w of plan) this.workers.push(await this.spawnCli(w.name, ['detect', '--config', config, '--worker-id', `bench-${w.name}`, '--stages', w.stages.join(',')], this.settings.workerNodeFlags));
    for (const [i, w] of plan.entries()) {
      const c = this.workers[i]!;
      await this.waitForLog(c, timeoutMs, (l) => l.msg === 'detect worker running');
      // A group's first join takes seconds; appending before it would bill that wait to the pipeline.
      for (const stage of w.stages) await this.waitForLog(c, timeoutMs, (l) => l.msg === 'partitions assigned' && l.stage === stage && Array.isArray(l.partitions) && l.partitions.length > 0);
      await this.waitForLog(c, timeoutMs, (l) => l.msg === 'metrics listening');
    }
    this.ship = await this.spawnCli('ship', ['ship', '--config', config, '--poll-ms', String(this.settings.shipPollMs)]);
    await this.waitForLog(this.ship, timeoutMs, (l) => l.msg === 'shipping');
    await this.waitForLog(this.ship, timeoutMs, (l) => l.msg === 'metrics listening');
  }

  /** Process ids by name (ship, detect, and parse when the stages run apart). */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries([this.ship, ...this.workers].filter((c): c is Child => c !== undefined).map((c) => [c.name, c.proc.pid]));
  }

  /** The detect processes' metrics, summed per sample. */
  async workerMetrics(): Promise<Map<string, number>> {
    const all = await Promise.all(this.workers.map((w) => this.metrics(w)));
    const out = new Map<string, number>();
    for (const m of all) for (const [k, v] of m) out.set(k, (out.get(k) ?? 0) + v);
    return out;
  }

  private async waitForLog(c: Child, timeoutMs: number, match: (l: Record<string, unknown>) => boolean): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      for (const line of readFileSync(c.logFile, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          if (match(JSON.parse(line) as Record<string, unknown>)) return;
        } catch {
          // a line being written
        }
      }
      this.assertRunning();
      if (Date.now() > until) throw new Error(`${c.name} did not get ready in ${timeoutMs / 1000} s\n${this.logs()}`);
      await sleep(100);
    }
  }

  /** Throws with the logs when a child has died. */
  assertRunning(): void {
    for (const c of this.children) {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) throw new Error(`floodgate ${c.name} exited (${c.proc.exitCode ?? c.proc.signalCode})\n${this.logs()}`);
    }
  }

  logs(): string {
    return this.children.map((c) => `--- ${c.name} (${c.logFile})\n${readFileSync(c.logFile, 'utf8').split('\n').slice(-30).join('\n')}`).join('\n');
  }

  /** The child's /metrics as `name{labels}` → value. */
  async metrics(c: Child): Promise<Map<string, number>> {
    // A reused keep-alive connection that the server closes as the request goes out fails with ECONNRESET;
    // a busy worker (event loop held for seconds by a big batch) makes that race likely: ask again.
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`, { signal: AbortSignal.timeout(60_000) });
        return parseMetrics(await res.text());
      } catch (e) {
        this.assertRunning();
        if (attempt >= 3) throw new Error(`floodgate ${c.name} /metrics: ${causeOf(e)}`);
      }
    }
  }

  /** Rows of a query in this deployment's database (JSONEachRow). */
  async query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    const res = await fetch(`${this.services.clickhouse}/?database=${encodeURIComponent(this.id)}`, { method: 'POST', body: `${sql} FORMAT JSONEachRow`, signal: AbortSignal.timeout(30_000) }).catch((e: unknown) => {
      throw new Error(`ClickHouse at ${this.services.clickhouse}: ${causeOf(e)}`);
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`ClickHouse: ${text.slice(0, 300)}`);
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as T);
  }

  async count(sql: string): Promise<number> {
    const rows = await this.query<{ n: string | number }>(sql);
    return Number(rows[0]?.n ?? 0);
  }

  /** SIGTERM (final checkpoint, CPU profiles written), SIGKILL after `graceMs`. */
  async stop(graceMs = 30_000): Promise<void> {
    const order = [this.ship, ...this.workers].filter((c): c is Child => c !== undefined);
    for (const c of order) {
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
      c.proc.kill('SIGTERM');
      const t = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
      await c.exited;
      clearTimeout(t);
    }
  }

  /** Drop the database, topics and Redis keys, and the temp folder (best effort). */
  async remove(): Promise<void> {
    await removeDeployment(this.services, this.id, 'floodgate-bench');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** fetch() says only "fetch failed"; the reason (ECONNREFUSED, timeout) is in its cause. */
function causeOf(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
}

/** Prometheus text → `name{labels}` (as written) → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Sum of the samples of one metric family (all label sets). */
export function metricSum(m: Map<string, number>, name: string): number {
  let s = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
}
