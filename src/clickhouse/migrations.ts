/**
 * floodgate's ClickHouse schema, as forward-only versioned migrations run by
 * every process at start (`migrate`). Applied versions are recorded in
 * `schema_migrations`.
 *
 * Several workers start at once, and ClickHouse has no transactions nor
 * locks for DDL: instead every statement is idempotent (IF NOT EXISTS) and
 * a migration is recorded only after all its statements succeeded, so two
 * workers running the same migration both end with the same tables and the
 * same record (a ReplacingMergeTree keyed by version: two records of one
 * version are one). A statement that fails because a racing worker is
 * creating the same table right now is retried, and then finds it there.
 *
 * The statements depend on the server's version (features.ts gates): the
 * same migration yields a TTL and LowCardinality columns on a current server
 * and plain columns on 18.16. Nothing here requires a newer feature.
 *
 * Idempotent sinks: the distributed consumer is at-least-once, so a row can
 * be inserted twice. Row tables are ReplacingMergeTree whose sorting key ends
 * with the deterministic id and otherwise holds only columns the id fixes
 * (so copies share the whole key and collapse); readers use FINAL or GROUP BY
 * id until merges have run. The per-minute aggregates count distinct ids
 * (uniqExact / uniq states), so a replayed insert adds nothing.
 */
import type { ClickhouseConfig } from '../config/distributed.js';
import { FloodgateError } from '../core/errors.js';
import { ClickhouseError, featuresOf, type ChClient, type Features, type ServerVersion } from './client.js';
import { sqlIdentifier, sqlInt, sqlTable } from './escape.js';

export interface SchemaContext {
  database: string;
  features: Features;
  retentionDays: number;
}

export interface Migration {
  version: number;
  name: string;
  statements(ctx: SchemaContext): string[];
}

/** Helpers that write the version-dependent bits of DDL. */
function ddl(ctx: SchemaContext) {
  const t = (name: string) => sqlTable(ctx.database, name);
  return {
    t,
    /** A string column with few distinct values (hosts, kinds, detectors). */
    lc: ctx.features.lowCardinality ? 'LowCardinality(String)' : 'String',
    /** Rows older than retentionDays go, where the server can (19.6+); elsewhere they stay. */
    ttl: (column: string) => (ctx.features.ttl ? ` TTL ${column} + INTERVAL ${sqlInt(ctx.retentionDays)} DAY` : ''),
  };
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'events, messages, findings, decisions, actions, dead letters, per-minute aggregates',
    statements(ctx) {
      const { t, lc, ttl } = ddl(ctx);
      return [
        `CREATE TABLE IF NOT EXISTS ${t('events')} (
          id String, ts DateTime, ts_ms UInt64, host ${lc}, program ${lc}, kind ${lc},
          account String, ip String, file ${lc}, \`offset\` UInt64, json String
        ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (host, ts, id)${ttl('ts')}`,

        // A message may be stored twice with more of its story the second time:
        // the version (last_ts_ms) keeps the latest.
        `CREATE TABLE IF NOT EXISTS ${t('messages')} (
          id String, host ${lc}, queue_id String, first_ts DateTime, first_ts_ms UInt64,
          last_ts DateTime, last_ts_ms UInt64, sasl_user String, client_ip String, sender String,
          rcpt_count UInt32, rcpt_addresses Array(String), rcpt_status Array(String), json String
        ) ENGINE = ReplacingMergeTree(last_ts_ms) PARTITION BY toYYYYMM(first_ts) ORDER BY (host, first_ts, id)${ttl('first_ts')}`,

        `CREATE TABLE IF NOT EXISTS ${t('findings')} (
          id String, ts DateTime, ts_ms UInt64, detector ${lc}, entity_kind ${lc}, entity_id String,
          severity ${lc}, score Float64, signals Array(String), summary String,
          window String, evidence String, account String, ip String, json String
        ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, id)${ttl('ts')}`,

        `CREATE TABLE IF NOT EXISTS ${t('decisions')} (
          id String, ts DateTime, ts_ms UInt64, entity String, account String, action ${lc},
          hold UInt8, dry_run UInt8, score Float64, reasons Array(String), detectors Array(String),
          signals Array(String), json String
        ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, id)${ttl('ts')}`,

        `CREATE TABLE IF NOT EXISTS ${t('actions')} (
          id String, ts DateTime, ts_ms UInt64, action ${lc}, account String, ok UInt8, dry_run UInt8,
          changed UInt8, backend ${lc}, detail String, command Array(String), by String,
          reason Array(String), error_code ${lc}, json String
        ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, id)${ttl('ts')}`,

        // Rows ClickHouse refused as malformed, kept as text with the refusal.
        `CREATE TABLE IF NOT EXISTS ${t('dead_letters')} (
          id String, ts DateTime, ts_ms UInt64, table_name ${lc}, error String, row String
        ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY id${ttl('ts')}`,

        `CREATE TABLE IF NOT EXISTS ${t('messages_per_minute')} (
          minute DateTime, account String, host ${lc},
          messages AggregateFunction(uniqExact, String),
          recipients AggregateFunction(uniqExactArray, Array(String))
        ) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(minute) ORDER BY (minute, account, host)${ttl('minute')}`,
        // A recipient is (message id, its index): the same message stored twice adds none.
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${t('messages_per_minute_mv')} TO ${t('messages_per_minute')} AS
          SELECT toStartOfMinute(first_ts) AS minute, sasl_user AS account, host,
            uniqExactState(id) AS messages,
            uniqExactArrayState(arrayMap(i -> concat(id, ':', toString(i)), arrayEnumerate(rcpt_addresses))) AS recipients
          FROM ${t('messages')} GROUP BY minute, account, host`,

        `CREATE TABLE IF NOT EXISTS ${t('findings_per_minute')} (
          minute DateTime, detector ${lc}, severity ${lc}, findings AggregateFunction(uniqExact, String)
        ) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(minute) ORDER BY (minute, detector, severity)${ttl('minute')}`,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${t('findings_per_minute_mv')} TO ${t('findings_per_minute')} AS
          SELECT toStartOfMinute(ts) AS minute, detector, severity, uniqExactState(id) AS findings
          FROM ${t('findings')} GROUP BY minute, detector, severity`,

        // Events are many: uniq (exact up to tens of thousands per cell, then a
        // close estimate) keeps the state small; it is still a set of ids, so
        // replays do not count twice.
        `CREATE TABLE IF NOT EXISTS ${t('events_per_minute')} (
          minute DateTime, host ${lc}, kind ${lc}, events AggregateFunction(uniq, String)
        ) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(minute) ORDER BY (minute, host, kind)${ttl('minute')}`,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${t('events_per_minute_mv')} TO ${t('events_per_minute')} AS
          SELECT toStartOfMinute(ts) AS minute, host, kind, uniqState(id) AS events
          FROM ${t('events')} GROUP BY minute, host, kind`,
      ];
    },
  },
];

export const latestVersion = migrations.reduce((m, x) => Math.max(m, x.version), 0);

export interface MigrateResult {
  server: ServerVersion;
  features: Features;
  /** Versions this call applied (another worker may have applied the rest). */
  applied: number[];
  /** Highest version recorded after the run. */
  version: number;
}

export interface MigrateOptions {
  /** Attempts per statement racing another worker (default 5). */
  attempts?: number;
  sleep?: (ms: number) => Promise<void>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A statement of a migration: retried when it failed as a query (e.g.
 * "table is being created right now" from a concurrent worker), since
 * IF NOT EXISTS then finds the other worker's table.
 */
async function runStatement(client: ChClient, sql: string, o: Required<Pick<MigrateOptions, 'attempts' | 'sleep'>> & Pick<MigrateOptions, 'log'>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.command(sql);
      return;
    } catch (e) {
      const retryable = e instanceof ClickhouseError && e.kind === 'query';
      if (!retryable || attempt >= o.attempts) throw e;
      o.log?.('clickhouse DDL failed, probably racing another worker; retrying', { attempt, code: e.serverCode });
      await o.sleep(50 * attempt + Math.floor(Math.random() * 50));
    }
  }
}

export async function appliedVersions(client: ChClient, database: string): Promise<number[]> {
  const rows = await client.query<{ version: number | string }>(`SELECT DISTINCT version FROM ${sqlTable(database, 'schema_migrations')} ORDER BY version`);
  return rows.map((r) => Number(r.version));
}

export async function migrate(client: ChClient, cfg: Pick<ClickhouseConfig, 'retentionDays'>, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const database = client.database;
  const o = { attempts: opts.attempts ?? 5, sleep: opts.sleep ?? defaultSleep, log: opts.log };
  const server = await client.serverVersion();
  const features = featuresOf(server);
  const ctx: SchemaContext = { database, features, retentionDays: cfg.retentionDays };

  await runStatement(client, `CREATE DATABASE IF NOT EXISTS ${sqlIdentifier(database)}`, o);
  await runStatement(
    client,
    `CREATE TABLE IF NOT EXISTS ${sqlTable(database, 'schema_migrations')} (version UInt32, name String, applied_at DateTime, server_version String) ENGINE = ReplacingMergeTree ORDER BY version`,
    o,
  );
  const done = new Set(await appliedVersions(client, database));
  const newest = Math.max(0, ...done);
  if (newest > latestVersion) {
    // A newer floodgate migrated already: its changes are additive, so reading and writing the known tables still works.
    opts.log?.('clickhouse schema is newer than this floodgate', { version: newest, known: latestVersion });
  }
  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    for (const sql of m.statements(ctx)) await runStatement(client, sql, o);
    await client.insert('schema_migrations', [{ version: m.version, name: m.name, applied_at: Math.floor(Date.now() / 1000), server_version: server.text }]);
    applied.push(m.version);
    opts.log?.('clickhouse migration applied', { version: m.version, name: m.name });
  }
  const version = Math.max(0, ...(await appliedVersions(client, database)));
  if (version < latestVersion) throw new FloodgateError('FG_CLICKHOUSE_FAILED', `schema is at version ${version} after migrating, expected ${latestVersion}`);
  return { server, features, applied, version };
}

/** For tests and docs: the DDL a server of this version gets. */
export function schemaStatements(database: string, features: Features, retentionDays: number): string[] {
  const ctx = { database, features, retentionDays };
  return migrations.flatMap((m) => m.statements(ctx));
}
