import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText, expectCooldownRule } from '../test/helpers/detect.js';
import { sendFloodDetector } from './send-flood.js';

const H = 3600;
const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);

// --- a small generator of Postfix submission flows ---------------------------------------

let qn = 0x1000000000;
/** A fresh 10-hex-digit queue id. */
function qid(): string {
  return (qn++).toString(16).toUpperCase();
}

type Flow = [t: number, lines: string[]];

function submission(t: number, user: string, rcpts: string[], sender = user): Flow {
  const q = qid();
  const s = at(t);
  const lines = [
    `${s} mx1 postfix/submission/smtpd[100]: ${q}: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=${user}`,
    `${s} mx1 postfix/qmgr[102]: ${q}: from=<${sender}>, size=1200, nrcpt=${rcpts.length} (queue active)`,
  ];
  for (const r of rcpts) {
    lines.push(`${s} mx1 postfix/smtp[103]: ${q}: to=<${r}>, relay=mx.${r.slice(r.indexOf('@') + 1)}[198.51.100.7]:25, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)`);
  }
  lines.push(`${s} mx1 postfix/qmgr[102]: ${q}: removed`);
  return [t, lines];
}

/** `n` messages per hour, evenly spread, from hour `fromH` for `hours` hours. */
function steady(user: string, perHour: number, fromH: number, hours: number, rcptsPer = 1): Flow[] {
  const out: Flow[] = [];
  const step = H / perHour;
  for (let k = 0; k < perHour * hours; k++) {
    const t = Math.floor(fromH * H + k * step);
    const rc: string[] = [];
    for (let j = 0; j < rcptsPer; j++) rc.push(`r${(k + j) % 40}@partner${j}.example.net`);
    out.push(submission(t, user, rc));
  }
  return out;
}

function lines(...flows: Flow[][]): string[] {
  const all = flows.flat();
  all.sort((a, b) => a[0] - b[0]);
  const out: string[] = [];
  for (const f of all) for (const l of f[1]) out.push(l);
  return out;
}

function run(text: string[], config: Record<string, unknown> = {}): Finding[] {
  const { findings } = detectText(text, { detectors: [sendFloodDetector], configs: { 'send-flood': config } });
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f.detector).toBe('send-flood');
    expect(f.signals).toEqual(['volume']);
    expect(f.entity.kind).toBe('account');
    expect(f.evidence.length).toBeGreaterThan(0);
    expect(f.evidence.length).toBeLessThanOrEqual(10);
  }
  return findings;
}

const hourOf = (f: Finding) => Math.floor((f.ts - T0) / 3600_000);

describe('send-flood', () => {
  it('flags a user jumping from ~5/h for 2 days to 300/h, against its learned baseline', () => {
    const text = lines(steady('alice@example.com', 5, 0, 48), steady('alice@example.com', 300, 48, 1));
    const findings = run(text);
    expect(findings.length).toBeGreaterThanOrEqual(1);
    const f = findings[0]!;
    expect(hourOf(f)).toBe(48); // nothing during the quiet two days
    expect(f.entity.id).toBe('alice@example.com');
    expect(f.window).toMatchObject({ mode: 'baseline', trigger: 'msgsLong', thresholds: { msgsLong: 30 } });
    expect((f.window.baseline as { msgsMean: number }).msgsMean).toBeCloseTo(5, 0);
    expect(f.window.msgsLong).toBe(31); // flagged at the first message above the learned threshold
    expect(f.summary).toMatch(/alice@example\.com submitted 31 messages in the last 1 h, above its learned threshold of 30/);
    // evidence: the latest messages with their sources
    const last = f.evidence.at(-1)!;
    expect(last.file).toBe('scenario.log');
    expect(text.join('\n').slice(last.offset)).toMatch(/^\S+ +\d+ [\d:]+ mx1 postfix\/submission\/smtpd\[100\]: [0-9A-F]{10}: client=/);
    expect(last.note).toMatch(/^queue [0-9A-F]{10}: 1 recipient\(s\), from <alice@example\.com>$/);
  });

  it('the baseline flags a rise that stays under the fixed ceilings; no history → ceilings only', () => {
    const text = lines(steady('dave@example.com', 5, 0, 48), steady('dave@example.com', 100, 48, 1), steady('erin@example.com', 100, 48, 1));
    const findings = run(text);
    expect(new Set(findings.map((f) => f.entity.id))).toEqual(new Set(['dave@example.com']));
    expect(findings[0]!.window).toMatchObject({ mode: 'baseline', trigger: 'msgsLong', msgsLong: 31, msgsShort: 16 });
  });

  it('a newsletter steady at 500/h for 3 days is not flagged once learned, and is at 5000/h', () => {
    const news = 'news@example.com';
    // the admin declared it, so no finding even while the baseline learns
    const findings = run(lines(steady(news, 500, 0, 72), steady(news, 5000, 72, 0.2)), {
      ceilingsByAccount: { 'NEWS@example.com': { maxMsgsLong: 1000, maxMsgsShort: 300 } },
    });
    expect(findings.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(findings);
    const f = findings[0]!;
    expect(hourOf(f)).toBe(72);
    expect(f.window).toMatchObject({ mode: 'baseline', trigger: 'msgsShort', thresholds: { msgsShort: 500, msgsLong: 1000 } });
    expect((f.window.baseline as { msgsMean: number }).msgsMean).toBeGreaterThan(490);
    expect((f.window.baseline as { msgsMean: number }).msgsMean).toBeLessThan(510);
    // flagged within ~6 minutes of the burst: half the learned hourly threshold in 10 min
    expect(f.ts - (T0 + 72 * 3600_000)).toBeLessThan(7 * 60_000);
    expect(f.summary).toMatch(/news@example\.com submitted 501 messages in the last 10 min, above its learned threshold of 500 \(usually 500 ± 0 messages per 1 h/);
  }, 20_000);

  it('with default ceilings, a 500/h newsletter is flagged only until its baseline is learned (about a day)', () => {
    const findings = run(lines(steady('news@example.com', 500, 0, 32)));
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((x) => x.window.mode === 'fixed')).toBe(true);
    expect(Math.max(...findings.map(hourOf))).toBeLessThanOrEqual(26);
  }, 20_000);

  it('fixed ceilings trigger with no history (messages and recipients)', () => {
    const many = Array.from({ length: 250 }, (_, i) => `victim${i}@mail${i % 7}.example.org`);
    const text = lines(steady('bob@example.com', 250, 0, 1), [submission(100, 'carl@example.com', many), submission(160, 'carl@example.com', many)]);
    const findings = run(text);
    const bob = findings.filter((f) => f.entity.id === 'bob@example.com');
    expect(bob.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(bob);
    expect(bob[0]!.window).toMatchObject({ mode: 'fixed', trigger: 'msgsLong', msgsLong: 201, thresholds: { msgsLong: 200 } });
    expect(bob[0]!.summary).toContain('above the fixed ceiling of 200');
    const carl = findings.filter((f) => f.entity.id === 'carl@example.com');
    expect(carl.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(carl);
    expect(carl[0]!.window).toMatchObject({ mode: 'fixed', trigger: 'rcptsShort', rcptsShort: 500, thresholds: { rcptsShort: 300 } });
    expect(carl[0]!.ts).toBe(T0 + 160_000);
  });

  it('severity and score grow with the excess', () => {
    const a = run(lines(steady('a@example.com', 250, 0, 1)))[0]!;
    const b = run(lines(steady('b@example.com', 5000, 0, 0.2)), { cooldownMs: 600_000 });
    expect(b.length).toBeGreaterThanOrEqual(2);
    expectCooldownRule(b, 600_000);
    expect(a.severity).toBe('low');
    expect(a.score).toBe(30);
    expect(b[1]!.score).toBeGreaterThan(b[0]!.score);
    expect(b.at(-1)!.severity).toBe('critical');
    expect(b.at(-1)!.score).toBe(100);
  });

  it('re-alerts at most once per cooldown, unless the severity climbs', () => {
    const text = lines(steady('carol@example.com', 720, 0, 2));
    const findings = run(text);
    expect(findings.length).toBeGreaterThanOrEqual(3);
    expect(findings.length).toBeLessThanOrEqual(12); // 4 half-hours × at most 3 escalations
    expectCooldownRule(findings);
    const noCooldown = run(text, { cooldownMs: 0 });
    expect(noCooldown.length).toBeGreaterThan(100);
  });

  it('ignores messages without a SASL user and lowercases accounts', () => {
    const mixed = lines(steady('Bob@Example.COM', 150, 0, 1), steady('bob@example.com', 150, 0, 1));
    const noSasl = mixed.filter((l) => !l.includes('sasl_username')).map((l) => l);
    expect(run(noSasl)).toHaveLength(0);
    const findings = run(mixed);
    expect(findings.length).toBeGreaterThanOrEqual(1);
    expectCooldownRule(findings);
    expect(findings[0]!.entity.id).toBe('bob@example.com');
  });

  it('config: {} parses to documented defaults; bad keys are rejected', () => {
    const c = sendFloodDetector.config.parse({});
    expect(c).toMatchObject({
      shortWindowMs: 600_000,
      longWindowMs: 3_600_000,
      maxMsgsShort: 60,
      maxMsgsLong: 200,
      maxRcptsShort: 300,
      maxRcptsLong: 1000,
      ceilingsByAccount: {},
      baselineK: 4,
      baselineMinMsgs: 30,
      baselineMinPeriods: 24,
      baselineHalfLifeMs: 7 * 86_400_000,
      cooldownMs: 1_800_000,
    });
    expect(() => sendFloodDetector.config.parse({ ceilingsByAccount: { x: { maxMsgs: 3 } } })).toThrow();
    expect(() => sendFloodDetector.config.parse({ maxMsgsLong: -1 })).toThrow();
  });
});
