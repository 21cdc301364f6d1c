/**
 * ClickhouseSink: the write side. Rows are added per table, inserted in
 * batches (batchRows, or what waited flushMs), and never dropped:
 *
 * - ClickHouse down, overloaded or refusing the login: the batch is retried
 *   with exponential backoff and jitter until it is stored. Rows keep
 *   arriving meanwhile; `buffered` counts what is not stored yet and
 *   `whenRoom()` lets the consumer pause while it is at maxBufferedRows.
 * - A row the server cannot read (a data error, not a connection one):
 *   retrying it would stall the table forever, so the batch is split in
 *   halves until the bad row is alone; its neighbours are stored, and the
 *   row is dead-lettered: counted, kept in memory (the last few) and stored
 *   as text with the error in `dead_letters`.
 *
 * `flush()` resolves once every row added before it is stored (or
 * dead-lettered): the Kafka consumer commits its offsets after it, which
 * makes the pipeline at-least-once; duplicates after a crash collapse in the
 * tables (see migrations.ts).
 *
 * One insert at a time per table keeps each table's rows in order and lets
 * tables proceed independently.
 */
import { Sleepers } from '../core/sleepers.js';
import type { MetricFamily } from '../api/metrics.js';
import { classify, type ChClient, type ClickhouseError, type InsertRows } from './client.js';
import { TsvRows } from './tsv.js';
import { deadLetterRow } from './rows.js';

export interface SinkOptions {
  batchRows: number;
  /** Longest a partial batch waits, for tables not named in tableFlushMs. */
  flushMs: number;
  /**
   * Per table, its own wait: findings, decisions and actions are few and
   * what an operator waits for, so they go at once, small; events and
   * messages are most rows and wait longer in bigger inserts (each insert is
   * a new part per table and materialized view on the server: fewer, bigger
   * ones cost ClickHouse less).
   */
  tableFlushMs?: Readonly<Record<string, number>>;
  maxBufferedRows: number;
  /** First retry delay; doubles per attempt up to retryMaxMs (default 200 / 30 000 ms). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Store dead letters in the `dead_letters` table too (default true). */
  deadLetterTable?: boolean;
  /** How many dead letters to keep in memory for inspection (default 100). */
  keepDeadLetters?: number;
  random?: () => number;
  now?: () => number;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface DeadLetter {
  table: string;
  row: unknown;
  error: string;
  code: number | undefined;
  ts: number;
}

export interface SinkStatus {
  buffered: number;
  deadLettered: number;
  lastError?: { kind: string; code?: number; message: string; ts: number };
}

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface TableQueue {
  rows: object[];
  /** Rows added already encoded (see TsvRows), stored before the objects; they may come together (see add). */
  encoded: TsvRows | undefined;
  /** The emptied buffer of the last insert that took `encoded` whole, reused as the next `encoded`. */
  spare: TsvRows | undefined;
  /** This table's flush delay (SinkOptions.tableFlushMs, else flushMs). */
  flushMs: number;
  /** Rows ever added / stored (or dead-lettered); flush targets compare these. */
  added: number;
  done: number;
  writing: boolean;
  /** A partial batch may go: it waited flushMs, or a flush asked. */
  due: boolean;
  /** When the first row added while an insert ran arrived: its wait counts from then. */
  waitingSince: number | undefined;
  timer: NodeJS.Timeout | undefined;
  waiters: Waiter[];
}

interface TableCounters {
  rows: number;
  batches: number;
  maxBatch: number;
  retries: number;
  failures: { connection: number; data: number; query: number };
  deadLettered: number;
  insertSeconds: number;
}

/** Rows of a table not yet stored nor being stored. */
function pending(q: TableQueue): number {
  return q.rows.length + (q.encoded?.length ?? 0);
}

export class SinkStoppedError extends Error {
  constructor() {
    super('ClickHouse sink stopped before the rows were stored');
    this.name = 'SinkStoppedError';
  }
}

/** ClickHouse quotes the input around a parse error; that is row data, kept out of status and logs. */
function redact(message: string): string {
  return message.replace(/(before|after|value|field found while parsing JSONEachRow format):.*$/s, '$1: …');
}

export class ClickhouseSink {
  private readonly queues = new Map<string, TableQueue>();
  private readonly counters = new Map<string, TableCounters>();
  private readonly roomWaiters: (() => void)[] = [];
  private readonly recentDeadLetters: DeadLetter[] = [];
  private readonly o: Required<Omit<SinkOptions, 'log' | 'tableFlushMs'>> & Pick<SinkOptions, 'log' | 'tableFlushMs'>;
  private bufferedRows = 0;
  private deadLetteredRows = 0;
  private lastErr: SinkStatus['lastError'];
  private stopped = false;
  private readonly sleepers = new Sleepers();
  /** Inserts in their retry loop (ClickHouse unreachable or refusing the query). */
  private retryingStores = 0;

  constructor(
    private readonly client: ChClient,
    opts: SinkOptions,
  ) {
    this.o = {
      retryBaseMs: 200,
      retryMaxMs: 30_000,
      deadLetterTable: true,
      keepDeadLetters: 100,
      random: Math.random,
      now: Date.now,
      ...opts,
    };
  }

  /** Rows not stored yet (queued or being inserted). */
  get buffered(): number {
    return this.bufferedRows;
  }

  /** True while an insert is being retried: a flush() now lasts until ClickHouse takes it. */
  get retrying(): boolean {
    return this.retryingStores > 0;
  }

  /**
   * Queue rows for `table` (encoded ones are copied). Never refuses: callers
   * that must bound memory await whenRoom() first. A table may get both
   * kinds (the detect stage's row objects from a parse stage of an older
   * version, encoded rows from this one's): each kind goes in its own
   * inserts; the tables are idempotent, so the order between them does not
   * matter.
   */
  add(table: string, rows: InsertRows): void {
    if (this.stopped) throw new SinkStoppedError();
    if (rows.length === 0) return;
    const q = this.queue(table);
    if (rows instanceof TsvRows) (q.encoded ??= new TsvRows(rows.columns)).append(rows);
    else for (const r of rows) q.rows.push(r);
    q.added += rows.length;
    this.bufferedRows += rows.length;
    if (q.writing && q.waitingSince === undefined) q.waitingSince = this.o.now();
    if (pending(q) >= this.o.batchRows) this.kick(table, q);
    else this.arm(table, q);
  }

  /** Resolves when fewer than maxBufferedRows rows wait (at once if so already). */
  whenRoom(): Promise<void> {
    if (this.bufferedRows < this.o.maxBufferedRows || this.stopped) return Promise.resolve();
    // Full: what waits for its table's flushMs goes now. Else a consumer held here waits out flushMs each
    // time, and with batchRows above maxBufferedRows (a small buffer kept with the default batch) always.
    for (const [table, q] of this.queues) {
      if (pending(q) > 0 && !q.writing) {
        q.due = true;
        this.kick(table, q);
      }
    }
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Resolves when every row added before this call is stored or dead-lettered. */
  async flush(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const [table, q] of this.queues) {
      if (q.done >= q.added) continue;
      const target = q.added;
      waits.push(new Promise<void>((resolve, reject) => q.waiters.push({ target, resolve, reject })));
      q.due = true;
      this.kick(table, q);
    }
    await Promise.all(waits);
  }

  /** Flush, then stop the timers. */
  async close(): Promise<void> {
    await this.flush();
    this.stop();
  }

  /**
   * Give up: retries end, pending flushes reject with SinkStoppedError and
   * unstored rows are abandoned (they were not acknowledged, so the consumer
   * will see them again from Kafka).
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = undefined;
      for (const w of q.waiters.splice(0)) w.reject(new SinkStoppedError());
    }
    this.sleepers.wakeAll();
    for (const r of this.roomWaiters.splice(0)) r();
  }

  status(): SinkStatus {
    return { buffered: this.bufferedRows, deadLettered: this.deadLetteredRows, ...(this.lastErr ? { lastError: this.lastErr } : {}) };
  }

  /** The last dead letters (at most keepDeadLetters), oldest first. */
  deadLetters(): readonly DeadLetter[] {
    return this.recentDeadLetters;
  }

  // ---- writing ----

  private queue(table: string): TableQueue {
    let q = this.queues.get(table);
    if (!q) {
      q = { rows: [], encoded: undefined, spare: undefined, flushMs: this.o.tableFlushMs?.[table] ?? this.o.flushMs, added: 0, done: 0, writing: false, due: false, waitingSince: undefined, timer: undefined, waiters: [] };
      this.queues.set(table, q);
    }
    return q;
  }

  private tableCounters(table: string): TableCounters {
    let c = this.counters.get(table);
    if (!c) {
      c = { rows: 0, batches: 0, maxBatch: 0, retries: 0, failures: { connection: 0, data: 0, query: 0 }, deadLettered: 0, insertSeconds: 0 };
      this.counters.set(table, c);
    }
    return c;
  }

  /** A partial batch goes after its table's flushMs (0: once the caller's synchronous work is done), counted from `since`. */
  private arm(table: string, q: TableQueue, since?: number): void {
    if (q.timer || q.writing || this.stopped) return;
    const delay = since === undefined ? q.flushMs : Math.max(0, q.flushMs - (this.o.now() - since));
    q.timer = setTimeout(() => {
      q.timer = undefined;
      q.due = true;
      this.kick(table, q);
    }, delay);
    q.timer.unref();
  }

  private kick(table: string, q: TableQueue): void {
    if (q.writing || this.stopped) return;
    if (q.timer) {
      clearTimeout(q.timer);
      q.timer = undefined;
    }
    q.writing = true;
    void this.drain(table, q);
  }

  private async drain(table: string, q: TableQueue): Promise<void> {
    try {
      while (!this.stopped && pending(q) > 0 && (q.due || pending(q) >= this.o.batchRows)) {
        const enc = q.encoded !== undefined && q.encoded.length > 0 ? q.encoded : undefined;
        const waitedBefore = pending(q);
        // Encoded rows that fit one insert go as they are, not copied: rows added meanwhile go to the spare buffer.
        const whole = enc !== undefined && enc.length <= this.o.batchRows;
        const batch: InsertRows = whole ? enc : enc !== undefined ? enc.slice(0, this.o.batchRows) : q.rows.slice(0, this.o.batchRows);
        if (whole) {
          q.encoded = q.spare;
          q.spare = undefined;
        }
        q.waitingSince = undefined;
        const n = batch.length;
        await this.store(table, batch);
        if (enc !== undefined) enc.shift(n);
        else q.rows.splice(0, n);
        if (whole) q.spare = enc;
        this.settle(q, n);
        // Rows that arrived during the insert wait their own flushMs unless a flush() is waiting for them:
        // going on at once made a table under steady load insert back to back, whatever its flushMs.
        q.due = q.waiters.length > 0 || waitedBefore > n;
      }
    } catch (e) {
      // Only a stop ends a store early; anything else is a bug worth seeing.
      if (!(e instanceof SinkStoppedError)) this.o.log?.('error', 'clickhouse sink: unexpected failure', { table, error: (e as Error).message });
    } finally {
      q.writing = false;
      if (pending(q) === 0) q.due = false;
      else if (!this.stopped) {
        if (q.due || pending(q) >= this.o.batchRows) this.kick(table, q);
        else this.arm(table, q, q.waitingSince);
      }
    }
  }

  private settle(q: TableQueue, n: number): void {
    q.done += n;
    this.bufferedRows -= n;
    if (q.waiters.length > 0) {
      const ready = q.waiters.filter((w) => q.done >= w.target);
      q.waiters = q.waiters.filter((w) => q.done < w.target);
      for (const w of ready) w.resolve();
    }
    if (this.bufferedRows < this.o.maxBufferedRows && this.roomWaiters.length > 0) for (const r of this.roomWaiters.splice(0)) r();
  }

  /** Stores the rows, retrying while ClickHouse is unavailable; isolates rows it refuses. Throws only SinkStoppedError. */
  private async store(table: string, rows: InsertRows): Promise<void> {
    const c = this.tableCounters(table);
    let retrying = false;
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.stopped) throw new SinkStoppedError();
        const started = performance.now();
        try {
          await this.client.insert(table, rows);
          c.insertSeconds += (performance.now() - started) / 1000;
          c.rows += rows.length;
          c.batches++;
          if (rows.length > c.maxBatch) c.maxBatch = rows.length;
          if (attempt > 0) this.o.log?.('info', 'clickhouse insert succeeded after retries', { table, attempts: attempt + 1 });
          // ClickHouse answers again: the other tables' inserts retry now, not when their backoff ends. After a
          // minute's outage that backoff is 15–30 s, and a table (the lock's decision) came in that much later.
          if (this.retryingStores > (retrying ? 1 : 0)) this.sleepers.wakeAll();
          return;
        } catch (raw) {
          const err = classify(raw, `insert into ${table}`);
          c.failures[err.kind]++;
          this.lastErr = { kind: err.kind, ...(err.serverCode !== undefined ? { code: err.serverCode } : {}), message: redact(err.message), ts: this.o.now() };
          if (err.kind === 'data') {
            await this.isolate(table, rows, err);
            return;
          }
          c.retries++;
          if (!retrying) this.retryingStores++;
          retrying = true;
          const delay = this.backoff(attempt);
          if (attempt === 0 || attempt % 10 === 0) this.o.log?.('warn', 'clickhouse insert failed; retrying', { table, rows: rows.length, kind: err.kind, code: err.serverCode, attempt: attempt + 1, delayMs: delay });
          await this.sleepers.sleep(delay);
        }
      }
    } finally {
      if (retrying) this.retryingStores--;
    }
  }

  /** Halves the batch until the refused rows stand alone. */
  private async isolate(table: string, rows: InsertRows, err: ClickhouseError): Promise<void> {
    if (rows.length === 1) {
      await this.deadLetter(table, rows instanceof TsvRows ? rows.rowObject(0) : rows[0]!, err);
      return;
    }
    const mid = Math.ceil(rows.length / 2);
    await this.store(table, rows.slice(0, mid));
    await this.store(table, rows.slice(mid));
  }

  private async deadLetter(table: string, row: object, err: ClickhouseError): Promise<void> {
    const c = this.tableCounters(table);
    c.deadLettered++;
    this.deadLetteredRows++;
    const ts = this.o.now();
    this.recentDeadLetters.push({ table, row, error: err.message, code: err.serverCode, ts });
    if (this.recentDeadLetters.length > this.o.keepDeadLetters) this.recentDeadLetters.shift();
    this.o.log?.('warn', 'clickhouse refused a row; dead-lettered', { table, code: err.serverCode });
    // Kept durably before the batch counts as stored; a dead letter of a dead letter stays in memory only.
    if (this.o.deadLetterTable && table !== 'dead_letters') await this.store('dead_letters', [deadLetterRow(table, row, err.message, ts)]);
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** Math.min(attempt, 30));
    // Half fixed, half random: workers that failed together do not retry together.
    return Math.round(cap / 2 + (this.o.random() * cap) / 2);
  }


  // ---- metrics ----

  metricFamilies(): MetricFamily[] {
    const per = (f: (c: TableCounters) => number) => [...this.counters].map(([table, c]) => ({ labels: { table }, value: f(c) }));
    return [
      { name: 'floodgate_clickhouse_rows_inserted_total', help: 'Rows stored in ClickHouse, per table.', type: 'counter', samples: per((c) => c.rows) },
      { name: 'floodgate_clickhouse_batches_total', help: 'Insert batches stored, per table.', type: 'counter', samples: per((c) => c.batches) },
      { name: 'floodgate_clickhouse_batch_rows_max', help: 'Largest batch stored, per table (rows).', type: 'gauge', samples: per((c) => c.maxBatch) },
      { name: 'floodgate_clickhouse_insert_seconds_total', help: 'Time spent in successful inserts, per table.', type: 'counter', samples: per((c) => c.insertSeconds) },
      { name: 'floodgate_clickhouse_insert_retries_total', help: 'Inserts retried because ClickHouse was unavailable or refused the query.', type: 'counter', samples: per((c) => c.retries) },
      {
        name: 'floodgate_clickhouse_insert_failures_total',
        help: 'Failed insert attempts, per table and kind (connection, data, query).',
        type: 'counter',
        samples: [...this.counters].flatMap(([table, c]) => (['connection', 'data', 'query'] as const).map((kind) => ({ labels: { table, kind }, value: c.failures[kind] }))),
      },
      { name: 'floodgate_clickhouse_dead_letter_rows_total', help: 'Rows ClickHouse refused as malformed, set aside in dead_letters.', type: 'counter', samples: per((c) => c.deadLettered) },
      { name: 'floodgate_clickhouse_buffered_rows', help: 'Rows waiting to be stored in ClickHouse.', type: 'gauge', samples: [{ value: this.bufferedRows }] },
      { name: 'floodgate_clickhouse_buffered_rows_limit', help: 'clickhouse.maxBufferedRows: the consumer pauses at this many.', type: 'gauge', samples: [{ value: this.o.maxBufferedRows }] },
      { name: 'floodgate_clickhouse_last_error_timestamp_seconds', help: 'When the last insert failed (0: never).', type: 'gauge', samples: [{ value: this.lastErr ? this.lastErr.ts / 1000 : 0 }] },
    ];
  }
}

/** Resolves when the flush is done or after ms, whichever first; reports which. */
export async function flushWithin(sink: ClickhouseSink, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([sink.flush().then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
