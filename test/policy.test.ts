import { describe, expect, it } from 'vitest';
import type { Finding, Signal } from '../src/detect/finding.js';
import { policyConfigSchema } from '../src/policy/config.js';
import { Policy } from '../src/policy/policy.js';

const t0 = Date.UTC(2026, 10, 27, 10);
let n = 0;

function finding(account: string, detector: string, signals: Signal[], score: number, ts = t0, extra: Partial<Finding> = {}): Finding {
  return {
    type: 'finding',
    detector,
    entity: { kind: 'account', id: account },
    severity: 'high',
    score,
    ts,
    signals,
    summary: `${detector} on ${account}`,
    window: {},
    evidence: [{ file: 'mail.log', offset: n++ * 100, ts }],
    ...extra,
  };
}

const policy = (cfg: Record<string, unknown> = {}) => new Policy(policyConfigSchema.parse(cfg));

describe('policy', () => {
  it('keeps the newest 20 findings of a busy account without disturbing the others, in snapshots too', () => {
    const p = policy({ alertCooldownMs: 1 });
    for (let i = 0; i < 60; i++) {
      p.onFinding(finding('busy@example.com', i % 2 ? 'send-flood' : 'recipient-fanout', [i % 2 ? 'volume' : 'fanout'], 40, t0 + i * 1000));
      if (i % 3 === 0) p.onFinding(finding(`calm${i % 9}@example.com`, 'login-anomaly', ['new-network'], 25, t0 + i * 1000));
    }
    const snap = JSON.parse(JSON.stringify(p.snapshot())) as { entities: [string, { findings: { ts: number; summary: string }[] }][] };
    const byKey = new Map(snap.entities);
    const busy = byKey.get('account:busy@example.com')!.findings;
    expect(busy.map((f) => f.ts)).toEqual(Array.from({ length: 20 }, (_, i) => t0 + (40 + i) * 1000));
    expect(busy.at(-1)!.summary).toBe('send-flood on busy@example.com');
    // calm0 got findings at i = 0, 9, ..., 54; calm3 at 3, 12, ...; calm6 at 6, 15, ...
    expect(byKey.get('account:calm0@example.com')!.findings.map((f) => f.ts)).toEqual([0, 9, 18, 27, 36, 45, 54].map((i) => t0 + i * 1000));
    expect([...byKey.keys()].filter((k) => k.startsWith('account:calm')).sort()).toEqual(['account:calm0@example.com', 'account:calm3@example.com', 'account:calm6@example.com']);
    const q = policy({ alertCooldownMs: 1 });
    q.restore(snap);
    expect(JSON.parse(JSON.stringify(q.snapshot()))).toEqual(snap);
  });

  it('defaults to dry-run and never locks on volume alone', () => {
    const p = policy();
    const d = p.onFinding(finding('news@example.com', 'send-flood', ['volume'], 100));
    expect(d).toMatchObject({ action: 'alert', dryRun: true, account: 'news@example.com' });
    expect(d!.reasons.join(' ')).toContain('volume without evidence of compromise');
    expect(p.onFinding(finding('news@example.com', 'recipient-fanout', ['fanout'], 100, t0 + 1000))).toBeUndefined(); // cooldown, no escalation
    expect(p.isLocked('news@example.com')).toBe(false);
  });

  it('locks on volume together with a compromise signal, once, with reasons and evidence', () => {
    const p = policy();
    expect(p.onFinding(finding('u@example.com', 'sender-mismatch', ['forged-sender'], 90))).toMatchObject({ action: 'alert' });
    const d = p.onFinding(finding('u@example.com', 'send-flood', ['volume'], 90, t0 + 60_000));
    expect(d).toMatchObject({ action: 'lock', hold: true, dryRun: true, entity: { kind: 'account', id: 'u@example.com' } });
    expect(d!.score).toBeGreaterThanOrEqual(70);
    expect(d!.detectors.sort()).toEqual(['send-flood', 'sender-mismatch']);
    expect(d!.reasons.some((r) => r.startsWith('sender-mismatch:'))).toBe(true);
    expect(d!.evidence.map((e) => e.file)).toEqual(['mail.log', 'mail.log']);
    // idempotent: more evidence never locks twice
    expect(p.onFinding(finding('u@example.com', 'send-flood', ['volume'], 100, t0 + 120_000))).toBeUndefined();
    expect(p.isLocked('u@example.com')).toBe(true);
    // after an operator unlock, new evidence may lock again
    p.unlocked('u@example.com');
    p.onFinding(finding('u@example.com', 'sender-mismatch', ['forged-sender'], 90, t0 + 200_000));
    expect(p.onFinding(finding('u@example.com', 'send-flood', ['volume'], 90, t0 + 201_000))).toMatchObject({ action: 'lock' });
  });

  it('forgets findings outside the correlation window', () => {
    const p = policy({ correlationWindowMs: 600_000 });
    p.onFinding(finding('v@example.com', 'sender-mismatch', ['forged-sender'], 90));
    const d = p.onFinding(finding('v@example.com', 'send-flood', ['volume'], 90, t0 + 700_000));
    expect(d?.action).not.toBe('lock');
  });

  it('alerts instead of locking when the hourly lock budget is spent (circuit breaker)', () => {
    const p = policy({ lockBudgetPerHour: 2 });
    const actions: string[] = [];
    for (let i = 0; i < 4; i++) {
      const a = `victim${i}@example.com`;
      p.onFinding(finding(a, 'sender-mismatch', ['forged-sender'], 95, t0 + i * 1000));
      const d = p.onFinding(finding(a, 'send-flood', ['volume'], 95, t0 + i * 1000 + 1));
      actions.push(d!.action);
      if (d!.action === 'alert') expect(d!.reasons[0]).toContain('lock budget of 2/h exhausted');
    }
    expect(actions).toEqual(['lock', 'lock', 'alert', 'alert']);
    // an hour later the budget is back
    p.onFinding(finding('late@example.com', 'sender-mismatch', ['forged-sender'], 95, t0 + 3_700_000));
    expect(p.onFinding(finding('late@example.com', 'send-flood', ['volume'], 95, t0 + 3_700_001))?.action).toBe('lock');
  });

  it('records allowlisted accounts, IPs and CIDRs without acting on them', () => {
    const p = policy({ allowlist: { accounts: ['Boss@example.com'], ips: ['203.0.113.5'], cidrs: ['198.51.100.0/24'] } });
    const a = p.onFinding(finding('boss@example.com', 'send-flood', ['volume', 'forged-sender'], 100));
    expect(a).toMatchObject({ action: 'none', hold: false });
    expect(a!.reasons[0]).toBe('allowlisted (account boss@example.com)');
    const b = p.onFinding(finding('x@example.com', 'send-flood', ['volume', 'forged-sender'], 100, t0, { ip: '198.51.100.77' }));
    expect(b!.reasons[0]).toBe('allowlisted (cidr 198.51.100.0/24)');
    expect(p.isLocked('x@example.com')).toBe(false);
  });

  it('turns IP-only findings into alerts on the IP, never a lock', () => {
    const p = policy({ weights: { spraying: 80 } });
    const d = p.onFinding({ ...finding('ignored', 'auth-attack', ['spraying'], 100), entity: { kind: 'ip', id: '192.0.2.9' } });
    expect(d).toMatchObject({ action: 'alert', entity: { kind: 'ip', id: '192.0.2.9' } });
    expect(d!.account).toBeUndefined();
  });

  it('reports every invalid option by key', () => {
    const r = policyConfigSchema.safeParse({ lockScore: 200, dryrun: false });
    expect(r.success).toBe(false);
    const keys = r.error!.issues.map((i) => i.path.join('.') || i.code);
    expect(keys).toEqual(expect.arrayContaining(['lockScore', 'unrecognized_keys']));
  });

  it('snapshots and restores its state (locked accounts stay locked)', () => {
    const p = policy();
    p.onFinding(finding('w@example.com', 'sender-mismatch', ['forged-sender'], 90));
    p.onFinding(finding('w@example.com', 'send-flood', ['volume'], 90, t0 + 1));
    const q = policy();
    q.restore(JSON.parse(JSON.stringify(p.snapshot())));
    expect(q.isLocked('w@example.com')).toBe(true);
    expect(q.onFinding(finding('w@example.com', 'send-flood', ['volume'], 100, t0 + 2))).toBeUndefined();
  });
});

describe('policy: what it keeps of a finding', () => {
  const ev = (offset: number, ts: number, note?: string) => (note === undefined ? { file: 'mail.log', offset, ts } : { file: 'mail.log', offset, ts, note });

  it('writes the summaries and evidence of earlier findings into a decision as they came, also after a snapshot', () => {
    const feed = (p: Policy, restore: boolean) => {
      p.onFinding(finding('k@example.com', 'login-anomaly', ['new-network'], 90, t0, { summary: 'k from a new network "ü" \u2028', evidence: [ev(1, t0 - 5000, 'first'), ev(2, t0 - 4000), ev(3, t0 - 3000, 'x'), ev(4, t0, 'newest')] }));
      const q = restore ? policy() : p;
      if (restore) q.restore(JSON.parse(JSON.stringify(p.snapshot())));
      return q.onFinding(finding('k@example.com', 'send-flood', ['volume'], 90, t0 + 60_000, { evidence: [ev(9, t0 + 60_000, 'flood')] }))!;
    };
    for (const restore of [false, true]) {
      const d = feed(policy(), restore);
      expect(d.action).toBe('lock');
      // the newest 3 of the first finding's evidence, then the second's
      expect(d.evidence).toEqual([ev(2, t0 - 4000), ev(3, t0 - 3000, 'x'), ev(4, t0, 'newest'), ev(9, t0 + 60_000, 'flood')]);
      expect(Object.keys(d.evidence[0]!)).toEqual(['file', 'offset', 'ts']);
      expect(Object.keys(d.evidence[1]!)).toEqual(['file', 'offset', 'ts', 'note']);
      expect(d.reasons).toContain('login-anomaly: k from a new network "ü" \u2028');
    }
  });

  it('keeps evidence JSON cannot carry (NaN, -0, extra keys) exactly', () => {
    const p = policy();
    const odd = [
      { file: 'mail.log', offset: 0, ts: Number.NaN },
      { file: 'mail.log', offset: -0, ts: t0, extra: 1 } as unknown as Finding['evidence'][number],
      { ts: t0, file: 'mail.log', offset: 5 },
    ];
    p.onFinding(finding('n@example.com', 'login-anomaly', ['new-network'], 90, t0, { evidence: odd }));
    const d = p.onFinding(finding('n@example.com', 'send-flood', ['volume'], 90, t0 + 1000))!;
    expect(d.evidence[0]!.ts).toBeNaN();
    expect(Object.is(d.evidence[1]!.offset, -0)).toBe(true);
    expect(d.evidence[1]).toHaveProperty('extra', 1);
    expect(Object.keys(d.evidence[2]!)).toEqual(['ts', 'file', 'offset']);
  });
});

describe('policy and operators', () => {
  it('never locks an account an operator already locked by hand', () => {
    const p = policy();
    p.lockedByOperator('Op@example.com');
    expect(p.isLocked('op@example.com')).toBe(true);
    p.onFinding(finding('op@example.com', 'sender-mismatch', ['forged-sender'], 95));
    expect(p.onFinding(finding('op@example.com', 'send-flood', ['volume'], 95, t0 + 1))).toBeUndefined();
  });
});

describe('policy: corroborated volume and takeover', () => {
  const MIN = 60_000;
  const acct = 'c@example.com';
  /** login-anomaly's "sent mail from a never-seen network" finding, its evidence the first login from it. */
  const takeover = (score: number, ts = t0, evidenceTs = ts) => finding(acct, 'login-anomaly', ['new-network'], score, ts, { evidence: [{ file: 'mail.log', offset: n++ * 100, ts: evidenceTs }] });

  it('locks as soon as anomalous volume follows a strong sign of takeover, scoring the pair c + v·(100 − c)/100', () => {
    const p = policy();
    // alone: 65 × 25% = 16, below the alert score
    expect(p.onFinding(takeover(65))).toBeUndefined();
    const d = p.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 35, t0 + 86_000));
    // the weighted sum would be 16 + 35 × 30% = 27: not even an alert
    expect(d).toMatchObject({ action: 'lock', score: 77, ts: t0 + 86_000 }); // 65 + 35 × 0.35 = 77.25
    expect(d!.reasons[0]).toBe('corroborated: recipient-fanout (fanout, score 35) 86 s after login-anomaly (new-network, score 65): risk 77 instead of the weighted 27');
    expect(d!.signals.sort()).toEqual(['fanout', 'new-network']);
  });

  it('needs the corroborating finding at minScore: 59 stays below, 60 locks (60 + 30 × 0.4 = 72)', () => {
    const below = policy();
    below.onFinding(takeover(59));
    expect(below.onFinding(finding(acct, 'send-flood', ['volume'], 30, t0 + MIN))?.action).not.toBe('lock');
    const at = policy();
    at.onFinding(takeover(60));
    expect(at.onFinding(finding(acct, 'send-flood', ['volume'], 30, t0 + MIN))).toMatchObject({ action: 'lock', score: 72 });
  });

  it('needs the volume within withinMs after it: 30 min locks, 30 min + 1 s does not', () => {
    const within = policy();
    within.onFinding(takeover(65));
    expect(within.onFinding(finding(acct, 'send-flood', ['volume'], 30, t0 + 30 * MIN))?.action).toBe('lock');
    const late = policy();
    late.onFinding(takeover(65));
    expect(late.onFinding(finding(acct, 'send-flood', ['volume'], 30, t0 + 30 * MIN + 1000))?.action).not.toBe('lock');
  });

  it("never pairs with volume from before the takeover began: the owner's announcement, then a phone on a new network", () => {
    const p = policy();
    p.onFinding(finding(acct, 'send-flood', ['volume'], 48, t0)); // the announcement: alert at most
    p.onFinding(takeover(65, t0 + 10 * MIN));
    // the volume re-reports after the new network, but it began before it
    const d = p.onFinding(finding(acct, 'send-flood', ['volume'], 73, t0 + 25 * MIN));
    expect(d?.action).not.toBe('lock');
    expect(p.isLocked(acct)).toBe(false);
  });

  it('a volume finding a little before the sign of takeover pairs when the takeover began earlier (its first evidence line)', () => {
    // a forged sender is reported after 3 forged messages; fan-out about the same messages may come first
    const p = policy();
    p.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 42, t0 + 20_000));
    const forged = finding(acct, 'sender-mismatch', ['forged-sender'], 74, t0 + 25_000, { evidence: [{ file: 'mail.log', offset: 1, ts: t0 }] });
    expect(p.onFinding(forged)).toMatchObject({ action: 'lock', score: 85 }); // 74 + 42 × 0.26 = 84.9
    const q = policy();
    q.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 42, t0 + 20_000));
    const late = finding(acct, 'sender-mismatch', ['forged-sender'], 74, t0 + 25_000, { evidence: [{ file: 'mail.log', offset: 1, ts: t0 + 21_000 }] });
    expect(q.onFinding(late)?.action).not.toBe('lock');
  });

  it('volume alone never locks, however strong; corroboration cannot be configured to count volume', () => {
    const p = policy();
    p.onFinding(finding(acct, 'send-flood', ['volume'], 100, t0));
    const d = p.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 100, t0 + MIN));
    expect(d?.action ?? 'none').not.toBe('lock');
    expect(p.isLocked(acct)).toBe(false);
    expect(policyConfigSchema.safeParse({ corroboration: { signals: ['volume'] } }).success).toBe(false);
    expect(policyConfigSchema.safeParse({ corroboration: { signals: ['fanout'] } }).success).toBe(false);
  });

  it('a bounce spike does not corroborate by default (a stale list): it only counts through the weighted sum', () => {
    const p = policy();
    p.onFinding(finding(acct, 'bounce-ratio', ['bounce-spike'], 78, t0));
    const d = p.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 46, t0 + 3 * MIN));
    expect(d?.action).not.toBe('lock');
    expect(d?.score ?? 41).toBe(41); // 78 × 35% + 46 × 30% = 41.1
    // an admin who wants it counted says so
    const q = policy({ corroboration: { signals: ['bounce-spike'] } });
    q.onFinding(finding(acct, 'bounce-ratio', ['bounce-spike'], 78, t0));
    expect(q.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 46, t0 + 3 * MIN))?.action).toBe('lock');
  });

  it('a higher lockScore makes a corroborated pair wait for more volume; disabled, only the weighted sum counts', () => {
    const p = policy({ lockScore: 80 });
    p.onFinding(takeover(65));
    expect(p.onFinding(finding(acct, 'send-flood', ['volume'], 30, t0 + MIN))?.action).not.toBe('lock'); // 75.5
    expect(p.onFinding(finding(acct, 'send-flood', ['volume'], 45, t0 + 2 * MIN))?.action).toBe('lock'); // 65 + 45 × 0.35 = 80.75
    const off = policy({ corroboration: { enabled: false } });
    off.onFinding(takeover(65));
    expect(off.onFinding(finding(acct, 'send-flood', ['volume'], 100, t0 + MIN))?.action).not.toBe('lock'); // 16 + 35
  });

  it('keeps budget, idempotence and the allowlist for corroborated locks', () => {
    const p = policy({ lockBudgetPerHour: 1, allowlist: { accounts: ['boss@example.com'] } });
    for (const a of ['x1@example.com', 'x2@example.com']) {
      p.onFinding(finding(a, 'login-anomaly', ['new-network'], 65, t0));
    }
    expect(p.onFinding(finding('x1@example.com', 'send-flood', ['volume'], 30, t0 + MIN))?.action).toBe('lock');
    expect(p.onFinding(finding('x1@example.com', 'send-flood', ['volume'], 80, t0 + 2 * MIN))).toBeUndefined(); // never twice
    const held = p.onFinding(finding('x2@example.com', 'send-flood', ['volume'], 30, t0 + MIN));
    expect(held?.action).toBe('alert');
    expect(held!.reasons[0]).toContain('lock budget of 1/h exhausted');
    p.onFinding(finding('boss@example.com', 'login-anomaly', ['new-network'], 65, t0));
    expect(p.onFinding(finding('boss@example.com', 'send-flood', ['volume'], 30, t0 + MIN))?.action ?? 'none').toBe('none');
    expect(p.isLocked('boss@example.com')).toBe(false);
  });

  it('stamps a decision with its newest evidence: a late active-DNS finding about an older login', () => {
    const p = policy();
    p.onFinding(finding(acct, 'recipient-fanout', ['fanout'], 32, t0 + 3 * MIN));
    const d = p.onFinding(finding(acct, 'rbl', ['listed-ip'], 70, t0)); // answered after the flood was seen
    expect(d).toMatchObject({ action: 'lock', ts: t0 + 3 * MIN });
  });
});
