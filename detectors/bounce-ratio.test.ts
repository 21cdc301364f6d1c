import { describe, expect, it } from 'vitest';
import type { Message } from '../src/correlator/message.js';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText } from '../test/helpers/detect.js';
import { bounceRatioDetector } from './bounce-ratio.js';

const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);

let qn = 0x3000000000;
function qid(): string {
  return (qn++).toString(16).toUpperCase();
}

type Outcome = 'sent' | 'bounced' | 'deferred';
type Flow = [t: number, lines: string[]];

function delivery(s: string, q: string, to: string, o: Outcome): string {
  const d = to.slice(to.indexOf('@') + 1);
  const relay = `mx.${d}[198.51.100.7]:25`;
  if (o === 'sent') return `${s} mx1 postfix/smtp[103]: ${q}: to=<${to}>, relay=${relay}, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK)`;
  if (o === 'bounced')
    return `${s} mx1 postfix/smtp[103]: ${q}: to=<${to}>, relay=${relay}, delay=0.9, delays=0.1/0/0.4/0.4, dsn=5.1.1, status=bounced (host ${relay.slice(0, -3)} said: 550 5.1.1 <${to}>: Recipient address rejected: User unknown (in reply to RCPT TO command))`;
  return `${s} mx1 postfix/smtp[103]: ${q}: to=<${to}>, relay=${relay}, delay=3.2, delays=0.1/0/3/0.1, dsn=4.7.0, status=deferred (host ${relay.slice(0, -3)} said: 421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume (in reply to end of DATA command))`;
}

/** A submission by `user` delivered straight to the Internet with the given outcomes. */
function submission(t: number, user: string, rcpts: [string, Outcome][]): Flow {
  const q = qid();
  const s = at(t);
  return [
    t,
    [
      `${s} mx1 postfix/submission/smtpd[100]: ${q}: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=${user}`,
      `${s} mx1 postfix/qmgr[102]: ${q}: from=<x${t}@yahoo.com.tw>, size=3100, nrcpt=${rcpts.length} (queue active)`,
      ...rcpts.map(([r, o]) => delivery(s, q, r, o)),
      `${s} mx1 postfix/qmgr[102]: ${q}: removed`,
    ],
  ];
}

/** Zimbra-style: handed to amavis on 10024, re-injected from 10025 as a second queue id, then delivered. */
function filtered(t: number, user: string, to: string, o: Outcome): Flow {
  const q1 = qid();
  const q2 = qid();
  const s = at(t);
  const s2 = at(t + 1);
  return [
    t,
    [
      `${s} mx1 postfix/submission/smtpd[100]: ${q1}: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=${user}`,
      `${s} mx1 postfix/qmgr[102]: ${q1}: from=<${user}>, size=3100, nrcpt=1 (queue active)`,
      `${s2} mx1 postfix/smtp[105]: ${q1}: to=<${to}>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.1, delays=0.22/0.02/0/0.81, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as ${q2})`,
      `${s2} mx1 postfix/smtpd[106]: ${q2}: client=localhost[127.0.0.1]`,
      `${s2} mx1 postfix/qmgr[102]: ${q2}: from=<${user}>, size=3600, nrcpt=1 (queue active)`,
      `${s2} mx1 postfix/qmgr[102]: ${q1}: removed`,
      delivery(s2, q2, to, o),
      `${s2} mx1 postfix/qmgr[102]: ${q2}: removed`,
    ],
  ];
}

function lines(flows: Flow[]): string[] {
  return [...flows].sort((a, b) => a[0] - b[0]).flatMap((f) => f[1]);
}

function check(findings: Finding[]): Finding[] {
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f).toMatchObject({ type: 'finding', detector: 'bounce-ratio', signals: ['bounce-spike'], entity: { kind: 'account' } });
    expect(f.evidence.length).toBeLessThanOrEqual(10);
  }
  return findings;
}

function run(text: string[], config: Record<string, unknown> = {}) {
  const r = detectText(text, { detectors: [bounceRatioDetector], configs: { 'bounce-ratio': config } });
  check(r.findings);
  return r;
}

describe('bounce-ratio', () => {
  it('flags a spike of bounces and deferrals, with the failed addresses and dsn as evidence', () => {
    // a stolen account mailing guessed addresses: 3 of 5 fail
    const flows: Flow[] = [];
    for (let k = 0; k < 40; k++) {
      const o: Outcome = k % 5 < 2 ? 'sent' : k % 5 === 2 ? 'deferred' : 'bounced';
      flows.push(submission(k * 30, 'Mallory@example.com', [[`user${k}@guess${k % 7}.example.net`, o]]));
    }
    const { findings } = run(lines(flows));
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f.entity.id).toBe('mallory@example.com');
    expect(f.window).toMatchObject({ recipients: 20, failed: 12, share: 0.6, threshold: 0.3, minRecipients: 20 });
    expect(f.ts).toBe(T0 + 19 * 30_000);
    expect(f.severity).toBe('high');
    expect(f.score).toBe(66);
    expect(f.summary).toBe('12 of 20 recipients (60%) of mail from mallory@example.com bounced or were deferred in the last 1 h, above the 30% threshold.');
    expect(f.evidence).toHaveLength(8);
    const last = f.evidence.at(-1)!;
    expect(last.note).toMatch(/^queue [0-9A-F]{10}: 1 of 1 recipient\(s\) failed: user19@guess5\.example\.net \(5\.1\.1 bounced\)$/);
    expect(f.evidence.some((e) => e.note!.includes('(4.7.0 deferred)'))).toBe(true);
    expect(f.window.sampleFailures).toContainEqual({ address: 'user19@guess5.example.net', dsn: '5.1.1 bounced' });
  });

  it('does not flag low volume, nor a normal share of failures', () => {
    const few = Array.from({ length: 10 }, (_, k) => submission(k * 60, 'alice@example.com', [[`typo${k}@example.org`, 'bounced']]));
    expect(run(lines(few)).findings).toHaveLength(0);
    const normal = Array.from({ length: 100 }, (_, k) => submission(k * 30, 'bob@example.com', [[`c${k}@corp.example.org`, k % 10 === 0 ? 'bounced' : 'sent']]));
    expect(run(lines(normal)).findings).toHaveLength(0);
    // the same 10 failures at a lower minimum volume are enough
    expect(run(lines(few), { minRecipients: 10 }).findings).toHaveLength(1);
  });

  it('counts a filtered message once, by its final delivery, not the amavis hand-off', () => {
    const flows = Array.from({ length: 30 }, (_, k) => filtered(k * 20, 'carol@example.com', `r${k}@remote.example.net`, k % 2 === 0 ? 'bounced' : 'sent'));
    const { findings, messages } = run(lines(flows));
    expect(messages).toHaveLength(30);
    expect(messages[0]!.hops).toHaveLength(2);
    expect(findings).toHaveLength(1);
    expect(findings[0]!.window).toMatchObject({ recipients: 20, failed: 10, share: 0.5 });
  });

  it('ignores recipients whose last status is only the hand-off to a content filter', () => {
    const base = (i: number, recipients: Message['recipients']): Message => ({
      host: 'mx1',
      queueId: `4${String(i).padStart(9, '0')}`,
      saslUser: 'dave@example.com',
      origin: 'smtp',
      sender: 'dave@example.com',
      recipients,
      firstTs: T0 + i * 1000,
      lastTs: T0 + i * 1000,
      hops: [],
      complete: false,
      end: 'idle',
      src: { file: 'mail.log', offset: i * 100 },
    });
    // crafted messages straight into the engine: such records only reach a
    // message with no later hop when it is emitted incomplete (idle, flush)
    const r = detectText([], { detectors: [bounceRatioDetector] });
    let i = 0;
    // 40 hand-offs to amavis whose outcome is unknown, then 15 failures and 15 deliveries
    for (; i < 40; i++) r.engine.onMessage(base(i, [{ address: `h${i}@x.example.net`, status: 'sent', dsn: '2.0.0', ts: 0, attempts: 1, viaFilter: true }]));
    for (; i < 70; i++) r.engine.onMessage(base(i, [{ address: `f${i}@x.example.net`, status: i % 2 ? 'bounced' : 'sent', dsn: i % 2 ? '5.7.1' : '2.0.0', ts: 0, attempts: 1 }]));
    const findings = check(r.findings);
    expect(findings).toHaveLength(1);
    expect(findings[0]!.window).toMatchObject({ recipients: 20, failed: 10 });
  });

  it('counts a held message as its recipients settle, each once: a throttled flood is flagged while its mail is still queued', () => {
    // 10 messages, each with 1 recipient sent and 2 deferred (TSS04), retried 5 and 15 min later and deferred again
    const flows: Flow[] = [];
    const queued: [t: number, q: string, to: string[]][] = [];
    for (let k = 0; k < 10; k++) {
      const [t, ls] = submission(k * 30, 'mallory@example.com', [[`a${k}@one.example`, 'sent'], [`b${k}@two.example`, 'deferred'], [`c${k}@three.example`, 'deferred']]);
      flows.push([t, ls.filter((l) => !l.endsWith(': removed'))]);
      queued.push([t, /: ([0-9A-F]{10}): /.exec(ls[0]!)![1]!, [`b${k}@two.example`, `c${k}@three.example`]]);
    }
    const retry = (after: number, o: Outcome) => queued.map(([t, q, to]): Flow => [t + after, to.map((r) => delivery(at(t + after), q, r, o))]);
    const held = [...flows, ...retry(300, 'deferred'), ...retry(900, 'deferred')];
    const { findings } = detectText(lines(held), { detectors: [bounceRatioDetector], configs: { 'bounce-ratio': {} }, flush: false });
    // no message has ended (no flush): the finding comes from recipients settled at the 15 min retries
    expect(check(findings)).toHaveLength(1);
    expect(findings[0]!.window).toMatchObject({ recipients: 21, failed: 14 });
    expect(findings[0]!.ts).toBe(T0 + (900 + 6 * 30) * 1000);
    // Without the retries nothing is flagged before the messages end.
    expect(detectText(lines([...flows, ...retry(300, 'deferred')]), { detectors: [bounceRatioDetector], flush: false }).findings).toEqual([]);

    // The mail finally leaves at the 35 min retry; a message ending with every recipient settled counts none of them again.
    const done = queued.map(([t, q]): Flow => [t + 2101, [`${at(t + 2101)} mx1 postfix/qmgr[102]: ${q}: removed`]]);
    const later = submission(2400, 'mallory@example.com', [['z@four.example', 'bounced']]);
    const all = run(lines([...held, ...retry(2100, 'sent'), ...done, later]), { cooldownMs: 0 });
    expect(all.messages).toHaveLength(11);
    expect(all.findings.at(-1)!.window).toMatchObject({ recipients: 31, failed: 21 });
  });

  it('does not count a held message\'s deferrals to our own mailboxes (a mailbox server down): only receivers elsewhere refusing', () => {
    const held = (domain: string): string[] => {
      const flows: Flow[] = [];
      for (let k = 0; k < 30; k++) {
        const t = k * 60;
        const [, ls] = submission(t, 'anna@example.com', [[`c${k}@${domain}`, 'deferred']]);
        const q = /: ([0-9A-F]{10}): /.exec(ls[0]!)![1]!;
        flows.push([t, ls.filter((l) => !l.endsWith(': removed'))]);
        for (const after of [300, 900]) flows.push([t + after, [delivery(at(t + after), q, `c${k}@${domain}`, 'deferred')]]);
      }
      return lines(flows);
    };
    const site = { localDomains: ['example.com'] };
    // 30 messages to colleagues, every one deferred for 15 min and more: the same lines to another domain are a spike
    expect(detectText(held('example.com'), { detectors: [bounceRatioDetector], site, flush: false }).findings).toEqual([]);
    expect(detectText(held('partner.example.net'), { detectors: [bounceRatioDetector], site, flush: false }).findings).toHaveLength(1);
  });

  it('re-alerts at most once per cooldown', () => {
    const flows = Array.from({ length: 300 }, (_, k) => submission(k * 30, 'eve@example.com', [[`v${k}@x${k}.example.net`, 'bounced']]));
    const { findings } = run(lines(flows));
    expect(findings.length).toBe(5); // 2.5 h of failures: at 10 min, 40, 70, 100, 130
    for (let j = 1; j < findings.length; j++) expect(findings[j]!.ts - findings[j - 1]!.ts).toBeGreaterThanOrEqual(30 * 60_000);
    expect(findings[0]!.severity).toBe('critical');
    expect(findings[0]!.score).toBe(100);
  });

  it('config: {} parses to the documented defaults', () => {
    expect(bounceRatioDetector.config.parse({})).toEqual({
      windowMs: 3_600_000,
      minRecipients: 20,
      threshold: 0.3,
      countDeferred: true,
      cooldownMs: 1_800_000,
      evidenceSamples: 8,
      maxKeys: 100_000,
    });
    expect(() => bounceRatioDetector.config.parse({ threshold: 2 })).toThrow();
  });
});
