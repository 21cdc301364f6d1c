/**
 * Rows of floodgate's ClickHouse tables, made from the pipeline's objects by
 * pure functions. Every row carries a deterministic `id`: the distributed
 * consumer is at-least-once, so after a crash the same event, message,
 * finding or decision is derived and inserted again, and the tables
 * (ReplacingMergeTree ordered by id) collapse the copies because their ids
 * are equal. The ids therefore hash only what a replay reproduces exactly.
 *
 * Times are epoch milliseconds in `*_ms` (UInt64) next to a second-precision
 * DateTime for partitioning and TTL: ClickHouse 18.16 has no DateTime64.
 * Accounts are lowercased in their columns (what queries filter on); the
 * `json` column keeps the object as the pipeline made it.
 */
import * as crypto from 'node:crypto';
import type { ActionRecord } from '../actions/types.js';
import type { Event } from '../core/events.js';
import type { Message } from '../correlator/message.js';
import type { Finding } from '../detect/finding.js';
import { decisionKey } from '../policy/decision-key.js';
import { FloodgateError } from '../core/errors.js';
import { tsvField } from './escape.js';
import type { Decision } from '../policy/policy.js';

export const tableNames = ['events', 'messages', 'findings', 'decisions', 'actions', 'dead_letters'] as const;
export type TableName = (typeof tableNames)[number];

/**
 * Hex SHA-1 of the parts as a JSON array: JSON quoting keeps the parts apart
 * (no separator a value could contain), and SHA-1 is the hash decisionKey
 * already uses; collisions are not a security question here, only identity.
 */
function idOf(parts: readonly unknown[]): string {
  return sha1Hex(JSON.stringify(parts));
}

// One id per stored event is on the hot path: crypto.hash (Node ≥ 20.12) is
// about three times faster than a Hash object; older Node falls back.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;
const sha1Hex: (s: string) => string = typeof oneShot === 'function' ? (s) => oneShot('sha1', s, 'hex') : (s) => crypto.createHash('sha1').update(s).digest('hex');

/** Seconds since the epoch for a DateTime column (JSONEachRow takes a number there). */
export function epochSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

const lower = (s: string | undefined): string => (s === undefined ? '' : s.toLowerCase());
const u8 = (b: boolean | undefined): number => (b ? 1 : 0);

// ---- events ----

export interface EventRow {
  id: string;
  ts: number;
  ts_ms: number;
  host: string;
  program: string;
  kind: string;
  account: string;
  ip: string;
  file: string;
  offset: number;
  json: string;
}

/**
 * A parsed event's identity: where its line is (host, file, byte offset),
 * which of the line's events it is (kind, index), and the line's time. The
 * time is there because offsets restart at 0 when a log rotates: without it,
 * the first line of the new zimbra.log would replace the first line of the
 * old one.
 */
export function eventId(e: Event, indexInLine: number): string {
  return idOf(['e', e.host, e.src.file, e.src.offset, e.ts, e.kind, indexInLine]);
}

export function eventRow(e: Event, indexInLine: number): EventRow {
  return eventRowWithJson(e, indexInLine, JSON.stringify(e));
}

/** eventRow when the caller has the event's JSON already (as it came off the events topic): not serialised twice. */
export function eventRowWithJson(e: Event, indexInLine: number, json: string): EventRow {
  const account = 'account' in e ? e.account : undefined;
  const ip = 'ip' in e ? e.ip : undefined;
  return {
    id: eventId(e, indexInLine),
    ts: epochSeconds(e.ts),
    ts_ms: e.ts,
    host: e.host,
    program: e.program,
    kind: e.kind,
    account: lower(account),
    ip: ip ?? '',
    file: e.src.file,
    offset: e.src.offset,
    json,
  };
}

/** The fields of an EventRow, in its order: the columns of eventTsvLine. */
export const EVENT_COLUMNS: readonly (keyof EventRow)[] = ['id', 'ts', 'ts_ms', 'host', 'program', 'kind', 'account', 'ip', 'file', 'offset', 'json'];

/**
 * eventRowWithJson as one TabSeparated line (fields in EVENT_COLUMNS order,
 * no newline), made without the row object: what the parse stage stores
 * (see TsvRows). The same text as tabSeparated([eventRowWithJson(...)]).
 */
export function eventTsvLine(e: Event, indexInLine: number, json: string): string {
  const account = 'account' in e ? e.account : undefined;
  const ip = 'ip' in e ? e.ip : undefined;
  return (
    eventId(e, indexInLine) +
    '\t' +
    tsvNumber(epochSeconds(e.ts)) +
    '\t' +
    tsvNumber(e.ts) +
    '\t' +
    tsvField(e.host) +
    '\t' +
    tsvField(e.program) +
    '\t' +
    tsvField(e.kind) +
    '\t' +
    tsvField(lower(account)) +
    '\t' +
    tsvField(ip ?? '') +
    '\t' +
    tsvField(e.src.file) +
    '\t' +
    tsvNumber(e.src.offset) +
    '\t' +
    tsvField(json)
  );
}

/** A number field; tabSeparated refuses a row with a non-finite one, and so does this. */
function tsvNumber(n: number): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new FloodgateError('FG_INTERNAL', `event row: ${String(n)} is not a finite number`);
  return String(n);
}

/**
 * The index of each event within its line, for eventId: a line's events
 * arrive one after another with the same file and offset.
 */
export class LineEventIndexer {
  private file = '';
  private offset = -1;
  private host = '';
  private next = 0;

  index(e: Event): number {
    if (e.src.offset !== this.offset || e.src.file !== this.file || e.host !== this.host) {
      this.file = e.src.file;
      this.offset = e.src.offset;
      this.host = e.host;
      this.next = 0;
    }
    return this.next++;
  }
}

// ---- messages ----

export interface MessageRow {
  id: string;
  host: string;
  queue_id: string;
  first_ts: number;
  first_ts_ms: number;
  last_ts: number;
  last_ts_ms: number;
  sasl_user: string;
  client_ip: string;
  sender: string;
  rcpt_count: number;
  rcpt_addresses: string[];
  rcpt_status: string[];
  json: string;
}

/** A message is its first queue id on its host, first seen at firstTs (queue ids are reused over time). */
export function messageId(m: Message): string {
  return idOf(['m', m.host, m.queueId, m.firstTs]);
}

export function messageRow(m: Message): MessageRow {
  return messageRowWithJson(m, JSON.stringify(m));
}

/** messageRow when the caller has the message's JSON already. */
export function messageRowWithJson(m: Message, json: string): MessageRow {
  return {
    id: messageId(m),
    host: m.host,
    queue_id: m.queueId,
    first_ts: epochSeconds(m.firstTs),
    first_ts_ms: m.firstTs,
    last_ts: epochSeconds(m.lastTs),
    last_ts_ms: m.lastTs,
    sasl_user: lower(m.saslUser),
    client_ip: m.clientIp ?? '',
    sender: m.sender ?? '',
    rcpt_count: m.recipients.length,
    rcpt_addresses: m.recipients.map((r) => r.address),
    rcpt_status: m.recipients.map((r) => r.status),
    json,
  };
}

// ---- findings ----

export interface FindingRow {
  id: string;
  ts: number;
  ts_ms: number;
  detector: string;
  entity_kind: string;
  entity_id: string;
  severity: string;
  score: number;
  signals: string[];
  summary: string;
  window: string;
  evidence: string;
  account: string;
  ip: string;
  json: string;
}

export function findingId(f: Finding): string {
  return idOf(['f', f.detector, f.entity.kind, f.entity.id, f.ts, f.summary]);
}

/** The account a finding concerns: its entity, or the account an IP finding names. */
export function findingAccount(f: Finding): string {
  return f.entity.kind === 'account' ? f.entity.id.toLowerCase() : lower(f.account);
}

export function findingRow(f: Finding): FindingRow {
  return {
    id: findingId(f),
    ts: epochSeconds(f.ts),
    ts_ms: f.ts,
    detector: f.detector,
    entity_kind: f.entity.kind,
    entity_id: f.entity.id,
    severity: f.severity,
    score: f.score,
    signals: [...f.signals],
    summary: f.summary,
    window: JSON.stringify(f.window),
    evidence: JSON.stringify(f.evidence),
    account: findingAccount(f),
    ip: f.ip ?? (f.entity.kind === 'ip' ? f.entity.id : ''),
    json: JSON.stringify(f),
  };
}

// ---- decisions ----

export interface DecisionRow {
  id: string;
  ts: number;
  ts_ms: number;
  entity: string;
  account: string;
  action: string;
  hold: number;
  dry_run: number;
  score: number;
  reasons: string[];
  detectors: string[];
  signals: string[];
  json: string;
}

/** The standalone store's decision key, so both modes name a decision alike. */
export const decisionId = decisionKey;

export function decisionRow(d: Decision): DecisionRow {
  return {
    id: decisionId(d),
    ts: epochSeconds(d.ts),
    ts_ms: d.ts,
    entity: `${d.entity.kind}:${d.entity.id}`,
    account: lower(d.account),
    action: d.action,
    hold: u8(d.hold),
    dry_run: u8(d.dryRun),
    score: d.score,
    reasons: [...d.reasons],
    detectors: [...d.detectors],
    signals: [...d.signals],
    json: JSON.stringify(d),
  };
}

// ---- actions ----

export interface ActionRow {
  id: string;
  ts: number;
  ts_ms: number;
  action: string;
  account: string;
  ok: number;
  dry_run: number;
  changed: number;
  backend: string;
  detail: string;
  command: string[];
  by: string;
  reason: string[];
  error_code: string;
  json: string;
}

/** An action already has its id (the actuator's, kept when the record is re-sent). */
export function actionRow(r: ActionRecord): ActionRow {
  return {
    id: r.id,
    ts: epochSeconds(r.ts),
    ts_ms: r.ts,
    action: r.action,
    account: r.account.toLowerCase(),
    ok: u8(r.ok),
    dry_run: u8(r.dryRun),
    changed: u8(r.changed),
    backend: r.backend,
    detail: r.detail,
    command: r.command ? [...r.command] : [],
    by: r.by,
    reason: [...r.reason],
    error_code: r.error?.code ?? '',
    json: JSON.stringify(r),
  };
}

// ---- dead letters ----

export interface DeadLetterRow {
  id: string;
  ts: number;
  ts_ms: number;
  table_name: string;
  error: string;
  row: string;
}

/** A row the server refused, kept as text with the error; the same row refused twice is one dead letter. */
export function deadLetterRow(table: string, row: unknown, error: string, now: number): DeadLetterRow {
  const text = safeJson(row);
  return { id: idOf(['d', table, text]), ts: epochSeconds(now), ts_ms: now, table_name: table, error: error.slice(0, 4000), row: text };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
