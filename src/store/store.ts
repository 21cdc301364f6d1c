/**
 * The embedded store of `floodgate run`: one SQLite file (better-sqlite3,
 * WAL) holding findings, decisions, actions, correlated messages, the inputs'
 * positions, the pipeline snapshot and the webhook outbox.
 *
 * Exactly-once lives here: `checkpoint()` writes a batch of results together
 * with every input's position and the pipeline snapshot in ONE transaction,
 * so after a crash the store, the positions and the detection state all
 * describe the same prefix of every input. Actions are side effects and are
 * recorded at once, each in its own transaction (`recordAction`).
 *
 * The schema is versioned (`meta.schema_version`) and migrated forward on
 * open; a store written by a newer floodgate is refused. Every statement is
 * prepared once with bound parameters.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { heldQueueIds } from '../actions/held.js';
import type { ActionRecord } from '../actions/types.js';
import type { OutboxEntry, OutboxState, WebhookOutbox } from '../actions/webhook.js';
import { FloodgateError } from '../core/errors.js';
import type { Message } from '../correlator/message.js';
import type { Finding } from '../detect/finding.js';
import type { FollowPosition } from '../input/follower.js';
import type { Decision } from '../policy/policy.js';

/** Forward-only migrations; index i brings the schema from version i to i + 1. */
const migrations: string[] = [
  `
  CREATE TABLE findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    detector TEXT NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    account TEXT,
    severity TEXT NOT NULL,
    score REAL NOT NULL,
    json TEXT NOT NULL
  );
  CREATE INDEX findings_ts ON findings(ts);
  CREATE INDEX findings_account_ts ON findings(account, ts);
  CREATE INDEX findings_detector_ts ON findings(detector, ts);

  CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    account TEXT,
    entity TEXT NOT NULL,
    action TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    score REAL NOT NULL,
    decision_key TEXT NOT NULL,
    acted INTEGER,
    json TEXT NOT NULL
  );
  CREATE INDEX decisions_ts ON decisions(ts);
  CREATE INDEX decisions_account_ts ON decisions(account, ts);
  CREATE INDEX decisions_key ON decisions(decision_key);
  CREATE INDEX decisions_pending ON decisions(acted) WHERE acted = 0;

  CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    action TEXT NOT NULL,
    account TEXT NOT NULL,
    ok INTEGER NOT NULL,
    dry_run INTEGER NOT NULL,
    by_who TEXT NOT NULL,
    decision_key TEXT,
    json TEXT NOT NULL
  );
  CREATE INDEX actions_account_ts ON actions(account, ts);
  CREATE INDEX actions_ts ON actions(ts);
  CREATE INDEX actions_decision ON actions(decision_key);

  CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    sasl_user TEXT,
    client_ip TEXT,
    sender TEXT,
    json TEXT NOT NULL,
    UNIQUE (host, queue_id, first_ts)
  );
  CREATE INDEX messages_user_last ON messages(sasl_user, last_ts);
  CREATE INDEX messages_last ON messages(last_ts);

  CREATE TABLE positions (
    input TEXT PRIMARY KEY,
    position TEXT NOT NULL,
    lines INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE state (
    k TEXT PRIMARY KEY,
    json TEXT NOT NULL
  );

  CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    json TEXT NOT NULL
  );
  CREATE INDEX webhook_outbox_state ON webhook_outbox(state, created_at);
  `,
];

export const SCHEMA_VERSION = migrations.length;

export interface InputPosition {
  position: FollowPosition;
  /** Lines of this input processed so far (over every file it rotated through). */
  lines: number;
}

/** What one checkpoint commits, atomically. */
export interface CheckpointBatch {
  findings: readonly Finding[];
  decisions: readonly { decision: Decision; key: string; acted: boolean | null }[];
  messages: readonly Message[];
  positions: ReadonlyMap<string, InputPosition>;
  /** JSON text of the pipeline snapshot (and runner state) after exactly these results. */
  snapshot: string;
}

export interface CheckpointResult {
  /** Messages whose (host, queue id, first time) was already stored: 0 unless something replayed twice. */
  duplicateMessages: number;
}

export interface FindingQuery {
  since?: number;
  until?: number;
  detector?: string;
  account?: string;
  limit: number;
}

export interface StoreOptions {
  /** Clock for pruning and timestamps (ms). Default Date.now. */
  now?: () => number;
}

function parse<T>(rows: { json: string }[]): T[] {
  return rows.map((r) => JSON.parse(r.json) as T);
}

export class Store implements WebhookOutbox {
  readonly db: Database.Database;
  private readonly now: () => number;
  private readonly st;

  constructor(path: string, opts: StoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    if (path !== ':memory:') {
      try {
        mkdirSync(dirname(path), { recursive: true });
      } catch {
        // reported by the open below
      }
    }
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL'); // durable at checkpoints in WAL mode, fsync per checkpoint not per statement
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
    } catch (e) {
      throw new FloodgateError('FG_STORE_FAILED', `cannot open the store ${path}: ${(e as Error).message}`, { cause: e });
    }
    this.migrate(path);
    const db = this.db;
    this.st = {
      insertFinding: db.prepare(
        'INSERT INTO findings (ts, detector, entity_kind, entity_id, account, severity, score, json) VALUES (@ts, @detector, @entity_kind, @entity_id, @account, @severity, @score, @json)',
      ),
      insertDecision: db.prepare(
        'INSERT INTO decisions (ts, account, entity, action, dry_run, score, decision_key, acted, json) VALUES (@ts, @account, @entity, @action, @dry_run, @score, @decision_key, @acted, @json)',
      ),
      insertMessage: db.prepare(
        'INSERT INTO messages (host, queue_id, first_ts, last_ts, sasl_user, client_ip, sender, json) VALUES (@host, @queue_id, @first_ts, @last_ts, @sasl_user, @client_ip, @sender, @json) ON CONFLICT (host, queue_id, first_ts) DO NOTHING',
      ),
      upsertPosition: db.prepare(
        'INSERT INTO positions (input, position, lines, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (input) DO UPDATE SET position = excluded.position, lines = excluded.lines, updated_at = excluded.updated_at',
      ),
      putState: db.prepare('INSERT INTO state (k, json) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET json = excluded.json'),
      getState: db.prepare<[string], { json: string }>('SELECT json FROM state WHERE k = ?'),
      positions: db.prepare<[], { input: string; position: string; lines: number }>('SELECT input, position, lines FROM positions'),
      insertAction: db.prepare(
        'INSERT OR REPLACE INTO actions (id, ts, action, account, ok, dry_run, by_who, decision_key, json) VALUES (@id, @ts, @action, @account, @ok, @dry_run, @by_who, @decision_key, @json)',
      ),
      actionsForDecision: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM actions WHERE decision_key = ?'),
      markActed: db.prepare('UPDATE decisions SET acted = 1 WHERE decision_key = ? AND acted = 0'),
      pendingDecisions: db.prepare<[], { json: string; decision_key: string }>('SELECT json, decision_key FROM decisions WHERE acted = 0 ORDER BY id'),
      lastLockAction: db.prepare<[string], { action: string; dry_run: number }>(
        "SELECT action, dry_run FROM actions WHERE account = ? AND ok = 1 AND action IN ('lock', 'unlock') ORDER BY ts DESC, rowid DESC LIMIT 1",
      ),
      unlockedAccounts: db.prepare<[], { account: string }>(
        "SELECT a.account FROM actions a WHERE a.ok = 1 AND a.action = 'unlock' AND NOT EXISTS (SELECT 1 FROM actions b WHERE b.account = a.account AND b.ok = 1 AND b.action = 'lock' AND (b.ts > a.ts OR (b.ts = a.ts AND b.rowid > a.rowid))) GROUP BY a.account",
      ),
      findings: db.prepare<{ since: number; until: number; detector: string | null; account: string | null; limit: number }, { json: string }>(
        'SELECT json FROM findings WHERE ts >= @since AND ts <= @until AND (@detector IS NULL OR detector = @detector) AND (@account IS NULL OR account = @account) ORDER BY ts DESC, id DESC LIMIT @limit',
      ),
      accountFindings: db.prepare<[string, number], { json: string }>('SELECT json FROM findings WHERE account = ? ORDER BY ts DESC, id DESC LIMIT ?'),
      accountMessages: db.prepare<[string, number], { json: string }>('SELECT json FROM messages WHERE sasl_user = ? ORDER BY last_ts DESC, id DESC LIMIT ?'),
      accountDecisions: db.prepare<[string, number], { json: string }>('SELECT json FROM decisions WHERE account = ? ORDER BY ts DESC, id DESC LIMIT ?'),
      accountActions: db.prepare<[string, number], { json: string }>('SELECT json FROM actions WHERE account = ? ORDER BY ts DESC, rowid DESC LIMIT ?'),
      queueRecords: db.prepare<[string], { json: string }>("SELECT json FROM actions WHERE account = ? AND action IN ('hold', 'release', 'unlock') ORDER BY ts, rowid"),
      sendersOf: db.prepare<[string, number], { sender: string }>('SELECT DISTINCT sender FROM messages WHERE sasl_user = ? AND last_ts >= ? AND sender IS NOT NULL LIMIT 1000'),
      outboxPut: db.prepare(
        'INSERT INTO webhook_outbox (id, state, created_at, updated_at, json) VALUES (@id, @state, @created_at, @updated_at, @json) ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, json = excluded.json',
      ),
      outboxGet: db.prepare<[string], { json: string }>('SELECT json FROM webhook_outbox WHERE id = ?'),
      outboxList: db.prepare<[string, number], { json: string }>(
        'SELECT json FROM webhook_outbox WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_at, rowid LIMIT ?',
      ),
      prune: [
        db.prepare('DELETE FROM findings WHERE ts < ?'),
        db.prepare('DELETE FROM decisions WHERE ts < ? AND (acted IS NULL OR acted = 1)'),
        db.prepare('DELETE FROM actions WHERE ts < ?'),
        db.prepare('DELETE FROM messages WHERE last_ts < ?'),
        db.prepare("DELETE FROM webhook_outbox WHERE updated_at < ? AND state = 'delivered'"),
      ],
    };
  }

  private migrate(path: string): void {
    const db = this.db;
    db.exec('CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
    const row = db.prepare<[string], { v: string }>('SELECT v FROM meta WHERE k = ?').get('schema_version');
    const current = row ? Number(row.v) : 0;
    if (!Number.isInteger(current) || current > SCHEMA_VERSION) {
      throw new FloodgateError('FG_STORE_FAILED', `the store ${path} has schema version ${row?.v}, newer than this floodgate understands (${SCHEMA_VERSION}); upgrade floodgate or use another store.path`);
    }
    const setVersion = db.prepare("INSERT INTO meta (k, v) VALUES ('schema_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v");
    for (let v = current; v < SCHEMA_VERSION; v++) {
      db.transaction(() => {
        db.exec(migrations[v]!);
        setVersion.run(String(v + 1));
      }).immediate();
    }
  }

  schemaVersion(): number {
    return Number(this.db.prepare<[string], { v: string }>('SELECT v FROM meta WHERE k = ?').get('schema_version')?.v ?? 0);
  }

  // ---- checkpoints ----

  /** Results, positions and snapshot in one transaction: all of them or none. */
  checkpoint(b: CheckpointBatch): CheckpointResult {
    const st = this.st;
    let duplicateMessages = 0;
    const now = this.now();
    this.db
      .transaction(() => {
        for (const f of b.findings) {
          st.insertFinding.run({
            ts: f.ts,
            detector: f.detector,
            entity_kind: f.entity.kind,
            entity_id: f.entity.id,
            account: f.entity.kind === 'account' ? f.entity.id.toLowerCase() : (f.account?.toLowerCase() ?? null),
            severity: f.severity,
            score: f.score,
            json: JSON.stringify(f),
          });
        }
        for (const { decision: d, key, acted } of b.decisions) {
          st.insertDecision.run({
            ts: d.ts,
            account: d.account ?? null,
            entity: `${d.entity.kind}:${d.entity.id}`,
            action: d.action,
            dry_run: d.dryRun ? 1 : 0,
            score: d.score,
            decision_key: key,
            acted: acted === null ? null : acted ? 1 : 0,
            json: JSON.stringify(d),
          });
        }
        for (const m of b.messages) {
          const r = st.insertMessage.run({
            host: m.host,
            queue_id: m.queueId,
            first_ts: m.firstTs,
            last_ts: m.lastTs,
            sasl_user: m.saslUser?.toLowerCase() ?? null,
            client_ip: m.clientIp ?? null,
            sender: m.sender ?? null,
            json: JSON.stringify(m),
          });
          if (r.changes === 0) duplicateMessages++;
        }
        for (const [input, p] of b.positions) st.upsertPosition.run(input, JSON.stringify(p.position), p.lines, now);
        st.putState.run('pipeline', b.snapshot);
      })
      .immediate();
    return { duplicateMessages };
  }

  /** The snapshot text of the last checkpoint, if any. */
  snapshotText(): string | undefined {
    return this.st.getState.get('pipeline')?.json;
  }

  positions(): Map<string, InputPosition> {
    const out = new Map<string, InputPosition>();
    for (const r of this.st.positions.all()) out.set(r.input, { position: JSON.parse(r.position) as FollowPosition, lines: r.lines });
    return out;
  }

  // ---- actions ----

  /** Record an action at once (its own transaction), tied to the decision that caused it. */
  recordAction(r: ActionRecord, decisionKey?: string): void {
    this.st.insertAction.run({
      id: r.id,
      ts: r.ts,
      action: r.action,
      account: r.account,
      ok: r.ok ? 1 : 0,
      dry_run: r.dryRun ? 1 : 0,
      by_who: r.by,
      decision_key: decisionKey ?? null,
      json: JSON.stringify(r),
    });
  }

  /** Whether actions were already recorded for this decision (it ran before a restart). */
  decisionActed(key: string): boolean {
    return (this.st.actionsForDecision.get(key)?.n ?? 0) > 0;
  }

  /** Mark a stored decision's actions done (no-op until the decision's checkpoint is committed). */
  markActed(key: string): void {
    this.st.markActed.run(key);
  }

  /** Decisions committed whose actions had not finished (crash between checkpoint and action). */
  pendingDecisions(): { decision: Decision; key: string }[] {
    return this.st.pendingDecisions.all().map((r) => ({ decision: JSON.parse(r.json) as Decision, key: r.decision_key }));
  }

  /**
   * Whether floodgate has locked the account: its latest successful lock/unlock
   * record is a lock (dry-run locks count: a dry run is not repeated either).
   */
  lockedByFloodgate(account: string): boolean {
    return this.st.lastLockAction.get(account.toLowerCase())?.action === 'lock';
  }

  /** Latest lock state as the server should see it: locked only by a successful non-dry-run lock. */
  lockState(account: string): { locked: boolean; dryRun: boolean } {
    const r = this.st.lastLockAction.get(account.toLowerCase());
    return { locked: r?.action === 'lock', dryRun: r?.dry_run === 1 };
  }

  /** Accounts whose latest successful lock/unlock is an unlock. */
  unlockedAccounts(): string[] {
    return this.st.unlockedAccounts.all().map((r) => r.account);
  }

  /** Queue ids the account's mail is on hold under (see heldQueueIds in src/actions/held.ts). */
  heldQueueIds(account: string): string[] {
    return heldQueueIds(this.st.queueRecords.all(account.toLowerCase()).map((r) => JSON.parse(r.json) as ActionRecord));
  }

  sendersOf(account: string, since: number): string[] {
    return this.st.sendersOf.all(account.toLowerCase(), since).map((r) => r.sender);
  }

  // ---- queries (API) ----

  findings(q: FindingQuery): Finding[] {
    return parse<Finding>(
      this.st.findings.all({
        since: q.since ?? 0,
        until: q.until ?? Number.MAX_SAFE_INTEGER,
        detector: q.detector ?? null,
        account: q.account?.toLowerCase() ?? null,
        limit: q.limit,
      }),
    );
  }

  account(account: string, limit = 100): { findings: Finding[]; messages: Message[]; decisions: Decision[]; actions: ActionRecord[] } {
    const a = account.toLowerCase();
    return {
      findings: parse<Finding>(this.st.accountFindings.all(a, limit)),
      messages: parse<Message>(this.st.accountMessages.all(a, limit)),
      decisions: parse<Decision>(this.st.accountDecisions.all(a, limit)),
      actions: parse<ActionRecord>(this.st.accountActions.all(a, limit)),
    };
  }

  // ---- webhook outbox (WebhookOutbox) ----

  put(entry: OutboxEntry): void {
    this.st.outboxPut.run({ id: entry.id, state: entry.state, created_at: entry.createdAt, updated_at: entry.updatedAt, json: JSON.stringify(entry) });
  }

  get(id: string): OutboxEntry | undefined {
    const r = this.st.outboxGet.get(id);
    return r ? (JSON.parse(r.json) as OutboxEntry) : undefined;
  }

  list(states: readonly OutboxState[], limit = 1_000_000): OutboxEntry[] {
    return parse<OutboxEntry>(this.st.outboxList.all(JSON.stringify(states), Math.max(0, Math.min(limit, 1_000_000))));
  }

  // ---- retention ----

  /** Delete rows older than `days` (by their own time); returns rows deleted. Undone decisions are kept. */
  prune(days: number): number {
    const cutoff = this.now() - days * 86_400_000;
    let n = 0;
    this.db.transaction(() => {
      for (const s of this.st.prune) n += s.run(cutoff).changes;
    })();
    return n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
