import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import type { SiteConfig } from '../src/detect/site.js';
import { at, detectText } from '../test/helpers/detect.js';
import { senderMismatchDetector } from './sender-mismatch.js';

let qn = 0x2a00000000;
function qid(): string {
  return (qn++).toString(16).toUpperCase();
}

/** One SMTP AUTH submission, from smtpd `client=` to qmgr `removed`. */
function submission(t: number, account: string, sender: string, ip = '203.0.113.9', rcpt = 'victim@gmail.com'): string[] {
  const q = qid();
  return [
    `${at(t)} mail postfix/submission/smtpd[2201]: ${q}: client=unknown[${ip}], sasl_method=LOGIN, sasl_username=${account}`,
    `${at(t)} mail postfix/cleanup[2202]: ${q}: message-id=<${q}@spam.example>`,
    `${at(t)} mail postfix/qmgr[2203]: ${q}: from=<${sender}>, size=2311, nrcpt=1 (queue active)`,
    `${at(t + 1)} mail postfix/smtp[2204]: ${q}: to=<${rcpt}>, relay=gmail-smtp-in.l.google.com[142.250.102.26]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 OK)`,
    `${at(t + 1)} mail postfix/qmgr[2203]: ${q}: removed`,
  ];
}

const site: Partial<SiteConfig> = {
  localDomains: ['example.com', 'example.org'],
  aliases: { 'bob@example.com': ['info@example.com', '@bob-family.example'] },
};

function run(lines: string[], config: Record<string, unknown> = {}, siteCfg = site): Finding[] {
  const { findings } = detectText(lines, { detectors: [senderMismatchDetector], configs: { 'sender-mismatch': config }, site: siteCfg });
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f.detector).toBe('sender-mismatch');
    expect(f.signals).toEqual(['forged-sender']);
    expect(f.entity.kind).toBe('account');
    expect(f.evidence.length).toBeGreaterThan(0);
    expect(f.evidence.length).toBeLessThanOrEqual(10);
  }
  return findings;
}

describe('sender-mismatch', () => {
  it('config parses {} with documented defaults', () => {
    const c = senderMismatchDetector.config.parse({});
    expect(c).toMatchObject({ windowMs: 3_600_000, minMessages: 3, minDomains: 2, cooldownMs: 3_600_000 });
  });

  it('flags the yahoo.com.tw flood from a stolen account as critical, naming forged senders', () => {
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) lines.push(...submission(i * 20, 'alice@example.com', `r${1000 + i}x@yahoo.com.tw`, '203.0.113.9', `t${i}@gmail.com`));
    const f = run(lines);
    expect(f.length).toBeGreaterThanOrEqual(1);
    // first report at the 3rd forged message (high), then one escalation to critical; no more within the cooldown
    expect(f.map((x) => x.severity)).toEqual(['high', 'critical']);
    const crit = f[1]!;
    expect(crit.entity.id).toBe('alice@example.com');
    expect(crit.account).toBe('alice@example.com');
    expect(crit.ip).toBe('203.0.113.9');
    expect(crit.summary).toContain('r1000x@yahoo.com.tw');
    expect(crit.summary).toContain('alice@example.com');
    expect(crit.summary).toMatch(/sent 10 messages/);
    expect(crit.window).toMatchObject({ messages: 10, foreignMessages: 10, domains: 1, minMessages: 3 });
    expect((crit.window.sampleSenders as string[]).every((s) => s.endsWith('@yahoo.com.tw'))).toBe(true);
    expect(crit.score).toBeGreaterThanOrEqual(85);
    expect(crit.evidence[0]!.file).toBe('scenario.log');
    expect(crit.evidence[0]!.note).toContain('yahoo.com.tw');
  });

  it('many forged domains is critical quickly', () => {
    const doms = ['yahoo.com.tw', 'hinet.net', 'qq.com'];
    const lines = doms.flatMap((d, i) => submission(i * 5, 'carol@example.com', `promo@${d}`));
    const f = run(lines);
    expect(f.map((x) => x.severity)).toEqual(['high', 'critical']);
    expect(f[1]!.window).toMatchObject({ domains: 3, foreignDomains: 3 });
    expect(f[1]!.summary).toContain('3 distinct domains');
  });

  it('does not flag an account sending as itself, a configured alias, an alias domain, or the null sender', () => {
    const lines: string[] = [];
    for (let i = 0; i < 30; i++) {
      const sender = ['bob@example.com', 'info@example.com', 'kids@bob-family.example', '', 'BOB@Example.com'][i % 5]!;
      lines.push(...submission(i * 10, 'bob@example.com', sender, '198.51.100.20'));
    }
    // a `user` login (no domain) owns user@<any local domain>
    for (let i = 0; i < 5; i++) lines.push(...submission(400 + i, 'dave', i % 2 ? 'dave@example.com' : 'dave@example.org', '198.51.100.21'));
    expect(run(lines)).toEqual([]);
  });

  it('stays quiet under the thresholds, and reports local-domain-only mismatches as medium', () => {
    // two forged messages to one foreign domain: below minMessages and minDomains
    const quiet = [...submission(0, 'erin@example.com', 'a@gmail.com'), ...submission(10, 'erin@example.com', 'b@gmail.com')];
    expect(run(quiet)).toEqual([]);
    // an assistant sending as the boss (delegated send-as not listed as alias)
    const local: string[] = [];
    for (let i = 0; i < 4; i++) local.push(...submission(i * 30, 'assistant@example.com', 'boss@example.com'));
    const f = run(local);
    expect(f).toHaveLength(1);
    expect(f[0]!.severity).toBe('medium');
    expect(f[0]!.summary).toContain('boss@example.com');
  });

  it('windows expire: a forged message per two hours never accumulates', () => {
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) lines.push(...submission(i * 7200, 'frank@example.com', 'frank.private@gmail.com'));
    expect(run(lines)).toEqual([]);
  });

  it('honours its config', () => {
    const lines = submission(0, 'gina@example.com', 'x@yahoo.com.tw');
    const f = run(lines, { minMessages: 1 });
    expect(f).toHaveLength(1);
    expect(f[0]!.severity).toBe('high');
  });
});
