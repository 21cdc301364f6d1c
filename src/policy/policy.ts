/**
 * Policy: turns findings into decisions per account. It combines the
 * account's findings within a correlation window into a risk score (the
 * strongest finding per signal, weighted; or, when higher, the combined
 * score of a corroborated pair: a volume finding that closely follows a
 * strong sign of takeover, see PolicyConfig.corroboration), and decides
 * alert / lock:
 *
 * - allowlisted accounts, IPs and CIDRs: recorded, never acted on;
 * - a lock needs a volume signal AND a compromise signal (by default) and
 *   risk ≥ lockScore; volume alone is an alert at most;
 * - idempotent: an account already locked is never locked again (until unlocked);
 * - a budget of locks per hour: past it, the decision is an alert that says so;
 * - alert cooldown per account, unless the action escalates.
 *
 * Deterministic and clock-free: time is the findings' own. Findings about
 * IPs only (spraying, open relay, ...) become alerts on the IP.
 */
import { parseCidrs } from '../detect/site.js';
import { compromiseSignals, volumeSignals, type Finding, type Signal } from '../detect/finding.js';
import type { PolicyConfig } from './config.js';
import { own } from '../detect/windows.js';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import ipaddr from 'ipaddr.js';

function fmtDelay(ms: number): string {
  if (ms < 1000) return 'along with'; // also a volume finding a little before a forged-sender one about the same messages
  if (ms < 120_000) return `${Math.round(ms / 1000)} s after`;
  return `${Math.round(ms / 60_000)} min after`;
}

export type DecisionAction = 'none' | 'alert' | 'lock';

export interface Decision {
  type: 'decision';
  /** The account decided on; absent for IP-only decisions. */
  account?: string;
  entity: { kind: 'account' | 'ip'; id: string };
  action: DecisionAction;
  /** Also hold the account's queued mail (with a lock). */
  hold: boolean;
  dryRun: boolean;
  score: number;
  reasons: string[];
  ts: number;
  /** Detectors whose findings are behind this decision. */
  detectors: string[];
  signals: Signal[];
  /** Evidence of the findings behind it (file + offset), at most 10. */
  evidence: Finding['evidence'];
}

/** A finding as snapshots hold it (and as the policy kept it before `Kept`). */
interface FindingRef {
  ts: number;
  /** Its earliest evidence line (when what it reports began), at most ts. */
  start?: number;
  detector: string;
  signals: Signal[];
  score: number;
  summary: string;
  evidence: Finding['evidence'];
}

/** Evidence kept per finding (the newest). */
const KEPT_EVIDENCE = 3;

/**
 * What the policy keeps of a finding: the numbers it scores on, and its text
 * (summary and newest evidence) as one deflated JSON string, read back only
 * when a decision is written. With 100,000 accounts holding a finding each,
 * an object per evidence line (its note a concatenated string) and a
 * summary string tree per finding cost ~2 KB per account; the JSON is
 * ~550 bytes, deflated ~250 (deflating costs ~10 µs per finding; findings
 * are rare next to log lines).
 */
class Kept {
  constructor(
    readonly ts: number,
    /** Its earliest evidence line (when what it reports began), at most ts. */
    readonly start: number,
    readonly detector: string,
    /** Shared between findings with the same signals (see SignalLists); never mutated. */
    readonly signals: readonly Signal[],
    readonly score: number,
    /** See textOf: a string to parse, or the summary and evidence as they came. */
    private readonly text: string | readonly [string, Finding['evidence']],
  ) {}

  static of(f: Finding, start: number, lists: SignalLists): Kept {
    return new Kept(f.ts, start, f.detector, lists.shared(f.signals), f.score, textOf(f.summary, f.evidence.slice(-KEPT_EVIDENCE)));
  }

  static fromRef(r: FindingRef, lists: SignalLists): Kept {
    return new Kept(r.ts, r.start ?? r.ts, r.detector, lists.shared(r.signals), r.score, textOf(r.summary, r.evidence));
  }

  get summary(): string {
    return typeof this.text === 'string' ? (JSON.parse(unpack(this.text)) as [string])[0] : this.text[0];
  }

  /** A fresh copy of its evidence. */
  get evidence(): Finding['evidence'] {
    if (typeof this.text !== 'string') return this.text[1].map((e) => ({ ...e }));
    const rows = (JSON.parse(unpack(this.text)) as [string, EvidenceRow[]])[1];
    return rows.map((r) => (r.length === 3 ? { file: r[0], offset: r[1], ts: r[2] } : { file: r[0], offset: r[1], ts: r[2], note: r[3] }));
  }

  ref(): FindingRef {
    return { ts: this.ts, start: this.start, detector: this.detector, signals: [...this.signals], score: this.score, summary: this.summary, evidence: this.evidence };
  }
}

/** An evidence line as [file, offset, ts] or [file, offset, ts, note]. */
type EvidenceRow = [string, number, number] | [string, number, number, string];

/**
 * The text of a finding as deflated JSON, [summary, EvidenceRow[]] (see pack),
 * when reading it back gives the same values in the same shape: evidence
 * objects of exactly {file, offset, ts} or {file, offset, ts, note}, in
 * that order, with finite numbers (JSON has no NaN, Infinity or -0). Else
 * (never from the detectors) the summary and evidence are kept as they came.
 */
function textOf(summary: string, evidence: Finding['evidence']): string | readonly [string, Finding['evidence']] {
  const rows: EvidenceRow[] = [];
  for (const e of evidence) {
    const keys = Object.keys(e);
    const n = keys.length;
    const exact =
      (n === 3 || (n === 4 && keys[3] === 'note' && typeof e.note === 'string')) &&
      keys[0] === 'file' &&
      keys[1] === 'offset' &&
      keys[2] === 'ts' &&
      typeof e.file === 'string' &&
      jsonNumber(e.offset) &&
      jsonNumber(e.ts);
    if (!exact) return [summary, evidence];
    rows.push(n === 3 ? [e.file, e.offset, e.ts] : [e.file, e.offset, e.ts, e.note!]);
  }
  return pack(JSON.stringify([summary, rows]));
}

// Small window and hash: the texts are short, and a deflate stream's state is allocated per call.
const DEFLATE = { level: 1, memLevel: 1, windowBits: 10 };

/**
 * Deflated, as a one-byte string (flat, one character per byte). The JSON
 * is well-formed UTF-16 (JSON.stringify escapes lone surrogates), so its
 * UTF-8 bytes read back exactly.
 */
function pack(json: string): string {
  return deflateRawSync(json, DEFLATE).toString('latin1');
}

function unpack(s: string): string {
  return inflateRawSync(Buffer.from(s, 'latin1'), { windowBits: DEFLATE.windowBits }).toString('utf8');
}

function jsonNumber(n: unknown): boolean {
  return typeof n === 'number' && Number.isFinite(n) && !Object.is(n, -0);
}

/** One array per distinct list of signals (a handful exist), not one per finding. */
class SignalLists {
  private readonly lists = new Map<string, readonly Signal[]>();
  private static readonly MAX = 1024;

  shared(signals: readonly Signal[]): readonly Signal[] {
    const k = signals.join(',');
    let l = this.lists.get(k);
    if (l === undefined) {
      l = [...signals];
      if (this.lists.size < SignalLists.MAX) this.lists.set(k, l);
    }
    return l;
  }
}

interface EntityState {
  findings: Kept[];
  locked: boolean;
  lastAlertTs: number;
  lastAction: DecisionAction;
  /** A lock was warranted but the budget held it back (alerted once). */
  lockBlocked?: boolean;
}

const MAX_FINDINGS_PER_ENTITY = 20;
const MAX_ENTITIES = 200_000;

export class Policy {
  private readonly entities = new Map<string, EntityState>();
  private lockTimes: number[] = [];
  /** Kept findings share one array per distinct list of signals (a handful exist). */
  private readonly signalLists = new SignalLists();
  private readonly allowAccounts: Set<string>;
  private readonly allowIps: Set<string>;
  private readonly allowCidrs: ReturnType<typeof parseCidrs>;

  constructor(private readonly cfg: PolicyConfig) {
    this.allowAccounts = new Set(cfg.allowlist.accounts.map((a) => a.toLowerCase()));
    this.allowIps = new Set(cfg.allowlist.ips);
    this.allowCidrs = parseCidrs(cfg.allowlist.cidrs, 'policy.allowlist.cidrs');
  }

  /** Feed a finding; returns the decision it leads to, if any. */
  onFinding(f: Finding): Decision | undefined {
    const account = f.entity.kind === 'account' ? f.entity.id.toLowerCase() : f.account?.toLowerCase();
    const entity = account !== undefined ? { kind: 'account' as const, id: account } : { kind: 'ip' as const, id: f.entity.id };
    // flat, owned: a cons of a view into the log line would keep the line as long as the entity
    const key = own(`${entity.kind}:${entity.id}`);
    let st = this.entities.get(key);
    if (!st) {
      st = { findings: [], locked: false, lastAlertTs: -Infinity, lastAction: 'none' };
      if (this.entities.size >= MAX_ENTITIES) {
        const oldest = this.entities.keys().next().value;
        if (oldest !== undefined) this.entities.delete(oldest);
      }
    }
    this.entities.delete(key);
    this.entities.set(key, st);
    const since = f.ts - this.cfg.correlationWindowMs;
    let start = f.ts;
    for (const e of f.evidence) if (e.ts < start) start = e.ts;
    // concat: an array of its length (a push onto [] reserves 17 places; most accounts have one finding)
    st.findings = st.findings.filter((x) => x.ts >= since).concat([Kept.of(f, start, this.signalLists)]);
    if (st.findings.length > MAX_FINDINGS_PER_ENTITY) st.findings.shift();

    const { score, signalsSeen, detectors, pair } = this.risk(st.findings);
    // Decided when the newest evidence is known: a late finding (an active DNS
    // answer) carries the older time of the login it is about.
    let now = f.ts;
    for (const x of st.findings) if (x.ts > now) now = x.ts;
    const reasons: string[] = [];
    const ip = f.ip ?? (f.entity.kind === 'ip' ? f.entity.id : undefined);
    const findings = st.findings;
    const base = {
      type: 'decision' as const,
      ...(account !== undefined ? { account } : {}),
      entity,
      dryRun: this.cfg.dryRun,
      score,
      ts: now,
      detectors,
      signals: signalsSeen,
    };
    // read back from the kept text only when a decision is written
    const evidence = (): Finding['evidence'] => findings.flatMap((x) => x.evidence).slice(-10);

    const allowed = this.allowlisted(account, ip);
    if (allowed) {
      // Recorded once per cooldown so the audit shows what was ignored and why.
      if (now - st.lastAlertTs < this.cfg.alertCooldownMs) return undefined;
      st.lastAlertTs = now;
      return { ...base, evidence: evidence(), action: 'none', hold: false, reasons: [`allowlisted (${allowed})`, ...this.describe(st.findings)] };
    }

    // Signal weights are an account's risk. An IP is never locked: it is
    // alerted on when one of its findings is strong enough by itself
    // (spraying, an open relay, a wide mynetworks, SPF spoofing of our domain),
    // whatever those signals weigh towards an account's lock.
    const ipScore = entity.kind === 'ip' ? Math.max(score, ...st.findings.map((x) => x.score)) : score;
    if (entity.kind === 'ip') base.score = ipScore;
    let action: DecisionAction = ipScore >= this.cfg.alertScore ? 'alert' : 'none';
    const hasVolume = signalsSeen.some((s) => volumeSignals.has(s));
    const hasCompromise = signalsSeen.some((s) => compromiseSignals.has(s));
    let lockBlocked = false;
    if (entity.kind === 'account') {
      const eligible = !this.cfg.lockNeedsVolumeAndCompromise || (hasVolume && hasCompromise);
      if (!eligible) {
        reasons.push(hasVolume ? 'volume without evidence of compromise: alert only' : 'evidence of compromise without abnormal sending: alert only');
      } else if (score < this.cfg.lockScore) {
        reasons.push(`risk ${score} below the lock threshold ${this.cfg.lockScore}`);
      } else if (st.locked) {
        return undefined; // idempotent: never lock twice
      } else if (!this.budgetAllows(now)) {
        reasons.push(`lock budget of ${this.cfg.lockBudgetPerHour}/h exhausted: alerting instead (circuit breaker)`);
        action = 'alert';
        lockBlocked = true;
      } else {
        action = 'lock';
      }
    }
    if (action === 'none') return undefined;
    if (action === 'alert') {
      if (st.locked) return undefined;
      // A lock the breaker held back is news even within the alert cooldown.
      const escalates = st.lastAction === 'none' || (lockBlocked && st.lockBlocked !== true);
      if (!escalates && now - st.lastAlertTs < this.cfg.alertCooldownMs) return undefined;
      st.lastAlertTs = now;
      if (lockBlocked) st.lockBlocked = true;
    } else {
      st.locked = true;
      this.lockTimes.push(now);
    }
    st.lastAction = action;
    if (pair !== undefined && entity.kind === 'account') reasons.push(pair);
    reasons.push(...this.describe(st.findings));
    return { ...base, evidence: evidence(), action, hold: action === 'lock' && this.cfg.holdOnLock, reasons };
  }

  /** An operator unlocked the account: it may be locked again on new evidence. */
  unlocked(account: string): void {
    const st = this.entities.get(`account:${account.toLowerCase()}`);
    if (st) {
      st.locked = false;
      st.lastAction = 'none';
      st.lockBlocked = false;
      st.findings = [];
    }
  }

  /** An operator locked the account by hand: the policy treats it as locked (never locks it again) until unlocked. */
  lockedByOperator(account: string): void {
    const key = `account:${account.toLowerCase()}`;
    const st = this.entities.get(key) ?? { findings: [], locked: false, lastAlertTs: -Infinity, lastAction: 'none' as DecisionAction };
    st.locked = true;
    st.lastAction = 'lock';
    this.entities.set(key, st);
  }

  isLocked(account: string): boolean {
    return this.entities.get(`account:${account.toLowerCase()}`)?.locked === true;
  }

  /**
   * The account's risk: the weighted sum of the strongest finding per signal,
   * or the corroborated pair's combined score when that is higher (then
   * `pair` says which findings and why).
   */
  private risk(findings: readonly Kept[]): { score: number; signalsSeen: Signal[]; detectors: string[]; pair?: string } {
    const best = new Map<Signal, number>();
    const detectors = new Set<string>();
    for (const f of findings) {
      detectors.add(f.detector);
      for (const s of f.signals) best.set(s, Math.max(best.get(s) ?? 0, f.score));
    }
    let sum = 0;
    for (const [s, v] of best) sum += (this.cfg.weights[s] * v) / 100;
    const score = Math.min(100, Math.round(sum));
    const out = { score, signalsSeen: [...best.keys()], detectors: [...detectors] };
    const p = this.bestPair(findings);
    if (p === undefined || p.score <= score) return out;
    const after = fmtDelay(p.volume.ts - p.compromise.ts);
    const why =
      `corroborated: ${p.volume.detector} (${p.volume.signals.filter((s) => volumeSignals.has(s)).join(', ')}, score ${p.volume.score}) ${after} ` +
      `${p.compromise.detector} (${p.signal}, score ${p.compromise.score}): risk ${p.score} instead of the weighted ${score}`;
    return { ...out, score: p.score, pair: why };
  }

  /**
   * The strongest corroborated pair: a corroborating compromise finding
   * (score ≥ minScore) and a volume finding at most withinMs after it, on an
   * account whose sending was normal until then (no volume finding in the
   * window before the compromise began: volume that predates the takeover
   * is the owner's, and its later re-reports say nothing about the intruder).
   * Findings per account are few (≤ MAX_FINDINGS_PER_ENTITY): pairs are cheap.
   */
  private bestPair(findings: readonly Kept[]): { score: number; compromise: Kept; volume: Kept; signal: Signal } | undefined {
    const c = this.cfg.corroboration;
    if (!c.enabled || c.signals.length === 0) return undefined;
    let firstVolume = Infinity;
    for (const v of findings) if (v.ts < firstVolume && v.signals.some((s) => volumeSignals.has(s))) firstVolume = v.ts;
    if (firstVolume === Infinity) return undefined;
    let out: { score: number; compromise: Kept; volume: Kept; signal: Signal } | undefined;
    for (const a of findings) {
      // the compromise began at its earliest evidence (the first forged message, the first login from the new network)
      if (a.score < c.minScore || firstVolume < a.start) continue;
      const signal = a.signals.find((s) => c.signals.includes(s));
      if (signal === undefined) continue;
      for (const v of findings) {
        if (v.ts - a.ts > c.withinMs || !v.signals.some((s) => volumeSignals.has(s))) continue;
        const score = Math.min(100, Math.round(a.score + (v.score * (100 - a.score)) / 100));
        if (out === undefined || score > out.score) out = { score, compromise: a, volume: v, signal };
      }
    }
    return out;
  }

  private describe(findings: readonly Kept[]): string[] {
    const seen = new Set<string>();
    const out: string[] = [];
    for (let i = findings.length - 1; i >= 0 && out.length < 6; i--) {
      const f = findings[i]!;
      if (seen.has(f.detector)) continue;
      seen.add(f.detector);
      out.push(`${f.detector}: ${f.summary}`);
    }
    return out;
  }

  private budgetAllows(ts: number): boolean {
    this.lockTimes = this.lockTimes.filter((t) => t > ts - 3600_000);
    return this.lockTimes.length < this.cfg.lockBudgetPerHour;
  }

  private allowlisted(account: string | undefined, ip: string | undefined): string | undefined {
    if (account !== undefined && this.allowAccounts.has(account)) return `account ${account}`;
    if (ip !== undefined) {
      if (this.allowIps.has(ip)) return `ip ${ip}`;
      if (this.allowCidrs.length > 0) {
        try {
          const a = ipaddr.process(ip);
          for (const [net, bits] of this.allowCidrs) if (net.kind() === a.kind() && a.match(net, bits)) return `cidr ${net.toString()}/${bits}`;
        } catch {
          // not an IP: nothing to match
        }
      }
    }
    return undefined;
  }

  /** Plain JSON; findings in full (FindingRef), as before they were kept compactly. */
  snapshot(): unknown {
    const entities = [...this.entities].map(([k, st]) => [k, { ...st, findings: st.findings.map((f) => f.ref()) }]);
    return { entities, lockTimes: this.lockTimes };
  }

  restore(s: unknown): void {
    const d = s as { entities: [string, Omit<EntityState, 'findings'> & { findings: FindingRef[] }][]; lockTimes: number[] };
    this.entities.clear();
    for (const [k, v] of d.entities) this.entities.set(k, { ...v, findings: v.findings.map((f) => Kept.fromRef(f, this.signalLists)), lastAlertTs: v.lastAlertTs ?? -Infinity });
    this.lockTimes = d.lockTimes;
  }
}
