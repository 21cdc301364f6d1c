/**
 * Runner: the standalone live mode. One Follower per configured input (each
 * with its own envelope context), all feeding one DetectPipeline; results go
 * to the embedded store at checkpoints; decisions are executed through the
 * Actuator, idempotently.
 *
 * Exactly-once, by construction:
 * - A batch from a Follower is fed synchronously (no await between the first
 *   and the last line), and its results (messages, findings, decisions) only
 *   land in in-memory buffers; the input's position is then set to the
 *   batch's position. Feeding and checkpoints never interleave: a checkpoint
 *   closes a gate that onLines waits at, drains the detectors' async work,
 *   then — synchronously — takes the pipeline snapshot, every input's latest
 *   position and the buffers, and commits them in ONE SQLite transaction.
 * - So a committed position covers exactly the lines whose effects are in the
 *   committed snapshot and rows. After kill -9 the next start restores that
 *   snapshot and resumes every Follower at its committed position: lines after
 *   it are processed again from the same state, and their results (never
 *   committed before) are committed once.
 * - Actions are side effects: each ActionRecord is stored at once, tagged
 *   with its decision's deterministic key. A decision is executed unless
 *   actions are already recorded for its key, and a lock is skipped when the
 *   store says floodgate already locked the account (dry-run included) and did
 *   not unlock it since. Decisions committed before their actions finished are
 *   stored `acted = 0` and executed on the next start.
 *
 * With several inputs, lines are processed in arrival order per batch (not
 * merged by time as replay does), so cross-input interleaving may differ
 * between runs; every line still counts exactly once.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { ActionRecord, CommandRunner, QueuedMailHints } from '../actions/index.js';
import { createActionRunner, type ActionHook } from '../cli/actions-hook.js';
import type { FloodgateConfig } from '../config/config.js';
import type { Message } from '../correlator/message.js';
import type { DnsLookup } from '../detect/dns.js';
import type { Finding } from '../detect/finding.js';
import type { EnvelopeContext } from '../envelope/envelope.js';
import type { ZoneClock } from '../envelope/zone.js';
import { Follower, type FollowPosition } from '../input/follower.js';
import { DetectPipeline, type PipelineSnapshot } from '../pipeline/detect-pipeline.js';
import { envelopeContext } from '../pipeline/line-parser.js';
import { decisionKey } from '../policy/decision-key.js';
import type { Decision } from '../policy/policy.js';
import type { Store } from '../store/store.js';
import type { MetricFamily } from '../api/metrics.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type RunLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface RunnerOptions {
  config: FloodgateConfig;
  store: Store;
  zone: ZoneClock;
  /** Checkpoint interval, ms. Default 2000. */
  checkpointMs?: number;
  /** Follower poll interval, ms. Default 250. */
  pollMs?: number;
  log?: RunLog;
  runner?: CommandRunner;
  fetch?: typeof fetch;
  dns?: DnsLookup;
  now?: () => number;
}

interface InputState {
  path: string;
  ctx: EnvelopeContext;
  refTime: number;
  follower: Follower | null;
  /** Position after the last batch fed (or the committed one we resumed from). */
  pos: FollowPosition | undefined;
  lines: number;
  lastBatchAt: number;
  rotations: number;
}

/** What the `state` row holds besides the pipeline: per-input year inference, runner counters. */
interface RunSnapshot {
  v: 1;
  pipeline: PipelineSnapshot;
  inputs: Record<string, { refTime: number; years: { year: number; lastMonth: number } }>;
  counters: { findingsByDetector: Record<string, number>; duplicateMessages: number };
}

export interface RunMetrics {
  findingsByDetector: Record<string, number>;
  actions: Record<string, number>;
  checkpoints: number;
  checkpointSeconds: number;
  lastCheckpointSeconds: number;
  checkpointFailures: number;
  duplicateMessages: number;
}

interface PendingDecision {
  decision: Decision;
  key: string;
  acted: boolean | null;
}

// Moved to src/policy/decision-key.ts (ClickHouse rows use it too); re-exported for existing importers.
export { decisionKey };

function fmtErr(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Runner {
  readonly pipeline: DetectPipeline;
  readonly inputs: InputState[];
  readonly metrics: RunMetrics = { findingsByDetector: {}, actions: {}, checkpoints: 0, checkpointSeconds: 0, lastCheckpointSeconds: 0, checkpointFailures: 0, duplicateMessages: 0 };
  readonly startedAt: number;
  private readonly cfg: FloodgateConfig;
  private readonly store: Store;
  private readonly log: RunLog;
  private readonly now: () => number;
  private readonly checkpointMs: number;
  private readonly pollMs: number;
  private readonly hook: ActionHook;
  private readonly needsWebhook: boolean;

  private messages: Message[] = [];
  private findings: Finding[] = [];
  private decisions: PendingDecision[] = [];
  /** Keys whose actions finished while their decision was still buffered. */
  private readonly actedKeys = new Set<string>();
  private actionChain: Promise<void> = Promise.resolve();
  private currentDecision: { key: string; ts: number } | undefined;

  private gate: Promise<void> | undefined;
  private checkpointing: Promise<void> | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private housekeeping: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(opts: RunnerOptions) {
    this.cfg = opts.config;
    this.store = opts.store;
    this.log = opts.log ?? (() => undefined);
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.checkpointMs = Math.max(10, opts.checkpointMs ?? 2000);
    this.pollMs = opts.pollMs ?? 250;
    this.pipeline = new DetectPipeline(
      this.cfg,
      {
        onMessage: (m) => {
          this.messages.push(structuredClone(m)); // as emitted (the correlator may still touch a finished root)
        },
        onFinding: (f) => {
          this.findings.push(f);
          this.metrics.findingsByDetector[f.detector] = (this.metrics.findingsByDetector[f.detector] ?? 0) + 1;
        },
        onDecision: (d) => this.onDecision(d),
      },
      { dns: opts.dns },
    );
    this.hook = createActionRunner(
      this.cfg,
      (rec) => this.onActionRecord(rec),
      {
        runner: opts.runner,
        fetch: opts.fetch,
        outbox: this.store,
        queuedMailOf: (account) => this.queuedMailOf(account),
      },
    );
    this.needsWebhook = this.hook.actuator.config.webhooks.targets.length > 0;
    this.inputs = this.cfg.inputs.map((inp) => {
      let refTime = Date.now();
      try {
        refTime = statSync(inp.path).mtimeMs;
      } catch {
        // not there yet: followed once it appears
      }
      return {
        path: inp.path,
        refTime,
        ctx: envelopeContext({ file: inp.path, format: inp.format, zone: opts.zone, refTime, defaultHost: inp.host }),
        follower: null,
        pos: undefined,
        lines: 0,
        lastBatchAt: 0,
        rotations: 0,
      };
    });
  }

  /** The policy actuator's records also feed this (for the API's own actuator). */
  countAction(rec: ActionRecord): void {
    const k = `${rec.action}|${rec.ok ? 'true' : 'false'}`;
    this.metrics.actions[k] = (this.metrics.actions[k] ?? 0) + 1;
  }

  /** Restore the last checkpoint and start following. */
  async start(): Promise<void> {
    if (this.started) throw new Error('Runner already started');
    this.started = true;
    const pruned = this.store.prune(this.cfg.store.retentionDays);
    const restored = this.restore();
    this.log('info', 'starting', { inputs: this.inputs.length, restored, pruned, checkpointMs: this.checkpointMs, dryRun: this.cfg.policy.dryRun });
    // Decisions committed whose actions had not finished before the last stop.
    for (const p of this.store.pendingDecisions()) this.enqueue(p.decision, p.key);
    void this.hook.actuator.retryPendingWebhooks().catch((e: unknown) => this.log('warn', 'webhook retry failed', { error: fmtErr(e) }));
    for (const inp of this.inputs) {
      const f = new Follower(inp.path, {
        startAt: inp.pos,
        pollMs: this.pollMs,
        onLines: (batch, pos) => this.onLines(inp, batch, pos),
        onRotate: (info) => {
          inp.rotations++;
          this.log(info.kind === 'resume-lost' ? 'warn' : 'info', 'rotation', { input: inp.path, kind: info.kind });
        },
        onError: (e) => this.log('warn', 'input error', { input: inp.path, error: e.message, code: (e as { code?: string }).code }),
      });
      inp.follower = f;
      await f.start();
    }
    this.timer = setInterval(() => void this.checkpoint().catch(() => undefined), this.checkpointMs);
    this.housekeeping = setInterval(() => {
      try {
        const n = this.store.prune(this.cfg.store.retentionDays);
        if (n > 0) this.log('info', 'pruned', { rows: n });
      } catch (e) {
        this.log('error', 'prune failed', { error: fmtErr(e) });
      }
      void this.hook.actuator.retryPendingWebhooks().catch(() => undefined);
    }, 3600_000);
    this.housekeeping.unref();
  }

  private restore(): boolean {
    const positions = this.store.positions();
    for (const inp of this.inputs) {
      const p = positions.get(inp.path);
      if (p) {
        inp.pos = p.position;
        inp.lines = p.lines;
      }
    }
    const text = this.store.snapshotText();
    if (text === undefined) return false;
    const s = JSON.parse(text) as RunSnapshot;
    this.pipeline.restore(s.pipeline);
    for (const inp of this.inputs) {
      const st = s.inputs[inp.path];
      if (st && positions.has(inp.path)) {
        inp.refTime = st.refTime;
        inp.ctx.years.restoreState(st.years);
      }
    }
    Object.assign(this.metrics.findingsByDetector, s.counters.findingsByDetector);
    this.metrics.duplicateMessages = s.counters.duplicateMessages;
    // An operator's unlock after the snapshot: the policy must not think the account still locked.
    for (const a of this.store.unlockedAccounts()) if (this.pipeline.policy.isLocked(a)) this.pipeline.policy.unlocked(a);
    return true;
  }

  private async onLines(inp: InputState, batch: { line: string; offset: number }[], pos: FollowPosition): Promise<void> {
    while (this.gate) await this.gate;
    // From here to the end: synchronous, so a checkpoint sees all of this batch or none of it.
    const lp = this.pipeline.lines;
    const ctx = inp.ctx;
    for (let i = 0; i < batch.length; i++) {
      const l = batch[i]!;
      const rec = lp.envelope(l.line, l.offset, ctx);
      if (rec !== undefined) this.pipeline.feed(rec);
    }
    inp.pos = pos;
    inp.lines += batch.length;
    inp.lastBatchAt = this.now();
    this.dirty = true;
  }

  /** The committed position: the last batch's, or the follower's own when it moved past skipped lines of the same file. */
  private positionOf(inp: InputState): FollowPosition | undefined {
    const ours = inp.pos;
    const f = inp.follower?.position();
    if (ours && f && f.dev === ours.dev && f.ino === ours.ino && f.offset > ours.offset) return f;
    return ours;
  }

  /** Mark state changed outside of input (e.g. an operator's unlock) so the next checkpoint writes it. */
  touch(): void {
    this.dirty = true;
  }

  /** Commit buffers + positions + snapshot in one transaction (coalesces concurrent calls). */
  checkpoint(force = false): Promise<void> {
    if (this.checkpointing) return this.checkpointing;
    if (!force && !this.dirty && this.messages.length === 0 && this.findings.length === 0 && this.decisions.length === 0) return Promise.resolve();
    let open!: () => void;
    this.gate = new Promise<void>((r) => (open = r));
    this.checkpointing = (async () => {
      try {
        await this.pipeline.drain();
        // Synchronous from here to the commit.
        const t0 = performance.now();
        const positions = new Map<string, { position: FollowPosition; lines: number }>();
        const inputs: RunSnapshot['inputs'] = {};
        for (const inp of this.inputs) {
          const p = this.positionOf(inp);
          if (p) positions.set(inp.path, { position: p, lines: inp.lines });
          inputs[inp.path] = { refTime: inp.refTime, years: inp.ctx.years.state() };
        }
        const decisions = this.decisions.map((d) => {
          if (d.acted === false && this.actedKeys.has(d.key)) return { ...d, acted: true };
          return d;
        });
        const snap: RunSnapshot = {
          v: 1,
          pipeline: this.pipeline.snapshot(),
          inputs,
          counters: { findingsByDetector: this.metrics.findingsByDetector, duplicateMessages: this.metrics.duplicateMessages },
        };
        const r = this.store.checkpoint({ findings: this.findings, decisions, messages: this.messages, positions, snapshot: JSON.stringify(snap) });
        for (const d of this.decisions) this.actedKeys.delete(d.key);
        const counts = { messages: this.messages.length, findings: this.findings.length, decisions: this.decisions.length };
        this.messages = [];
        this.findings = [];
        this.decisions = [];
        this.dirty = false;
        if (r.duplicateMessages > 0) {
          this.metrics.duplicateMessages += r.duplicateMessages;
          this.log('warn', 'messages already stored were skipped', { count: r.duplicateMessages });
        }
        const secs = (performance.now() - t0) / 1000;
        this.metrics.checkpoints++;
        this.metrics.checkpointSeconds += secs;
        this.metrics.lastCheckpointSeconds = secs;
        this.log('debug', 'checkpoint', { ...counts, ms: Math.round(secs * 1000) });
      } catch (e) {
        this.metrics.checkpointFailures++;
        this.log('error', 'checkpoint failed; results stay buffered and are retried', { error: fmtErr(e) });
        throw e;
      } finally {
        this.gate = undefined;
        this.checkpointing = undefined;
        open();
      }
    })();
    return this.checkpointing;
  }

  /** Stop following, commit a final checkpoint, wait for running actions. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.housekeeping) clearInterval(this.housekeeping);
    await Promise.all(this.inputs.map((i) => i.follower?.stop()));
    if (this.checkpointing) await this.checkpointing.catch(() => undefined);
    await this.checkpoint(true);
    await this.actionChain;
    this.log('info', 'stopped', this.summary());
  }

  /**
   * `--once`: read every input to the end it has now, then stop. An input is
   * done when its position reaches the last complete line present at start,
   * or when it has delivered nothing for a while (missing file, no newline).
   */
  async runOnce(): Promise<void> {
    const targets = this.inputs.map((inp) => endOf(inp.path));
    await this.start();
    const quietMs = Math.max(1500, this.pollMs * 8);
    const t0 = this.now();
    for (;;) {
      const done = this.inputs.every((inp, i) => {
        const t = targets[i];
        const p = this.positionOf(inp);
        if (t && p && p.dev === t.dev && p.ino === t.ino && p.offset >= t.offset) return true;
        if (t === undefined || t.offset === 0) return this.now() - Math.max(inp.lastBatchAt, t0) > quietMs;
        return false;
      });
      if (done) break;
      const stalled = this.inputs.every((inp) => this.now() - Math.max(inp.lastBatchAt, t0) > quietMs * 4);
      if (stalled) {
        this.log('warn', 'an input did not reach its end; stopping anyway', {});
        break;
      }
      await new Promise((r) => setTimeout(r, Math.min(50, this.pollMs)));
    }
    await this.stop();
  }

  summary(): Record<string, unknown> {
    const s = this.pipeline.stats;
    return {
      lines: s.lines,
      events: s.events,
      messages: s.messages,
      findings: this.pipeline.counters.findings,
      decisions: this.pipeline.counters.decisions,
      byAction: this.pipeline.counters.byAction,
      unknown: s.unknown,
      malformed: s.malformed,
      checkpoints: this.metrics.checkpoints,
    };
  }

  /** Metrics for /metrics: bounded labels only (detector, action, input path), never an account or IP. */
  metricFamilies(): MetricFamily[] {
    const s = this.pipeline.stats;
    const c = (name: string, help: string, value: number): MetricFamily => ({ name, help, type: 'counter', samples: [{ value }] });
    const byLabel = (name: string, help: string, label: string, rec: Record<string, number>): MetricFamily => ({
      name,
      help,
      type: 'counter',
      samples: Object.entries(rec).map(([k, v]) => ({ labels: { [label]: k }, value: v })),
    });
    return [
      c('floodgate_lines_total', 'Log lines read', s.lines),
      c('floodgate_events_total', 'Events parsed', s.events),
      c('floodgate_messages_total', 'Messages correlated', s.messages),
      c('floodgate_parse_unknown_total', 'Lines of a supported program no parser shape matched', s.unknown),
      c('floodgate_parse_malformed_total', 'Lines without a recognisable envelope', s.malformed),
      c('floodgate_parse_unclaimed_total', 'Lines of programs floodgate does not parse', s.unclaimed),
      byLabel('floodgate_findings_total', 'Findings by detector', 'detector', this.metrics.findingsByDetector),
      byLabel('floodgate_decisions_total', 'Policy decisions by action', 'action', this.pipeline.counters.byAction),
      {
        name: 'floodgate_actions_total',
        help: 'Action records by kind and outcome (this process)',
        type: 'counter',
        samples: Object.entries(this.metrics.actions).map(([k, v]) => {
          const [kind = '', ok = ''] = k.split('|');
          return { labels: { kind, ok }, value: v };
        }),
      },
      c('floodgate_checkpoints_total', 'Checkpoints committed (this process)', this.metrics.checkpoints),
      c('floodgate_checkpoint_failures_total', 'Checkpoints that failed (results kept and retried)', this.metrics.checkpointFailures),
      c('floodgate_checkpoint_seconds_total', 'Time spent committing checkpoints', this.metrics.checkpointSeconds),
      { name: 'floodgate_checkpoint_last_seconds', help: 'Duration of the last checkpoint', type: 'gauge', samples: [{ value: this.metrics.lastCheckpointSeconds }] },
      c('floodgate_store_duplicate_messages_total', 'Messages skipped because already stored (should stay 0)', this.metrics.duplicateMessages),
      { name: 'floodgate_follower_rotations_total', help: 'Rotations seen per input (this process)', type: 'counter', samples: this.inputs.map((i) => ({ labels: { input: i.path }, value: i.rotations })) },
      { name: 'floodgate_input_lines_total', help: 'Lines processed per input', type: 'counter', samples: this.inputs.map((i) => ({ labels: { input: i.path }, value: i.lines })) },
      { name: 'floodgate_correlator_open', help: 'Open queue ids in the correlator', type: 'gauge', samples: [{ value: this.pipeline.correlator.size }] },
    ];
  }

  /** Per-input lag for /health. */
  inputStatus(): { path: string; lines: number; lagBytes: number | null; rotations: number }[] {
    return this.inputs.map((inp) => {
      const p = this.positionOf(inp);
      let lag: number | null = null;
      try {
        const st = statSync(inp.path);
        if (p && st.ino === p.ino && st.dev === p.dev) lag = Math.max(0, st.size - p.offset);
        else if (!p) lag = st.size;
      } catch {
        lag = null;
      }
      return { path: inp.path, lines: inp.lines, lagBytes: lag, rotations: inp.rotations };
    });
  }

  // ---- decisions and actions ----

  private onDecision(d: Decision): void {
    const key = decisionKey(d);
    const needs = (d.action === 'lock' && d.account !== undefined) || (this.needsWebhook && d.action !== 'none');
    this.decisions.push({ decision: d, key, acted: needs ? false : null });
    if (needs) this.enqueue(d, key);
  }

  /** Actions run one at a time, in decision order. */
  private enqueue(d: Decision, key: string): void {
    this.actionChain = this.actionChain.then(() => this.execute(d, key)).catch((e: unknown) => this.log('error', 'action failed', { error: fmtErr(e) }));
  }

  private async execute(d: Decision, key: string): Promise<void> {
    if (this.store.decisionActed(key)) {
      this.log('info', 'decision already acted on before a restart; not repeated', { action: d.action });
    } else if (d.action === 'lock' && d.account !== undefined && this.store.lockedByFloodgate(d.account)) {
      this.log('info', 'account already locked by floodgate; lock not repeated', { dryRun: d.dryRun });
    } else {
      this.currentDecision = { key, ts: d.ts };
      try {
        await this.hook.execute(d);
      } finally {
        this.currentDecision = undefined;
      }
    }
    this.actedKeys.add(key);
    this.store.markActed(key);
  }

  private onActionRecord(rec: ActionRecord): void {
    this.countAction(rec);
    this.store.recordAction(rec, this.currentDecision?.key);
    this.log(rec.ok ? 'info' : 'warn', 'action', { action: rec.action, ok: rec.ok, dryRun: rec.dryRun, changed: rec.changed, by: rec.by, ...(rec.error ? { code: rec.error.code } : {}) });
  }

  /** For hold (the policy's and an operator's): the account's recent senders and the queue ids the correlator ties to it. */
  queuedMailOf(account: string): QueuedMailHints {
    return { senders: this.sendersOf(account), queueIds: this.pipeline.correlator.queueIdsOf(account) };
  }

  private sendersOf(account: string): string[] {
    const since = (this.currentDecision?.ts ?? this.now()) - this.cfg.policy.correlationWindowMs;
    const out = new Set(this.store.sendersOf(account, since));
    const a = account.toLowerCase();
    for (const m of this.messages) if (m.saslUser?.toLowerCase() === a && m.sender !== undefined && m.lastTs >= since) out.add(m.sender);
    return [...out];
  }
}

/** Where the file at `path` ends now: after its last complete line. */
function endOf(path: string): { dev: number; ino: number; offset: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    const size = st.size;
    const buf = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const n = Math.min(buf.length, end);
      const got = readSync(fd, buf, 0, n, end - n);
      const nl = buf.subarray(0, got).lastIndexOf(10);
      if (nl >= 0) return { dev: st.dev, ino: st.ino, offset: end - n + nl + 1 };
      end -= n;
    }
    return { dev: st.dev, ino: st.ino, offset: 0 };
  } finally {
    closeSync(fd);
  }
}
