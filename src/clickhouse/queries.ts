/**
 * The read side over ClickHouse: every SELECT floodgate runs lives here.
 *
 * Rows may be present twice until ClickHouse merges them (at-least-once
 * writers, see migrations.ts), so every read either uses FINAL (row tables:
 * the ReplacingMergeTree collapse applied at read time) or merges aggregate
 * states (the per-minute tables count distinct ids).
 *
 * Filter values are inlined through escape.ts: ClickHouse 18.16 has no query
 * parameters.
 */
import { heldQueueIds } from '../actions/held.js';
import type { QueuedMailHints } from '../actions/queued-mail.js';
import type { ActionRecord } from '../actions/types.js';
import type { Message } from '../correlator/message.js';
import type { Finding } from '../detect/finding.js';
import type { Decision } from '../policy/policy.js';
import type { ChClient } from './client.js';
import { sqlInt, sqlString, sqlTable } from './escape.js';

export interface FindingQuery {
  since?: number;
  until?: number;
  detector?: string;
  account?: string;
  limit: number;
}

export interface AccountView {
  findings: Finding[];
  messages: Message[];
  decisions: Decision[];
  actions: ActionRecord[];
}

export interface LockState {
  locked: boolean;
  dryRun: boolean;
}

export interface MinuteQuery {
  since: number;
  until: number;
}

export interface MessagesPerMinute {
  minute: number;
  account: string;
  host: string;
  messages: number;
  recipients: number;
}

export interface FindingsPerMinute {
  minute: number;
  detector: string;
  severity: string;
  findings: number;
}

export interface EventsPerMinute {
  minute: number;
  host: string;
  kind: string;
  events: number;
}

export interface ClickhouseHealth {
  reachable: boolean;
  version?: string;
  error?: string;
}

const MAX_MS = 253_402_300_799_000; // 9999-12-31: beyond DateTime anyway

function clampMs(v: number | undefined, dflt: number): number {
  if (v === undefined || !Number.isFinite(v)) return dflt;
  return Math.min(MAX_MS, Math.max(0, Math.trunc(v)));
}

/** `ts_ms` between since and until, plus the DateTime bounds that let ClickHouse skip partitions and granules. */
function timeRange(secCol: string, msCol: string, since: number, until: number): string[] {
  return [
    `${msCol} >= ${sqlInt(since)}`,
    `${msCol} <= ${sqlInt(until)}`,
    `${secCol} >= toDateTime(${sqlInt(Math.floor(since / 1000))})`,
    `${secCol} <= toDateTime(${sqlInt(Math.floor(until / 1000))})`,
  ];
}

/** `ts_ms` from since on, with the DateTime bound for ClickHouse's index. */
function fromTime(secCol: string, msCol: string, since: number): string {
  const ms = clampMs(since, 0);
  return `${msCol} >= ${sqlInt(ms)} AND ${secCol} >= toDateTime(${sqlInt(Math.floor(ms / 1000))})`;
}

function parseJson<T>(rows: readonly { json: string }[]): T[] {
  return rows.map((r) => JSON.parse(r.json) as T);
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

export class ClickhouseQueries {
  constructor(private readonly client: ChClient) {}

  private t(table: string): string {
    return sqlTable(this.client.database, table);
  }

  /** Findings, newest first. */
  async findings(q: FindingQuery): Promise<Finding[]> {
    const since = clampMs(q.since, 0);
    const until = clampMs(q.until, MAX_MS);
    const where = timeRange('ts', 'ts_ms', since, until);
    if (q.detector !== undefined) where.push(`detector = ${sqlString(q.detector)}`);
    if (q.account !== undefined) where.push(`account = ${sqlString(q.account.toLowerCase())}`);
    const rows = await this.client.query<{ json: string }>(
      `SELECT json FROM ${this.t('findings')} FINAL WHERE ${where.join(' AND ')} ORDER BY ts_ms DESC, id DESC LIMIT ${sqlInt(q.limit)}`,
    );
    return parseJson<Finding>(rows);
  }

  /** An account's latest findings, messages (it sent), decisions and actions. */
  async account(account: string, limit = 100): Promise<AccountView> {
    const a = sqlString(account.toLowerCase());
    const n = sqlInt(limit);
    const [findings, messages, decisions, actions] = await Promise.all([
      this.client.query<{ json: string }>(`SELECT json FROM ${this.t('findings')} FINAL WHERE account = ${a} ORDER BY ts_ms DESC, id DESC LIMIT ${n}`),
      this.client.query<{ json: string }>(`SELECT json FROM ${this.t('messages')} FINAL WHERE sasl_user = ${a} ORDER BY last_ts_ms DESC, id DESC LIMIT ${n}`),
      this.client.query<{ json: string }>(`SELECT json FROM ${this.t('decisions')} FINAL WHERE account = ${a} ORDER BY ts_ms DESC, id DESC LIMIT ${n}`),
      this.client.query<{ json: string }>(`SELECT json FROM ${this.t('actions')} FINAL WHERE account = ${a} ORDER BY ts_ms DESC, id DESC LIMIT ${n}`),
    ]);
    return { findings: parseJson<Finding>(findings), messages: parseJson<Message>(messages), decisions: parseJson<Decision>(decisions), actions: parseJson<ActionRecord>(actions) };
  }

  /** Lock state as the mail server should see it: the latest successful lock/unlock; locked only by a non-dry-run lock. */
  async lockState(account: string): Promise<LockState> {
    const rows = await this.client.query<{ action: string; dry_run: number }>(
      `SELECT action, dry_run FROM ${this.t('actions')} FINAL WHERE account = ${sqlString(account.toLowerCase())} AND ok = 1 AND action IN ('lock', 'unlock') ORDER BY ts_ms DESC LIMIT 1`,
    );
    const r = rows[0];
    return { locked: r?.action === 'lock', dryRun: num(r?.dry_run) === 1 };
  }

  /** Queue ids the account's mail is on hold under (see heldQueueIds in src/actions/held.ts). */
  async heldQueueIds(account: string): Promise<string[]> {
    const rows = await this.client.query<{ json: string }>(
      `SELECT json FROM ${this.t('actions')} FINAL WHERE account = ${sqlString(account.toLowerCase())} AND action IN ('hold', 'release', 'unlock') ORDER BY ts_ms, id`,
    );
    return heldQueueIds(parseJson<ActionRecord>(rows));
  }

  /**
   * For hold in distributed mode, where no one process has the correlator
   * that knows an account's queue ids: from the events and messages since
   * `since`, the senders of the account's finished messages, and the queue
   * ids its SASL submissions got on each host together with their
   * content-filter re-injections (a delivery's `queued as`, amavis's
   * `queued_as`, on the same host), the id deferred mail waits under.
   * Ids of mail already gone are harmless: hold only touches ids postqueue
   * lists. ClickHouse 18.16 has no JSON functions beyond visitParam*, which
   * read the first match of a key: events' json has queueId and queuedAs
   * only at the top level.
   */
  async queuedMailOf(account: string, since: number): Promise<QueuedMailHints> {
    const a = sqlString(account.toLowerCase());
    const range = fromTime('ts', 'ts_ms', since);
    const submitted = `SELECT host, visitParamExtractString(json, 'queueId') FROM ${this.t('events')} WHERE kind = 'smtp.client' AND account = ${a} AND ${range}`;
    const [ids, senders] = await Promise.all([
      this.client.query<{ qid: string }>(
        `SELECT DISTINCT qid FROM (
           SELECT visitParamExtractString(json, 'queueId') AS qid FROM ${this.t('events')} WHERE kind = 'smtp.client' AND account = ${a} AND ${range}
           UNION ALL
           SELECT arrayJoin(extractAll(visitParamExtractRaw(json, 'queuedAs'), '[0-9A-Za-z]+')) AS qid FROM ${this.t('events')}
           WHERE kind IN ('delivery', 'amavis') AND ${range} AND (host, visitParamExtractString(json, 'queueId')) IN (${submitted})
         ) WHERE qid != '' LIMIT 10000`,
      ),
      this.client.query<{ sender: string }>(
        `SELECT DISTINCT sender FROM ${this.t('messages')} WHERE sasl_user = ${a} AND ${fromTime('last_ts', 'last_ts_ms', since)} AND sender != '' LIMIT 1000`,
      ),
    ]);
    return { senders: senders.map((r) => r.sender), queueIds: ids.map((r) => r.qid) };
  }

  /** Distinct row ids and row copies of a table: equal once ClickHouse merged, copies ≥ ids before (tests, diagnostics). */
  async idCounts(table: 'events' | 'messages' | 'findings' | 'decisions' | 'actions' | 'dead_letters'): Promise<{ ids: number; rows: number; final: number }> {
    const [a] = await this.client.query<{ ids: string; rows: string }>(`SELECT uniqExact(id) AS ids, count() AS rows FROM ${this.t(table)}`);
    const [b] = await this.client.query<{ n: string }>(`SELECT count() AS n FROM ${this.t(table)} FINAL`);
    return { ids: num(a?.ids ?? 0), rows: num(a?.rows ?? 0), final: num(b?.n ?? 0) };
  }

  async messagesPerMinute(q: MinuteQuery): Promise<MessagesPerMinute[]> {
    const rows = await this.client.query<Record<string, unknown>>(
      `SELECT toUnixTimestamp(minute) AS minute, account, host, uniqExactMerge(messages) AS messages, uniqExactArrayMerge(recipients) AS recipients
       FROM ${this.t('messages_per_minute')} WHERE ${minuteRange(q)} GROUP BY minute, account, host ORDER BY minute, account, host`,
    );
    return rows.map((r) => ({ minute: num(r.minute) * 1000, account: String(r.account), host: String(r.host), messages: num(r.messages), recipients: num(r.recipients) }));
  }

  async findingsPerMinute(q: MinuteQuery): Promise<FindingsPerMinute[]> {
    const rows = await this.client.query<Record<string, unknown>>(
      `SELECT toUnixTimestamp(minute) AS minute, detector, severity, uniqExactMerge(findings) AS findings
       FROM ${this.t('findings_per_minute')} WHERE ${minuteRange(q)} GROUP BY minute, detector, severity ORDER BY minute, detector, severity`,
    );
    return rows.map((r) => ({ minute: num(r.minute) * 1000, detector: String(r.detector), severity: String(r.severity), findings: num(r.findings) }));
  }

  async eventsPerMinute(q: MinuteQuery): Promise<EventsPerMinute[]> {
    const rows = await this.client.query<Record<string, unknown>>(
      `SELECT toUnixTimestamp(minute) AS minute, host, kind, uniqMerge(events) AS events
       FROM ${this.t('events_per_minute')} WHERE ${minuteRange(q)} GROUP BY minute, host, kind ORDER BY minute, host, kind`,
    );
    return rows.map((r) => ({ minute: num(r.minute) * 1000, host: String(r.host), kind: String(r.kind), events: num(r.events) }));
  }

  /** Whether ClickHouse answers, and its version. Never throws. */
  async health(): Promise<ClickhouseHealth> {
    try {
      const v = await this.client.query<{ v: string }>('SELECT version() AS v');
      return { reachable: true, version: v[0]?.v ?? '' };
    } catch (e) {
      return { reachable: false, error: (e as Error).message.slice(0, 200) };
    }
  }
}

function minuteRange(q: MinuteQuery): string {
  const since = clampMs(q.since, 0);
  const until = clampMs(q.until, MAX_MS);
  return `minute >= toDateTime(${sqlInt(Math.floor(since / 1000))}) AND minute <= toDateTime(${sqlInt(Math.floor(until / 1000))})`;
}
