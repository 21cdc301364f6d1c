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
import ipaddr from 'ipaddr.js';
import { KeptStore, type DecisionAction, type EntityFlags, type FindingRef, type Kept } from './kept.js';

export type { DecisionAction } from './kept.js';

function fmtDelay(ms: number): string {
  if (ms < 1000) return 'along with'; // also a volume finding a little before a forged-sender one about the same messages
  if (ms < 120_000) return `${Math.round(ms / 1000)} s after`;
  return `${Math.round(ms / 60_000)} min after`;
}

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

const MAX_FINDINGS_PER_ENTITY = 20;
const MAX_ENTITIES = 200_000;

/** Evidence kept per finding (the newest). */
const KEPT_EVIDENCE = 3;

export class Policy {
  private readonly entities = new KeptStore(MAX_ENTITIES);
  private lockTimes: number[] = [];
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
    // the store keeps a copy of the key's characters, not this string
    const key = `${entity.kind}:${entity.id}`;
    const e = this.entities.touch(key);
    const since = f.ts - this.cfg.correlationWindowMs;
    let start = f.ts;
    for (const x of f.evidence) if (x.ts < start) start = x.ts;
    const findings = this.entities.findings(e).filter((x) => x.ts >= since);
    findings.push(this.entities.add({ ts: f.ts, start, detector: f.detector, signals: f.signals, score: f.score, summary: f.summary, evidence: f.evidence.slice(-KEPT_EVIDENCE) }));
    if (findings.length > MAX_FINDINGS_PER_ENTITY) findings.shift(); // freed by setFindings
    this.entities.setFindings(e, findings);
    const st = this.entities.flags(e);

    const { score, signalsSeen, detectors, pair } = this.risk(findings);
    // Decided when the newest evidence is known: a late finding (an active DNS
    // answer) carries the older time of the login it is about.
    let now = f.ts;
    for (const x of findings) if (x.ts > now) now = x.ts;
    const reasons: string[] = [];
    const ip = f.ip ?? (f.entity.kind === 'ip' ? f.entity.id : undefined);
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
      this.entities.setLastAlertTs(e, now);
      return { ...base, evidence: evidence(), action: 'none', hold: false, reasons: [`allowlisted (${allowed})`, ...this.describe(findings)] };
    }

    // Signal weights are an account's risk. An IP is never locked: it is
    // alerted on when one of its findings is strong enough by itself
    // (spraying, an open relay, a wide mynetworks, SPF spoofing of our domain),
    // whatever those signals weigh towards an account's lock.
    const ipScore = entity.kind === 'ip' ? Math.max(score, ...findings.map((x) => x.score)) : score;
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
      this.entities.setLastAlertTs(e, now);
      if (lockBlocked) this.entities.setLockBlocked(e, true);
    } else {
      this.entities.setLocked(e, true);
      this.lockTimes.push(now);
    }
    this.entities.setLastAction(e, action);
    if (pair !== undefined && entity.kind === 'account') reasons.push(pair);
    reasons.push(...this.describe(findings));
    return { ...base, evidence: evidence(), action, hold: action === 'lock' && this.cfg.holdOnLock, reasons };
  }

  /** An operator unlocked the account: it may be locked again on new evidence. */
  unlocked(account: string): void {
    const e = this.entities.find(`account:${account.toLowerCase()}`);
    if (e >= 0) {
      this.entities.setLocked(e, false);
      this.entities.setLastAction(e, 'none');
      this.entities.setLockBlocked(e, false);
      this.entities.setFindings(e, []);
    }
  }

  /** An operator locked the account by hand: the policy treats it as locked (never locks it again) until unlocked. */
  lockedByOperator(account: string): void {
    const e = this.entities.ensure(`account:${account.toLowerCase()}`);
    this.entities.setLocked(e, true);
    this.entities.setLastAction(e, 'lock');
  }

  isLocked(account: string): boolean {
    const e = this.entities.find(`account:${account.toLowerCase()}`);
    return e >= 0 && this.entities.flags(e).locked;
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
    const entities: [string, EntityFlags & { findings: FindingRef[] }][] = [];
    for (const [k, e] of this.entities.entries()) entities.push([k, { findings: this.entities.findings(e).map((f) => f.ref()), ...this.entities.flags(e) }]);
    return { entities, lockTimes: this.lockTimes };
  }

  restore(s: unknown): void {
    const d = s as { entities: [string, EntityFlags & { findings: FindingRef[] }][]; lockTimes: number[] };
    this.entities.clear();
    for (const [k, v] of d.entities) {
      const e = this.entities.ensure(k);
      this.entities.setFindings(
        e,
        v.findings.map((f) => this.entities.add({ ...f, start: f.start ?? f.ts })),
      );
      this.entities.setLocked(e, v.locked);
      this.entities.setLastAlertTs(e, v.lastAlertTs ?? -Infinity);
      this.entities.setLastAction(e, v.lastAction);
      if (v.lockBlocked !== undefined) this.entities.setLockBlocked(e, v.lockBlocked);
    }
    this.lockTimes = d.lockTimes;
  }
}
