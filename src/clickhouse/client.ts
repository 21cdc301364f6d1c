/**
 * floodgate's ClickHouse connection, over @clickhouse/client (HTTP).
 *
 * Tested against 18.16 (Debian's server, the CI's) and written for current
 * ClickHouse too. What the library does on 18.16:
 * - ping, SELECT with FORMAT JSONEachRow, DDL, JSONEachRow inserts and
 *   TabSeparated inserts with a column list work, with basic auth (also for
 *   a password full of quotes and backslashes);
 * - `query_params` do not: 18.16 answers `Unknown setting param_x` (code
 *   115), so this wrapper offers none and read queries inline their values
 *   through escape.ts;
 * - its error parser expects the newer `Code: N. DB::Exception` text, so on
 *   18.16 errors arrive without a code: `classify()` reads the code from
 *   either wording (and from the X-ClickHouse-Exception-Code header);
 * - its default logger prints failed requests to the console: it is off.
 *
 * Every statement names its tables as `db`.`table`, and no `database` is
 * set on the connection: the database does not exist before the first
 * migration, and ClickHouse refuses a request whose database is missing.
 *
 * The password comes from the environment variable `passwordEnv` names; it
 * is handed to the library and never logged or put in an error message.
 */
import { Readable } from 'node:stream';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { ClickhouseConfig } from '../config/distributed.js';
import { FloodgateError } from '../core/errors.js';
import { sqlIdentifier, sqlTable } from './escape.js';
import { tabSeparated, TsvRows } from './tsv.js';

/** What an insert takes: row objects, or rows already encoded (the parse stage's events). */
export type InsertRows = readonly object[] | TsvRows;

export interface ServerVersion {
  text: string;
  major: number;
  minor: number;
  patch: number;
}

/** Schema features that depend on the server's version; the schema never requires them. */
export interface Features {
  /** Table TTL (`TTL ts + INTERVAL n DAY`): 19.6. */
  ttl: boolean;
  /** LowCardinality(String) without an experimental setting: stable well before 19.9. */
  lowCardinality: boolean;
}

export function parseVersion(text: string): ServerVersion {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) throw new FloodgateError('FG_CLICKHOUSE_FAILED', `cannot read the ClickHouse version '${text.slice(0, 40)}'`);
  return { text: text.trim(), major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

export function atLeast(v: ServerVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

export function featuresOf(v: ServerVersion): Features {
  return { ttl: atLeast(v, 19, 6), lowCardinality: atLeast(v, 19, 9) };
}

/**
 * What went wrong, for the caller's next move:
 * - `connection`: not reached, timed out, overloaded, refused the login: retry later;
 * - `data`: the server could not read a row of the body: retrying the same rows fails again;
 * - `query`: any other refusal (unknown table, syntax): a bug or a missing migration.
 */
export type FailureKind = 'connection' | 'data' | 'query';

export class ClickhouseError extends FloodgateError {
  constructor(
    readonly kind: FailureKind,
    /** ClickHouse's exception code, when it sent one. */
    readonly serverCode: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(kind === 'connection' ? 'FG_CLICKHOUSE_UNAVAILABLE' : 'FG_CLICKHOUSE_FAILED', message, options);
    this.name = 'ClickhouseError';
  }
}

/**
 * Exception codes that mean "this input cannot be read as these columns":
 * parse failures, type mismatches, out-of-range values, unknown JSON keys.
 */
const dataErrorCodes = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  32, // ATTEMPT_TO_READ_AFTER_EOF
  33, // CANNOT_READ_ALL_DATA
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA (unknown JSONEachRow field)
  130, // CANNOT_READ_ARRAY_FROM_TEXT
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
]);

/** Codes of a server that is there but cannot take the request now, or refused who we are. */
const connectionErrorCodes = new Set([
  159, // TIMEOUT_EXCEEDED
  164, // READONLY
  192, // UNKNOWN_USER
  193, // WRONG_PASSWORD
  194, // REQUIRED_PASSWORD
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  241, // MEMORY_LIMIT_EXCEEDED
  252, // TOO_MANY_PARTS
  516, // AUTHENTICATION_FAILED
]);

const networkErrnos = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** ClickHouse's text of an exception, first line, without the `e.what()` tail of 18.x. */
function serverMessage(text: string): string {
  return text
    .split('\n')[0]!
    .replace(/^Code: \d+[.,]\s*/, '')
    .replace(/^e\.displayText\(\) = /, '')
    .replace(/^DB::Exception: /, '')
    .replace(/, e\.what\(\) = .*$/, '')
    .slice(0, 1000);
}

/** Turns whatever the library threw into a ClickhouseError with a kind. */
export function classify(err: unknown, what: string): ClickhouseError {
  if (err instanceof ClickhouseError) return err;
  const e = err as { message?: unknown; code?: unknown; errno?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const errno = typeof e?.code === 'string' && !/^\d+$/.test(e.code) ? e.code : undefined;
  if (errno !== undefined && networkErrnos.has(errno)) {
    return new ClickhouseError('connection', undefined, `${what}: ClickHouse not reachable (${errno})`, { cause: err });
  }
  const m = /Code: (\d+)[.,]/.exec(message);
  const code = m ? Number(m[1]) : typeof e?.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : undefined;
  if (code === undefined) {
    // Timeouts, sockets closed mid-response and the like: the server may be back soon.
    return new ClickhouseError('connection', undefined, `${what}: ${message.slice(0, 300)}`, { cause: err });
  }
  const kind: FailureKind = dataErrorCodes.has(code) ? 'data' : connectionErrorCodes.has(code) ? 'connection' : 'query';
  return new ClickhouseError(kind, code, `${what}: ClickHouse error ${code}: ${serverMessage(message)}`, { cause: err });
}

export interface ChClient {
  readonly database: string;
  /** A statement without a result (DDL). */
  command(sql: string): Promise<void>;
  /** A SELECT; rows as JSON objects (64-bit integers arrive as strings). */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Rows into `database`.`table`: TabSeparated when they are flat or come encoded (tsv.ts), else JSONEachRow. */
  insert(table: string, rows: InsertRows): Promise<void>;
  ping(): Promise<boolean>;
  serverVersion(): Promise<ServerVersion>;
  close(): Promise<void>;
}

export interface ClientOptions {
  /** Environment to read the password from (default process.env). */
  env?: NodeJS.ProcessEnv;
  requestTimeoutMs?: number;
}

function password(cfg: ClickhouseConfig, env: NodeJS.ProcessEnv): string | undefined {
  if (cfg.passwordEnv === undefined) return undefined;
  const v = env[cfg.passwordEnv];
  if (v === undefined) throw new FloodgateError('FG_CONFIG_INVALID', `clickhouse.passwordEnv: the environment variable ${cfg.passwordEnv} is not set`);
  return v;
}

export function createClickhouseClient(cfg: ClickhouseConfig, opts: ClientOptions = {}): ChClient {
  const pw = password(cfg, opts.env ?? process.env);
  const client: ClickHouseClient = createClient({
    url: cfg.url,
    username: cfg.username,
    ...(pw !== undefined ? { password: pw } : {}),
    request_timeout: opts.requestTimeoutMs ?? 30_000,
    application: 'floodgate',
    log: { level: ClickHouseLogLevel.OFF },
  });
  let version: ServerVersion | undefined;

  return {
    database: cfg.database,
    async command(sql) {
      try {
        await client.command({ query: sql });
      } catch (e) {
        throw classify(e, 'command');
      }
    },
    async query<T>(sql: string): Promise<T[]> {
      try {
        const rs = await client.query({ query: sql, format: 'JSONEachRow' });
        return await rs.json<T>();
      } catch (e) {
        throw classify(e, 'query');
      }
    },
    async insert(table, rows) {
      if (rows.length === 0) return;
      try {
        if (rows instanceof TsvRows) {
          await client.insert({ table: sqlTable(cfg.database, table), values: Readable.from([rows.body()], { objectMode: false }), format: 'TabSeparated', columns: rows.columns.map(sqlIdentifier) as [string, ...string[]] });
          return;
        }
        const tsv = tabSeparated(rows);
        if (tsv === undefined) await client.insert({ table: sqlTable(cfg.database, table), values: rows as object[], format: 'JSONEachRow' });
        else {
          const values = Readable.from([Buffer.from(tsv.body, 'utf8')], { objectMode: false });
          await client.insert({ table: sqlTable(cfg.database, table), values, format: 'TabSeparated', columns: tsv.columns.map(sqlIdentifier) as [string, ...string[]] });
        }
      } catch (e) {
        throw classify(e, `insert into ${table}`);
      }
    },
    async ping() {
      const r = await client.ping();
      return r.success;
    },
    async serverVersion() {
      if (version === undefined) {
        const rows = await this.query<{ v: string }>('SELECT version() AS v');
        version = parseVersion(rows[0]?.v ?? '');
      }
      return version;
    },
    async close() {
      await client.close();
    },
  };
}
