import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText } from '../test/helpers/detect.js';
import { authAttackDetector } from './auth-attack.js';

// --- line shapes copied from the parsers' fixtures ----------------------------------------

/** Zimbra mailbox.log time for second `s` after 2026-11-27 10:00:00 UTC. */
function zat(s: number): string {
  const d = new Date(Date.UTC(2026, 10, 27, 10, 0, 0) + s * 1000 + 123);
  return d.toISOString().replace('T', ' ').replace('Z', '').replace('.', ',');
}
const imapFail = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapSSLServer-12] [name=${acct};ip=${ip};] imap - authentication failed for [${acct}] (invalid password)`;
const imapOk = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapSSLServer-13] [name=${acct};ip=${ip};ua=Thunderbird/115.0;] imap - user ${acct} authenticated, mechanism=PLAIN`;
const soapFail = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [qtp1545357780-7135:https://mail.example.com:443/service/soap/AuthRequest] [oip=${ip};ua=ZimbraWebClient - FF120 (Win);soapId=3bd1a3ac;] SoapEngine - handler exception: authentication failed for [${acct}], invalid password`;
/** Zimbra's SMTP AUTH check, logged by the mailbox server with the client's IP. */
const zsmtpFail = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [qtp1545357780-7138:smtp://mail.example.com:7073/service/admin/soap/] [oip=${ip};oport=24304;oproto=smtp;soapId=688cb584;] SoapEngine - handler exception: authentication failed for [${acct}], invalid password`;
const postfixFail = (s: number, ip: string, acct?: string) =>
  `${at(s)} mail postfix/submission/smtpd[2301]: warning: unknown[${ip}]: SASL LOGIN authentication failed: authentication failure${acct ? `, sasl_username=${acct}` : ''}`;
const saslFail = (s: number, acct: string) => `${at(s)} mail saslauthd[94964]: auth_zimbra: ${acct} auth failed: authentication failed for [${acct}], invalid password`;
const saslOk = (s: number, acct: string) => `${at(s)} mail saslauthd[94963]: auth_zimbra: ${acct} auth OK`;
const smtpClient = (s: number, q: string, acct: string, ip: string) =>
  `${at(s)} mail postfix/submission/smtpd[2302]: ${q}: client=unknown[${ip}], sasl_method=LOGIN, sasl_username=${acct}`;
const dovecotAbort = (s: number, acct: string, ip: string, n: number) =>
  `${at(s)} mail dovecot: imap-login: Disconnected (auth failed, ${n} attempts in 12 secs): user=<${acct}>, method=PLAIN, rip=${ip}, lip=192.0.2.1, TLS, session=<EfGhIjKl5678>`;
const dovecotLogin = (s: number, acct: string, ip: string) =>
  `${at(s)} mail dovecot: imap-login: Login: user=<${acct}>, method=PLAIN, rip=${ip}, lip=192.0.2.1, mpid=4242, TLS, session=<AbCdEfGh1234>`;

function run(lines: string[], config: Record<string, unknown> = {}): Finding[] {
  const { findings, stats } = detectText(lines, { detectors: [authAttackDetector], configs: { 'auth-attack': config } });
  expect(stats.unknown + stats.malformed).toBe(0);
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f.detector).toBe('auth-attack');
    expect(f.signals).toHaveLength(1);
    expect(f.evidence.length).toBeGreaterThan(0);
  }
  return findings;
}

const bySignal = (f: Finding[], s: string) => f.filter((x) => x.signals[0] === s);

describe('auth-attack', () => {
  it('config parses {} with documented defaults', () => {
    expect(authAttackDetector.config.parse({})).toMatchObject({ sprayAccounts: 10, distributedIps: 10, accountFailures: 20, guessFailures: 5 });
  });

  it("restores an IP's last failure from a snapshot of when it was a Recent of {o, t, ev}: the same attempt from another log still counts once", () => {
    const line = imapFail(60, 'kim@example.com', '45.95.169.20');
    const t = Date.UTC(2026, 10, 27, 10, 1, 0) + 123;
    const restore = { 'auth-attack.ip': { v: 2, e: 0, n: t, w: 0, m: [['45.95.169.20', -1000, { o: 'saslauthd||other.log', t: t - 1000, ev: null }]] } };
    const cfg = { 'auth-attack': { ipFailures: 1 } };
    const ipBrute = (f: Finding[]) => f.filter((x) => x.entity.kind === 'ip' && x.signals[0] === 'brute-force');
    expect(ipBrute(detectText([line], { detectors: [authAttackDetector], configs: cfg }).findings)).toHaveLength(1);
    expect(ipBrute(detectText([line], { detectors: [authAttackDetector], configs: cfg, restore }).findings)).toHaveLength(0);
  });

  it('flags password spraying from one IP over 15 accounts, once', () => {
    const lines: string[] = [];
    for (let i = 0; i < 15; i++) {
      const acct = `user${i}@example.com`;
      // mixed services, as a real spray hits every door
      lines.push(i % 3 === 0 ? imapFail(i * 20, acct, '45.95.169.10') : i % 3 === 1 ? soapFail(i * 20, acct, '45.95.169.10') : postfixFail(i * 20, '45.95.169.10', acct));
    }
    const f = run(lines);
    const spray = bySignal(f, 'spraying');
    expect(spray).toHaveLength(1);
    expect(spray[0]!.entity).toEqual({ kind: 'ip', id: '45.95.169.10' });
    expect(spray[0]!.ip).toBe('45.95.169.10');
    expect(spray[0]!.window).toMatchObject({ accounts: 10, threshold: 10 });
    expect(spray[0]!.summary).toMatch(/10 distinct accounts/);
    expect(spray[0]!.summary).toContain('user0@example.com');
    // no account-level findings: each account failed once
    expect(f.filter((x) => x.entity.kind === 'account')).toEqual([]);
  });

  it('flags a distributed brute force from 12 IPs that ends in a success as guessed-password', () => {
    const victim = 'ceo@example.com';
    const lines: string[] = [];
    for (let i = 0; i < 12; i++) lines.push(imapFail(i * 60, victim, `198.18.${i}.${10 + i}`));
    lines.push(imapFail(730, victim, '198.18.11.21'));
    lines.push(imapOk(760, victim, '198.18.11.21'));
    const f = run(lines);
    const bf = bySignal(f, 'brute-force');
    expect(bf).toHaveLength(1);
    expect(bf[0]!.entity).toEqual({ kind: 'account', id: victim });
    expect(bf[0]!.window).toMatchObject({ ips: 10, threshold: 10 });
    const g = bySignal(f, 'guessed-password');
    expect(g).toHaveLength(1);
    expect(g[0]!.severity).toBe('high');
    expect(g[0]!.entity).toEqual({ kind: 'account', id: victim });
    expect(g[0]!.ip).toBe('198.18.11.21');
    expect(g[0]!.window).toMatchObject({ failures: 13, distinctIps: 12, failuresFromIp: 2, threshold: 5 });
    expect(g[0]!.summary).toContain('after 13 failed logins');
    expect(g[0]!.evidence.at(-1)!.note).toContain('succeeded');
  });

  it('flags a success from the IP that failed ≥5 times, and plain brute force on an account', () => {
    const lines: string[] = [];
    for (let i = 0; i < 24; i++) lines.push(imapFail(i * 10, 'Sales@Example.com', '203.0.113.77'));
    lines.push(imapOk(250, 'sales@example.com', '203.0.113.77'));
    const f = run(lines);
    const bf = bySignal(f, 'brute-force');
    expect(bf.map((x) => x.entity)).toEqual([{ kind: 'account', id: 'sales@example.com' }]);
    expect(bf[0]!.window).toMatchObject({ failures: 20, threshold: 20 });
    const g = bySignal(f, 'guessed-password');
    expect(g).toHaveLength(1);
    expect(g[0]!.window).toMatchObject({ failuresFromIp: 24 });
  });

  it('a typo (1–2 failures then success) produces nothing, even repeated all day and logged by several sources', () => {
    const lines: string[] = [];
    for (let k = 0; k < 8; k++) {
      const t = k * 600;
      // IMAP: two wrong passwords then the right one
      lines.push(imapFail(t, 'anna@example.com', '198.51.100.20'), imapFail(t + 5, 'anna@example.com', '198.51.100.20'), imapOk(t + 12, 'anna@example.com', '198.51.100.20'));
      // Zimbra SMTP AUTH: each attempt appears as a Postfix warning, a saslauthd line and a mailbox.log line
      for (const d of [0, 4]) {
        lines.push(zsmtpFail(t + 100 + d, 'ben@example.com', '198.51.100.30'));
        lines.push(saslFail(t + 100 + d, 'ben@example.com'));
        lines.push(postfixFail(t + 100 + d, '198.51.100.30'));
      }
      lines.push(saslOk(t + 110, 'ben@example.com'), smtpClient(t + 110, `4F${(0x10000000 + k).toString(16).toUpperCase()}`, 'ben@example.com', '198.51.100.30'));
    }
    expect(run(lines)).toEqual([]);
    // not vacuous: a threshold of 2 catches anna's two typos; ben's attempts count once each, not thrice
    const low = bySignal(run(lines, { guessFailures: 2 }), 'guessed-password');
    expect([...new Set(low.map((x) => x.entity.id))].sort()).toEqual(['anna@example.com', 'ben@example.com']);
    expect(low.find((x) => x.entity.id === 'ben@example.com')!.window).toMatchObject({ failures: 2, failuresFromIp: 2 });
    expect(bySignal(run(lines, { guessFailures: 3 }), 'guessed-password')).toEqual([]);
  });

  it('one attempt logged by mailbox.log, saslauthd and Postfix counts once', () => {
    const lines: string[] = [];
    for (let i = 0; i < 12; i++) {
      lines.push(zsmtpFail(i * 10, 'gus@example.com', '91.92.109.3'), saslFail(i * 10, 'gus@example.com'), postfixFail(i * 10, '91.92.109.3'));
    }
    const cfg = { accountFailures: 20, ipFailures: 20 };
    expect(run(lines, cfg)).toEqual([]);
    // without merging, the same lines look like 24 failures on the account and 24 from the IP
    const f = run(lines, { ...cfg, dedupeMs: 0 });
    expect(bySignal(f, 'brute-force').map((x) => x.entity.kind).sort()).toEqual(['account', 'ip']);
  });

  it('a failure streak from the typo IP is counted per (account, IP): a success elsewhere does not hide an attacker', () => {
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) lines.push(soapFail(i * 30, 'dora@example.com', '185.220.101.4'));
    lines.push(imapOk(200, 'dora@example.com', '198.51.100.40')); // the owner, from home: not the attacker's login
    lines.push(soapFail(210, 'dora@example.com', '185.220.101.4'));
    lines.push(imapOk(230, 'dora@example.com', '185.220.101.4')); // the attacker gets in
    const g = bySignal(run(lines), 'guessed-password');
    expect(g).toHaveLength(1);
    expect(g[0]!.ip).toBe('185.220.101.4');
    expect(g[0]!.window).toMatchObject({ failuresFromIp: 7 });
  });

  it('saslauthd failures without an IP followed by an SMTP AUTH success still count', () => {
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) lines.push(saslFail(i * 20, 'eve@example.com'));
    lines.push(saslOk(130, 'eve@example.com'));
    const g = bySignal(run(lines), 'guessed-password');
    expect(g).toHaveLength(1);
    expect(g[0]!.ip).toBeUndefined();
    expect(g[0]!.window).toMatchObject({ failuresWithoutIp: 6 });
  });

  it('flags brute force from one IP even when Postfix does not log the username', () => {
    const lines: string[] = [];
    for (let i = 0; i < 35; i++) lines.push(postfixFail(i * 5, '80.94.95.81'));
    const f = run(lines);
    expect(f).toHaveLength(1);
    expect(f[0]!.signals).toEqual(['brute-force']);
    expect(f[0]!.entity).toEqual({ kind: 'ip', id: '80.94.95.81' });
    expect(f[0]!.window).toMatchObject({ failures: 30 });
  });

  it('counts Dovecot `N attempts` and ignores failures from our own mail hosts', () => {
    const lines = [dovecotAbort(0, 'fred@example.com', '203.0.113.5', 3), dovecotAbort(20, 'fred@example.com', '203.0.113.5', 3), dovecotLogin(40, 'fred@example.com', '203.0.113.5')];
    const g = bySignal(run(lines), 'guessed-password');
    expect(g).toHaveLength(1);
    expect(g[0]!.window).toMatchObject({ failures: 6 });
    // the webmail proxy on loopback carries everyone's typos: never a sprayer
    const proxy: string[] = [];
    for (let i = 0; i < 30; i++) proxy.push(imapFail(i, `u${i}@example.com`, '127.0.0.1'));
    expect(bySignal(run(proxy), 'spraying')).toEqual([]);
  });

  it('an attack spread over more than the window stays below the thresholds', () => {
    const lines: string[] = [];
    for (let i = 0; i < 15; i++) lines.push(imapFail(i * 120, `user${i}@example.com`, '45.95.169.11'));
    expect(run(lines)).toEqual([]);
  });
});
