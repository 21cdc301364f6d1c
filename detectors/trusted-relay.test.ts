import { describe, expect, it } from 'vitest';
import { findingSchema } from '../src/detect/finding.js';
import { at, detectText } from '../test/helpers/detect.js';
import { trustedRelayDetector } from './trusted-relay.js';

const site = { localDomains: ['example.com'], trustedNetworks: ['127.0.0.0/8', '10.0.0.0/16'], mailHosts: ['10.0.0.5'] };

let qn = 0;
/** One message's lines: smtpd client, cleanup, qmgr, one delivery per recipient, removed. */
function message(s: number, ip: string, sender: string, rcpts: { to: string; origTo?: string; relay?: string }[], sasl?: string): string[] {
  const q = `4A${(0x100000 + qn++).toString(16).toUpperCase()}B`;
  const auth = sasl ? `, sasl_method=PLAIN, sasl_username=${sasl}` : '';
  const lines = [
    `${at(s)} mx postfix/smtpd[100]: connect from unknown[${ip}]`,
    `${at(s)} mx postfix/smtpd[100]: ${q}: client=unknown[${ip}]${auth}`,
    `${at(s)} mx postfix/cleanup[101]: ${q}: message-id=<${q}@x>`,
    `${at(s)} mx postfix/qmgr[102]: ${q}: from=<${sender}>, size=1200, nrcpt=${rcpts.length} (queue active)`,
  ];
  for (const r of rcpts) {
    const local = r.relay === undefined && r.to.endsWith('@example.com');
    const prog = local ? 'postfix/lmtp' : 'postfix/smtp';
    const relay = r.relay ?? (local ? 'mailbox.example.com[10.0.0.5]:7025' : 'mx.remote.example[198.51.100.25]:25');
    const orig = r.origTo ? `, orig_to=<${r.origTo}>` : '';
    lines.push(`${at(s + 1)} mx ${prog}[103]: ${q}: to=<${r.to}>${orig}, relay=${relay}, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 OK)`);
  }
  lines.push(`${at(s + 1)} mx postfix/qmgr[102]: ${q}: removed`);
  return lines;
}

function run(lines: string[], configs?: Record<string, unknown>) {
  const r = detectText(lines, { detectors: [trustedRelayDetector], site, configs });
  for (const f of r.findings) findingSchema.parse(f);
  return r;
}

describe('trusted-relay', () => {
  it('config parses {} into documented defaults', () => {
    expect(trustedRelayDetector.config.parse({})).toEqual({ windowMs: 600_000, probeThreshold: 10, cooldownMs: 3_600_000, maxKeys: 50_000 });
  });

  it('flags an open relay: untrusted, unauthenticated client relaying external → external (critical)', () => {
    const { findings, messages } = run(message(0, '203.0.113.50', 'spam@spammer.example', [{ to: 'victim@gmail.com' }, { to: 'v2@yahoo.com' }]));
    expect(messages).toHaveLength(1);
    expect(messages[0]!.clientIp).toBe('203.0.113.50');
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ detector: 'trusted-relay', entity: { kind: 'ip', id: '203.0.113.50' }, severity: 'critical', signals: ['open-relay'] });
    expect(f.window).toMatchObject({ externalRecipients: 2, senderLocal: false });
    expect(f.evidence[0]).toMatchObject({ file: 'scenario.log' });
    expect(f.summary).toMatch(/open relay/);
  });

  it('also calls relaying with a forged local sender an open relay', () => {
    const { findings } = run(message(0, '203.0.113.51', 'ceo@example.com', [{ to: 'victim@gmail.com' }]));
    expect(findings.map((f) => [f.signals[0], f.window.senderLocal])).toEqual([['open-relay', true]]);
  });

  it('does not flag normal inbound mail, local aliases forwarding outside, authenticated or loopback senders, or mail hosts', () => {
    const lines = [
      ...message(0, '198.51.100.9', 'news@newsletter.example', [{ to: 'alice@example.com' }, { to: 'bob@example.com' }]),
      ...message(5, '198.51.100.9', 'news@newsletter.example', [{ to: 'alice.private@gmail.com', origTo: 'alice@example.com' }]),
      ...message(10, '203.0.113.9', 'alice@example.com', [{ to: 'friend@gmail.com' }], 'alice@example.com'),
      ...message(15, '127.0.0.1', 'alice@example.com', [{ to: 'friend@gmail.com' }]),
      ...message(20, '10.0.0.5', 'bob@example.com', [{ to: 'friend@gmail.com' }]),
    ];
    const { findings, messages } = run(lines);
    expect(messages).toHaveLength(5);
    expect(findings).toEqual([]);
  });

  // Seen on a real server's log (lightmeter's test corpus): with zero config the
  // domains learnt are those mail is delivered to locally, and an alias domain
  // that only forwards outside never is one. Its forwarded mail was a critical
  // "open relay".
  it('does not call mail to an alias of a domain it has not learnt, forwarded outside, an open relay', () => {
    const zero = { trustedNetworks: ['127.0.0.0/8'] };
    const lines = [
      // a local delivery teaches example.com; forward-only.example is never delivered to here
      ...message(0, '198.51.100.9', 'a@sender.example', [{ to: 'alice@example.com' }]),
      ...message(5, '198.51.100.9', 'a@sender.example', [{ to: 'alice.private@gmail.com', origTo: 'alice@forward-only.example' }]),
      // an address without a domain (postmaster) aliased outside
      ...message(10, '198.51.100.9', 'a@sender.example', [{ to: 'admin@gmail.com', origTo: 'postmaster' }]),
    ];
    const r = detectText(lines, { detectors: [trustedRelayDetector], site: zero });
    expect(r.messages.map((m) => m.recipients.map((x) => x.origTo))).toEqual([[undefined], ['alice@forward-only.example'], ['postmaster']]);
    expect(r.findings).toEqual([]);
  });

  it('still calls it an open relay when the client chose the external address, however it spelled it', () => {
    // Postfix logs orig_to when the address it delivers to differs from the one given: case, a trailing
    // dot, or source routing (user%domain@host) are the client's doing, not an alias of ours
    for (const origTo of ['Victim@GMAIL.com', 'victim@gmail.com.', 'victim%gmail.com@example.com', 'gmail.com!victim']) {
      const { findings } = run(message(0, '203.0.113.60', 'spam@spammer.example', [{ to: 'victim@gmail.com', origTo }]));
      expect(findings.map((f) => f.signals[0]), origTo).toEqual(['open-relay']);
    }
  });

  it('flags a trusted network wider than the mail hosts (high), once per cooldown', () => {
    const lines = [
      ...message(0, '10.0.3.7', 'printer@example.com', [{ to: 'someone@gmail.com' }]),
      ...message(60, '10.0.3.7', 'x@random.example', [{ to: 'other@yahoo.com' }]),
      // same client, local recipient only: fine
      ...message(120, '10.0.3.8', 'scanner@example.com', [{ to: 'alice@example.com' }]),
    ];
    const { findings } = run(lines);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ entity: { kind: 'ip', id: '10.0.3.7' }, severity: 'high', signals: ['wide-trusted-network'] });
    expect(findings[0]!.summary).toMatch(/mailHosts/);
  });

  it('treats an undeclared private-range client as a too-wide trusted network, not an open relay', () => {
    const { findings } = run(message(0, '192.168.7.20', 'x@random.example', [{ to: 'someone@gmail.com' }]));
    expect(findings.map((f) => [f.entity.id, f.signals[0], f.severity, f.window.declaredTrusted])).toEqual([['192.168.7.20', 'wide-trusted-network', 'high', false]]);
  });

  it('waits while no local domain is known (nothing can be called external)', () => {
    const r = detectText(message(0, '198.51.100.9', 'a@b.example', [{ to: 'alice@example.org', relay: 'mx.example.org[198.51.100.30]:25' }]), {
      detectors: [trustedRelayDetector],
      site: { trustedNetworks: ['127.0.0.0/8'] },
    });
    expect(r.findings).toEqual([]);
  });

  const denied = (s: number, ip: string, i: number) =>
    `${at(s)} mx postfix/smtpd[200]: NOQUEUE: reject: RCPT from unknown[${ip}]: 554 5.7.1 <v${i}@target${i % 3}.example>: Relay access denied; from=<spam@example.biz> to=<v${i}@target${i % 3}.example> proto=ESMTP helo=<WIN-X>`;

  it('reports a relay-probing burst (low), escalating to medium at 5× the threshold', () => {
    const lines: string[] = [];
    for (let i = 0; i < 9; i++) lines.push(denied(i * 5, '192.0.2.70', i)); // below threshold
    for (let i = 0; i < 60; i++) lines.push(denied(i * 5, '192.0.2.66', i));
    const { findings } = run(lines);
    expect(findings.map((f) => [f.entity.id, f.severity, f.window.count])).toEqual([
      ['192.0.2.66', 'low', 10],
      ['192.0.2.66', 'medium', 50],
    ]);
    expect(findings[0]).toMatchObject({ signals: ['relay-probing'], window: { targetDomains: 3, threshold: 10 } });
    expect(findings[0]!.evidence).toHaveLength(10);
  });

  it('does not count rejects spread thinner than the window', () => {
    const lines: string[] = [];
    for (let i = 0; i < 20; i++) lines.push(denied(i * 120, '192.0.2.67', i)); // one every 2 min: ≤ 5 per 10 min
    expect(run(lines).findings).toEqual([]);
  });
});
