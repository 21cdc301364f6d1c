import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText, expectCooldownRule } from '../test/helpers/detect.js';
import { recipientFanoutDetector } from './recipient-fanout.js';

const H = 3600;
const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);

let qn = 0x2000000000;
function qid(): string {
  return (qn++).toString(16).toUpperCase();
}

type Flow = [t: number, lines: string[]];

/** One submission by `user` to `rcpts`, delivered (remote via smtp, local via lmtp), then removed. */
function submission(t: number, user: string, rcpts: string[]): Flow {
  const q = qid();
  const s = at(t);
  const lines = [
    `${s} mx1 postfix/submission/smtpd[100]: ${q}: client=unknown[203.0.113.9], sasl_method=PLAIN, sasl_username=${user}`,
    `${s} mx1 postfix/qmgr[102]: ${q}: from=<${user}>, size=2400, nrcpt=${rcpts.length} (queue active)`,
  ];
  for (const r of rcpts) {
    const d = r.slice(r.indexOf('@') + 1);
    lines.push(
      d === 'example.com'
        ? `${s} mx1 postfix/lmtp[104]: ${q}: to=<${r}>, relay=mail.example.com[10.0.0.5]:7025, delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.1.5 Delivery OK)`
        : `${s} mx1 postfix/smtp[103]: ${q}: to=<${r}>, relay=mx.${d}[198.51.100.7]:25, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)`,
    );
  }
  lines.push(`${s} mx1 postfix/qmgr[102]: ${q}: removed`);
  return [t, lines];
}

function lines(...flows: Flow[][]): string[] {
  const all = flows.flat();
  all.sort((a, b) => a[0] - b[0]);
  return all.flatMap((f) => f[1]);
}

function run(text: string[], config: Record<string, unknown> = {}): Finding[] {
  const { findings } = detectText(text, { detectors: [recipientFanoutDetector], configs: { 'recipient-fanout': config } });
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f).toMatchObject({ type: 'finding', detector: 'recipient-fanout', signals: ['fanout'], entity: { kind: 'account' } });
    expect(f.evidence.length).toBeGreaterThan(0);
    expect(f.evidence.length).toBeLessThanOrEqual(10);
  }
  return findings;
}

/** `perHour` messages per hour to one recipient each at the domains `domain(k)`. */
function steady(user: string, perHour: number, fromH: number, hours: number, rcpt: (k: number) => string): Flow[] {
  const out: Flow[] = [];
  for (let k = 0; k < perHour * hours; k++) out.push(submission(Math.floor(fromH * H + (k * H) / perHour), user, [rcpt(k)]));
  return out;
}

const hourOf = (f: Finding) => Math.floor((f.ts - T0) / 3600_000);

describe('recipient-fanout', () => {
  it('flags fan-out to 80 external domains within an hour (no history: fixed threshold)', () => {
    const spam = steady('mallory@example.com', 80, 0, 1, (k) => `info${k}@shop${k}.example-${k % 9}.net`);
    const findings = run(lines(spam));
    expect(findings.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(findings);
    const f = findings[0]!;
    expect(f.entity.id).toBe('mallory@example.com');
    expect(f.window).toMatchObject({ mode: 'fixed', trigger: 'domains', domains: 51, recipients: 51, localRecipients: 0, thresholds: { domains: 50, recipients: 300 } });
    expect(f.summary).toMatch(/^mallory@example\.com mailed 51 distinct external domains in the last 1 h, above the fixed threshold of 50/);
    expect((f.window.sampleDomains as string[]).at(-1)).toBe('shop50.example-5.net');
    expect(f.evidence.at(-1)!.note).toBe('queue ' + f.evidence.at(-1)!.note!.slice(6, 16) + ': 1 external, 0 local recipient(s)');
    expect(f.ts).toBe(T0 + Math.floor((50 * H) / 80) * 1000);
  });

  it('does not flag 300 internal recipients (an announcement), but counts them', () => {
    const staff = Array.from({ length: 300 }, (_, i) => `staff${i}@example.com`);
    const text = lines([submission(10, 'hr@example.com', staff.slice(0, 150)), submission(20, 'hr@example.com', staff.slice(150))]);
    expect(run(text)).toHaveLength(0);
    // the same account also writing to 60 outside domains is flagged, and the local ones are reported apart
    const mixed = lines(
      [submission(10, 'hr@example.com', staff.slice(0, 150))],
      steady('hr@example.com', 60, 0, 1, (k) => `x@d${k}.example.org`),
    );
    const f = run(mixed);
    expect(f.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(f);
    expect(f[0]!.window).toMatchObject({ domains: 51, localRecipients: 150 });
    expect(f[0]!.summary).toContain('150 local recipients');
  });

  it('distinct recipients above the fixed threshold trigger too', () => {
    // 350 people at 10 domains: few domains, many recipients
    const rc = Array.from({ length: 350 }, (_, i) => `p${i}@corp${i % 10}.example.net`);
    const f = run(lines([submission(5, 'sales@example.com', rc.slice(0, 200)), submission(65, 'sales@example.com', rc.slice(200))]));
    expect(f.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(f);
    expect(f[0]!.window).toMatchObject({ trigger: 'recipients', domains: 10, recipients: 350 });
  });

  it('learns its baseline of new domains: a widening under the fixed threshold is flagged once history exists', () => {
    // 2 days of ~3 messages per hour to a rotating set of 12 correspondents' domains
    const usual = steady('alice@example.com', 3, 0, 48, (k) => `bob@corr${k % 12}.example.net`);
    const burst = steady('alice@example.com', 40, 48, 1, (k) => `win${k}@lottery${k}.example.biz`);
    const f = run(lines(usual, burst));
    expect(f.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(f);
    expect(hourOf(f[0]!)).toBe(48);
    expect(f[0]!.window).toMatchObject({ mode: 'baseline', trigger: 'domains', newDomains: 21, thresholds: { domains: 20 } });
    expect(f[0]!.summary).toMatch(/alice@example\.com mailed 21 new external domains in the last 1 h, above its learned threshold of 20/);
    // the same 40 domains without history: under the fixed 50
    expect(run(lines(burst))).toHaveLength(0);
  });

  it('a newsletter mailing the same 120 domains every hour is not flagged once learned; 80 new domains are', () => {
    const news = 'news@example.com';
    const usual = steady(news, 120, 0, 31, (k) => `list@member${k % 120}.example.net`);
    const spam = steady(news, 80, 30, 1, (k) => `x@fresh${k}.example.org`);
    const declared = { thresholdsByAccount: { 'News@Example.com': { maxDomains: 200 } } };
    expect(run(lines(usual), declared)).toHaveLength(0);
    const f = run(lines(usual, spam), declared);
    expect(f.length).toBeGreaterThanOrEqual(1);
    expect(f.every((x) => hourOf(x) === 30)).toBe(true);
    // 120 distinct domains an hour is its normal; 21 new ones is not
    expect(f[0]!.window).toMatchObject({ mode: 'baseline', newDomains: 21, thresholds: { domains: 20 } });
    expect(f[0]!.window.domains).toBeGreaterThan(120);
    // defaults: flagged on the first day only, the baseline then takes over
    const d = run(lines(usual));
    expect(d.length).toBeGreaterThan(0);
    expect(d.every((x) => x.window.mode === 'fixed' && hourOf(x) <= 26)).toBe(true);
  });

  it('re-alerts at most once per cooldown, unless the severity climbs', () => {
    const spam = steady('mallory@example.com', 400, 0, 2, (k) => `x${k}@d${k}.example.net`);
    const f = run(lines(spam));
    expect(f.length).toBeGreaterThanOrEqual(3);
    expectCooldownRule(f);
    expect(f.at(-1)!.score).toBeGreaterThan(f[0]!.score);
  });

  it('counts the recipients of mail held in the queue as they settle, not when it leaves days later', () => {
    // 60 messages to 60 domains, every one deferred by the receiver (throttled), and deferred again on the retries 5 and 15 min later
    const flows: Flow[] = [];
    for (let k = 0; k < 60; k++) {
      const t = k * 30;
      const q = qid();
      const to = `info${k}@shop${k}.example-${k % 9}.net`;
      const d = (ts: number) =>
        `${at(ts)} mx1 postfix/smtp[103]: ${q}: to=<${to}>, relay=mx.shop${k}.net[198.51.100.7]:25, delay=2, delays=0.1/0/1.8/0.1, dsn=4.7.0, status=deferred (host mx.shop${k}.net[198.51.100.7] said: 421 4.7.0 Try again later)`;
      flows.push([t, [`${at(t)} mx1 postfix/submission/smtpd[100]: ${q}: client=unknown[203.0.113.9], sasl_method=PLAIN, sasl_username=mallory@example.com`, `${at(t)} mx1 postfix/qmgr[102]: ${q}: from=<mallory@example.com>, size=2400, nrcpt=1 (queue active)`, d(t)]]);
      flows.push([t + 300, [d(t + 300)]]);
      flows.push([t + 900, [d(t + 900)]]);
    }
    const held = detectText(lines(flows), { detectors: [recipientFanoutDetector], flush: false });
    expect(held.messages).toHaveLength(0);
    expect(held.findings).toHaveLength(1);
    expect(held.findings[0]!.window).toMatchObject({ mode: 'fixed', trigger: 'domains', domains: 51 });
    expect(held.findings[0]!.ts).toBe(T0 + (900 + 50 * 30) * 1000);
    // without the retries that show the mail is held, nothing before the messages end
    const firstAttempts = flows.filter((_, i) => i % 3 === 0);
    expect(detectText(lines(firstAttempts), { detectors: [recipientFanoutDetector], flush: false }).findings).toEqual([]);
  });

  it('config: {} parses to the documented defaults', () => {
    expect(recipientFanoutDetector.config.parse({})).toMatchObject({
      windowMs: 3_600_000,
      maxDomains: 50,
      maxRecipients: 300,
      thresholdsByAccount: {},
      baselineMinPeriods: 24,
      baselineK: 4,
      cooldownMs: 1_800_000,
      maxKeys: 100_000,
    });
    expect(() => recipientFanoutDetector.config.parse({ thresholdsByAccount: { a: { domains: 1 } } })).toThrow();
  });
});
