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

describe('policy and operators', () => {
  it('never locks an account an operator already locked by hand', () => {
    const p = policy();
    p.lockedByOperator('Op@example.com');
    expect(p.isLocked('op@example.com')).toBe(true);
    p.onFinding(finding('op@example.com', 'sender-mismatch', ['forged-sender'], 95));
    expect(p.onFinding(finding('op@example.com', 'send-flood', ['volume'], 95, t0 + 1))).toBeUndefined();
  });
});
