import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import type { SiteConfig } from '../src/detect/site.js';
import { at, detectText } from '../test/helpers/detect.js';
import { networkOf } from '../src/detect/site.js';
import { ipv4NetworkCodec, loginAnomalyDetector } from './login-anomaly.js';

const MIN = 60;
const H = 3600;
const DAY = 86_400;

/** Zimbra mailbox.log time for second `s` after 2026-11-27 10:00:00 UTC. */
function zat(s: number): string {
  const d = new Date(Date.UTC(2026, 10, 27, 10, 0, 0) + s * 1000 + 200);
  return d.toISOString().replace('T', ' ').replace('Z', '').replace('.', ',');
}
const imapOk = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapSSLServer-13] [name=${acct};ip=10.0.0.2;oip=${ip};via=10.0.0.2(nginx/1.20.0);ua=Thunderbird/115.0;] imap - user ${acct} authenticated, mechanism=PLAIN`;
const dovecotLogin = (s: number, acct: string, ip: string) =>
  `${at(s)} mail dovecot: imap-login: Login: user=<${acct}>, method=PLAIN, rip=${ip}, lip=192.0.2.1, mpid=4242, TLS, session=<AbCdEfGh1234>`;
let qn = 0x3b00000000;
const smtpClient = (s: number, acct: string, ip: string) =>
  `${at(s)} mail postfix/submission/smtpd[2201]: ${(qn++).toString(16).toUpperCase()}: client=unknown[${ip}], sasl_method=LOGIN, sasl_username=${acct}`;

function run(lines: string[], config: Record<string, unknown> = {}, site: Partial<SiteConfig> = {}): Finding[] {
  const { findings, stats } = detectText(lines, { detectors: [loginAnomalyDetector], configs: { 'login-anomaly': config }, site });
  expect(stats.unknown + stats.malformed).toBe(0);
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f.detector).toBe('login-anomaly');
    expect(f.entity.kind).toBe('account');
    expect(f.evidence.length).toBeGreaterThan(0);
  }
  return findings;
}

/** `n` logins from `ip` every `every` seconds starting at `from`. */
function history(acct: string, ip: string, n: number, from = 0, every = 5 * MIN): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(i % 2 ? imapOk(from + i * every, acct, ip) : dovecotLogin(from + i * every, acct, ip));
  return out;
}

describe('login-anomaly', () => {
  it('config parses {} with documented defaults', () => {
    expect(loginAnomalyDetector.config.parse({})).toMatchObject({ minNetworks: 4, networksWindowMs: 3_600_000, minHistoryLogins: 20, sendWithinMs: 900_000 });
  });

  it('flags an account logging in from many networks within an hour', () => {
    const ips = ['198.51.100.20', '203.0.113.50', '192.0.2.77', '185.220.101.4', '45.95.169.10'];
    const lines = ips.map((ip, i) => (i % 2 ? imapOk(i * 5 * MIN, 'mike@example.com', ip) : smtpClient(i * 5 * MIN, 'mike@example.com', ip)));
    const f = run(lines);
    expect(f).toHaveLength(1);
    expect(f[0]!.signals).toEqual(['many-networks']);
    expect(f[0]!.severity).toBe('medium');
    expect(f[0]!.entity.id).toBe('mike@example.com');
    expect(f[0]!.window).toMatchObject({ networks: 4, threshold: 4 });
    expect(f[0]!.summary).toContain('4 distinct networks');
    expect(f[0]!.evidence).toHaveLength(4);
  });

  it('the same /24 is one network; networks spread over hours are fine', () => {
    const same = [10, 11, 12, 13, 14].map((h, i) => imapOk(i * MIN, 'nora@example.com', `198.51.100.${h}`));
    expect(run(same)).toEqual([]);
    const spread = ['198.51.100.20', '203.0.113.50', '192.0.2.77', '185.220.101.4'].map((ip, i) => imapOk(i * 2 * H, 'nora@example.com', ip));
    expect(run(spread)).toEqual([]);
  });

  it('flags a new network only for an account with history (logins)', () => {
    const lines = [...history('paul@example.com', '198.51.100.20', 20), imapOk(3 * H, 'paul@example.com', '203.0.113.50'), imapOk(3 * H + 60, 'paul@example.com', '203.0.113.51')];
    const f = run(lines);
    expect(f).toHaveLength(1);
    expect(f[0]!.signals).toEqual(['new-network']);
    expect(f[0]!.severity).toBe('low');
    expect(f[0]!.ip).toBe('203.0.113.50');
    expect(f[0]!.window).toMatchObject({ network: '203.0.113.0/24', knownNetworks: 1, historyLogins: 20, sending: false });
    expect(f[0]!.summary).toContain('203.0.113.50');

    // a new account: its first logins (from two networks) are learning, not anomalies
    expect(run([imapOk(0, 'newbie@example.com', '198.51.100.20'), imapOk(600, 'newbie@example.com', '203.0.113.50')])).toEqual([]);
    // 19 logins and under 3 days: still learning
    expect(run([...history('quin@example.com', '198.51.100.20', 19), imapOk(3 * H, 'quin@example.com', '203.0.113.50')])).toEqual([]);
  });

  it('keeps the login history of a snapshot from when it was a Recent of {first, n}', () => {
    const t = Date.UTC(2026, 10, 27, 10, 0, 0);
    const restore = { 'login-anomaly.history': { v: 2, e: 0, n: t, w: 0, m: [['paul@example.com', 0, { first: t - 5 * DAY * 1000, n: 30 }]] } };
    const line = imapOk(60, 'paul@example.com', '203.0.113.50');
    const { findings } = detectText([line], { detectors: [loginAnomalyDetector], restore });
    expect(findings.map((f) => f.signals[0])).toEqual(['new-network']);
    expect(findings[0]!.window).toMatchObject({ historyLogins: 30, historyDays: 5 });
    // without that history the account is new: learning, no finding
    expect(detectText([line], { detectors: [loginAnomalyDetector] }).findings).toEqual([]);
  });

  it('flags a new network for an account with history (age)', () => {
    const lines = [imapOk(0, 'olga@example.com', '198.51.100.20'), imapOk(DAY, 'olga@example.com', '198.51.100.20'), imapOk(4 * DAY, 'olga@example.com', '91.92.109.3')];
    const f = run(lines);
    expect(f).toHaveLength(1);
    expect(f[0]!.window).toMatchObject({ historyDays: 4, historyLogins: 2 });
  });

  it('raises a new network to high when the account sends mail from it right after', () => {
    const hist = history('nina@example.com', '198.51.100.20', 25);
    const t = 4 * H;
    const f = run([...hist, imapOk(t, 'nina@example.com', '185.100.87.3'), smtpClient(t + 5 * MIN, 'nina@example.com', '185.100.87.9'), smtpClient(t + 6 * MIN, 'nina@example.com', '185.100.87.3')]);
    expect(f.map((x) => x.severity)).toEqual(['low', 'high']);
    expect(f[1]!.signals).toEqual(['new-network']);
    expect(f[1]!.summary).toContain('5 min after');
    expect(f[1]!.evidence).toHaveLength(2);
    expect(f[1]!.score).toBeGreaterThan(f[0]!.score);

    // SMTP AUTH straight from a new network is sending: high at once
    const g = run([...history('omar@example.com', '198.51.100.20', 25), smtpClient(t, 'omar@example.com', '185.100.87.3')]);
    expect(g).toHaveLength(1);
    expect(g[0]!.severity).toBe('high');
    expect(g[0]!.window).toMatchObject({ sending: true });

    // sending long after the login from the new network is not "right before sending"
    const late = run([...history('pia@example.com', '198.51.100.20', 25), imapOk(t, 'pia@example.com', '185.100.87.3'), smtpClient(t + 40 * MIN, 'pia@example.com', '185.100.87.3')]);
    expect(late.map((x) => x.severity)).toEqual(['low']);
  });

  it('never flags webmail / loopback / configured mail hosts', () => {
    const lines = [...history('rita@example.com', '198.51.100.20', 25)];
    for (let i = 0; i < 30; i++) {
      lines.push(smtpClient(3 * H + i * 10, 'rita@example.com', '127.0.0.1'));
      lines.push(smtpClient(3 * H + i * 10 + 1, 'rita@example.com', '10.0.0.5'));
      lines.push(dovecotLogin(3 * H + i * 10 + 2, 'rita@example.com', '::1'));
    }
    expect(run(lines, {}, { mailHosts: ['10.0.0.0/24'] })).toEqual([]);
  });
});

describe('login-anomaly: IPv4 networks as numbers', () => {
  it('codes exactly the networks networkOf writes for IPv4, and decodes them back', () => {
    for (const ip of ['0.0.0.1', '10.0.0.7', '192.168.1.200', '255.255.255.255', '9.99.100.1']) {
      const net = networkOf(ip);
      const c = ipv4NetworkCodec.encode(net);
      expect(c).toBeGreaterThanOrEqual(0);
      expect(ipv4NetworkCodec.decode(c)).toBe(net);
    }
    for (let c = 0; c < 1 << 24; c += 4099) expect(ipv4NetworkCodec.encode(ipv4NetworkCodec.decode(c))).toBe(c);
  });

  it('gives no code to anything else (it stays a string: distinct values never share a code)', () => {
    for (const v of [networkOf('2001:db8::1'), '01.2.3.0/24', '1.2.03.0/24', '256.1.1.0/24', '1.2.3.0/25', '1.2.3.1/24', '1.2.3.4.0/24', '1.2.0/24', '1..3.0/24', '1.2.3.0/24 ', 'a.b.c.0/24', '1234.1.1.0/24', '']) {
      expect(ipv4NetworkCodec.encode(v)).toBe(-1);
    }
  });
});
