/**
 * `floodgate api --config F`: the HTTP API of standalone mode (same routes,
 * tokens, OpenAPI document), served from the distributed mode's stores:
 * findings, messages, decisions and actions from ClickHouse, the lock state
 * the detect workers share from Redis. Lock/unlock run the actuator for real
 * (an operator's explicit request), record the action in ClickHouse, and
 * mark the account in Redis so no worker locks it again (or, after an
 * unlock, so workers may act on it again).
 *
 * Stateless: run several behind a load balancer. Migrations run at start
 * (idempotent; the detect workers run them too), waiting for ClickHouse up
 * to --wait-ms, as in a compose stack where the API may start first.
 */
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { Actuator, HOLD_LOOKBACK_MS, type ActionRecord, type ActuatorOptions } from '../actions/index.js';
import type { MetricFamily } from '../api/metrics.js';
import { renderMetrics } from '../api/metrics.js';
import { buildApi, type ApiToken } from '../api/server.js';
import { createClickhouseClient, type ChClient } from '../clickhouse/client.js';
import { migrate, type MigrateResult } from '../clickhouse/migrations.js';
import { ClickhouseQueries } from '../clickhouse/queries.js';
import { actionRow } from '../clickhouse/rows.js';
import { ClickhouseSink, flushWithin } from '../clickhouse/sink.js';
import { loadConfig, type FloodgateConfig } from '../config/config.js';
import { FloodgateError } from '../core/errors.js';
import { createLogger, type Logger } from '../distributed/log.js';
import { connectRedis, redisHealth } from '../redis/connection.js';
import { SharedLockState } from '../redis/locks.js';
import { intArg, usageError } from './args.js';
import { parseHostPort } from './listen-arg.js';
import { resolveTokens } from './run-command.js';

export const apiHelp = `Usage: floodgate api --config F [options]

Serve floodgate's HTTP API from ClickHouse and Redis (distributed mode):
findings, accounts (findings, messages, decisions, actions, lock state),
lock/unlock (act tokens; recorded in ClickHouse, shared with the detect
workers through Redis), /metrics, /health (ClickHouse and Redis
reachability; 503 when one is down) and /openapi.json. Tokens, routes and
answers are those of 'floodgate run'. Migrates the ClickHouse schema at start.

Options:
  --config F          floodgate.yaml (clickhouse, redis, api, actions sections)
  --listen HOST:PORT  API address (default: api.listen; port 0 picks one)
  --wait-ms N         how long to wait for ClickHouse at start (default 60000)
  --verbose           debug logs too
  -h, --help

Logs: JSON lines on stderr (pino). SIGTERM/SIGINT: stop taking requests,
store the action records still buffered, exit 0.`;

export interface DistributedApiOptions {
  cfg: FloodgateConfig;
  tokens: readonly ApiToken[];
  clickhouse: ChClient;
  redis: Redis;
  log: Logger;
  /** Test seams for the actuator (a recording zmprov, a clock). */
  actuator?: Partial<Omit<ActuatorOptions, 'audit' | 'config'>>;
  /** How long a lock/unlock waits for its action record to reach ClickHouse before answering anyway (default 5000 ms). */
  auditWaitMs?: number;
}

export interface DistributedApi {
  app: ReturnType<typeof buildApi>;
  sink: ClickhouseSink;
  locks: SharedLockState;
  metricFamilies(): MetricFamily[];
  /** Close the HTTP side, then store buffered action records. */
  close(): Promise<void>;
}

export function createDistributedApi(o: DistributedApiOptions): DistributedApi {
  const { cfg, log } = o;
  const queries = new ClickhouseQueries(o.clickhouse);
  const locks = new SharedLockState(o.redis, cfg.redis.keyPrefix);
  const sink = new ClickhouseSink(o.clickhouse, {
    batchRows: cfg.clickhouse.batchRows,
    flushMs: Math.min(cfg.clickhouse.flushMs, 200), // operators' actions are few: do not let them wait for a batch
    maxBufferedRows: cfg.clickhouse.maxBufferedRows,
    log: (level, msg, fields) => log[level]({ component: 'clickhouse', ...fields }, msg),
  });
  const actions = new Map<string, number>();
  const auditWaitMs = o.auditWaitMs ?? 5000;

  const actuator = new Actuator({
    ...o.actuator,
    config: { ...cfg.actions, dryRun: false }, // an operator's explicit request runs for real
    audit: async (rec: ActionRecord) => {
      const k = `${rec.action}|${rec.ok}`;
      actions.set(k, (actions.get(k) ?? 0) + 1);
      log.info({ action: rec.action, ok: rec.ok, by: rec.by, ...(rec.error ? { code: rec.error.code } : {}) }, 'api action');
      sink.add('actions', [actionRow(rec)]);
      // The record is durable in ClickHouse before the answer, unless ClickHouse is down:
      // then it stays buffered (retried) and the operator still gets the outcome.
      if (!(await flushWithin(sink, auditWaitMs))) log.warn({ action: rec.action }, 'action record not yet stored in ClickHouse; kept buffered and retried');
    },
    log: (level, msg, fields) => log[level]({ component: 'actions', ...fields }, msg),
  });

  const metricFamilies = (): MetricFamily[] => [
    ...sink.metricFamilies(),
    {
      name: 'floodgate_api_actions_total',
      help: 'Actions run through the API, by kind and outcome.',
      type: 'counter',
      samples: [...actions].map(([k, value]) => {
        const [kind, ok] = k.split('|') as [string, string];
        return { labels: { kind, ok }, value };
      }),
    },
  ];

  const startedAt = Date.now();
  const app = buildApi({
    store: queries,
    tokens: o.tokens,
    actuator,
    hold: { onLock: cfg.policy.holdOnLock, queuedMailOf: (a) => queries.queuedMailOf(a, Date.now() - HOLD_LOOKBACK_MS) },
    policy: {
      isLocked: (a) => locks.isLocked(a),
      lockedByOperator: (a) => locks.lockedByOperator(a),
      unlocked: (a) => locks.unlocked(a),
    },
    metrics: () => renderMetrics(metricFamilies()),
    uptime: () => (Date.now() - startedAt) / 1000,
    services: async () => {
      const [ch, rd] = await Promise.all([queries.health(), redisHealth(o.redis)]);
      const st = sink.status();
      return {
        clickhouse: { ...ch, bufferedRows: st.buffered, ...(st.lastError ? { lastError: st.lastError } : {}) },
        redis: rd.ok ? { reachable: true, latencyMs: rd.latencyMs } : { reachable: false, error: rd.error },
      };
    },
  });

  return {
    app,
    sink,
    locks,
    metricFamilies,
    async close() {
      await app.close();
      if (!(await flushWithin(sink, auditWaitMs))) log.warn({ buffered: sink.buffered }, 'ClickHouse unreachable at exit: buffered action records are lost');
      sink.stop();
    },
  };
}

/** Migrations, retried while ClickHouse is not there yet (a stack starting up). */
async function migrateWhenReachable(client: ChClient, cfg: FloodgateConfig, waitMs: number, log: Logger): Promise<MigrateResult> {
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrate(client, cfg.clickhouse, { log: (msg, fields) => log.info({ component: 'clickhouse', ...fields }, msg) });
    } catch (e) {
      const unavailable = e instanceof FloodgateError && e.code === 'FG_CLICKHOUSE_UNAVAILABLE';
      if (!unavailable || Date.now() >= deadline) throw e;
      log.warn({ attempt, error: (e as Error).message }, 'ClickHouse not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
    }
  }
}

export async function apiCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      listen: { type: 'string' },
      'wait-ms': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(apiHelp + '\n');
    return 0;
  }
  if (positionals.length > 0) throw usageError(`api takes no file arguments, got '${positionals[0]}'`);
  if (values.config === undefined) throw usageError('api needs --config F (see floodgate api --help)');
  const cfg = loadConfig(values.config);
  const listen = parseHostPort('--listen', values.listen ?? cfg.api.listen);
  const waitMs = intArg('wait-ms', values['wait-ms'], 0, 3_600_000) ?? 60_000;
  const tokens = resolveTokens(cfg);
  const log = createLogger('floodgate-api', values.verbose ? 'debug' : 'info');

  const clickhouse = createClickhouseClient(cfg.clickhouse);
  const redis = connectRedis(cfg.redis, { logger: log, connectionName: 'floodgate-api' });
  let api: DistributedApi | undefined;
  try {
    const m = await migrateWhenReachable(clickhouse, cfg, waitMs, log);
    log.info({ clickhouse: m.server.text, schema: m.version, applied: m.applied }, 'clickhouse ready');
    api = createDistributedApi({ cfg, tokens, clickhouse, redis, log });
    const address = await api.app.listen({ host: listen.host, port: listen.port });
    log.info({ address, tokens: tokens.length }, 'api listening');
  } catch (e) {
    await api?.close().catch(() => undefined);
    redis.disconnect();
    await clickhouse.close().catch(() => undefined);
    log.flush();
    throw e;
  }

  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  log.info('stopping');
  await api.close();
  redis.disconnect();
  await clickhouse.close();
  log.flush();
  return 0;
}
