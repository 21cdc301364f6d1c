import { describe, expect, it } from 'vitest';
import { findingSchema, type Finding } from '../src/detect/finding.js';
import { at, detectText } from '../test/helpers/detect.js';
import { plaintextAuthDetector } from './plaintext-auth.js';

const H = 3600;

function zat(s: number): string {
  const d = new Date(Date.UTC(2026, 10, 27, 10, 0, 0) + s * 1000 + 300);
  return d.toISOString().replace('T', ' ').replace('Z', '').replace('.', ',');
}
const popPlain = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [Pop3Server-3] [name=${acct};ip=${ip};] pop - user ${acct} authenticated, mechanism=LOGIN`;
const popStartTls = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [Pop3Server-4] [name=${acct};ip=${ip};] pop - user ${acct} authenticated, mechanism=LOGIN [TLS]`;
const imapPlain = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapServer-7] [name=${acct};ip=${ip};] imap - user ${acct} authenticated, mechanism=PLAIN`;
const imapSsl = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapSSLServer-13] [name=${acct};ip=${ip};ua=Thunderbird/115.0;] imap - user ${acct} authenticated, mechanism=PLAIN`;
const imapFailPlain = (s: number, acct: string, ip: string) =>
  `${zat(s)} INFO  [ImapServer-99] [ip=${ip};] imap - authentication failed for [${acct}] (invalid password)`;
const dovecotPop = (s: number, acct: string, ip: string, tls: boolean) =>
  `${at(s)} mail dovecot: pop3-login: Login: user=<${acct}>, method=LOGIN, rip=${ip}, lip=192.0.2.1, mpid=4243,${tls ? ' TLS,' : ''} session=<BcDeFgHi2345>`;

let qn = 0x4c00000000;
/** An SMTP session with SASL AUTH, with or without STARTTLS. */
function smtpSession(s: number, svc: 'smtpd' | 'submission' | 'smtps', acct: string, ip: string, tls: boolean, host = 'mail'): string[] {
  const prog = svc === 'smtpd' ? 'postfix/smtpd' : `postfix/${svc}/smtpd`;
  const q = (qn++).toString(16).toUpperCase();
  const out = [`${at(s)} ${host} ${prog}[1234]: connect from unknown[${ip}]`];
  if (tls) out.push(`${at(s)} ${host} ${prog}[1234]: Anonymous TLS connection established from unknown[${ip}]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`);
  out.push(`${at(s + 1)} ${host} ${prog}[1234]: ${q}: client=unknown[${ip}], sasl_method=LOGIN, sasl_username=${acct}`);
  out.push(`${at(s + 2)} ${host} ${prog}[1234]: disconnect from unknown[${ip}] ehlo=2${tls ? ' starttls=1' : ''} auth=1 mail=1 rcpt=1 data=1 quit=1 commands=${tls ? 8 : 7}`);
  return out;
}
/** Some inbound MX traffic with TLS: shows the host logs handshakes. */
const mxTls = (s: number, host = 'mail') => [
  `${at(s)} ${host} postfix/smtpd[1000]: connect from mx1.example.net[198.51.100.7]`,
  `${at(s)} ${host} postfix/smtpd[1000]: Anonymous TLS connection established from mx1.example.net[198.51.100.7]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`,
];

function run(lines: string[], config: Record<string, unknown> = {}): Finding[] {
  const { findings, stats } = detectText(lines, { detectors: [plaintextAuthDetector], configs: { 'plaintext-auth': config } });
  expect(stats.unknown + stats.malformed).toBe(0);
  for (const f of findings) {
    findingSchema.parse(f);
    expect(f.detector).toBe('plaintext-auth');
    expect(f.signals).toEqual(['plaintext-auth']);
    expect(['info', 'low']).toContain(f.severity);
    expect(f.evidence).toHaveLength(1);
  }
  return findings;
}

describe('plaintext-auth', () => {
  it('config parses {} with documented defaults', () => {
    expect(plaintextAuthDetector.config.parse({})).toMatchObject({ cooldownMs: 86_400_000, smtpServices: ['smtpd', 'submission'], requireTlsLogging: true });
  });

  it('flags cleartext POP3 and IMAP logins once per account per day', () => {
    const lines: string[] = [];
    for (let i = 0; i < 10; i++) lines.push(popPlain(i * 600, 'bob@example.com', '198.51.100.21'));
    for (let i = 0; i < 5; i++) lines.push(imapPlain(i * 900, 'carl@example.com', '198.51.100.22'));
    lines.push(popPlain(25 * H, 'bob@example.com', '198.51.100.21')); // the next day
    const f = run(lines);
    expect(f.map((x) => x.entity.id)).toEqual(['bob@example.com', 'carl@example.com', 'bob@example.com']);
    expect(f[0]!.summary).toContain('POP3');
    expect(f[1]!.summary).toContain('IMAP');
    expect(f[0]!.ip).toBe('198.51.100.21');
    expect(f[0]!.window).toMatchObject({ protocol: 'pop3', source: 'zimbra', thread: 'Pop3Server-3' });
  });

  it('does not flag TLS logins (SSL listener, STARTTLS, Dovecot TLS), failures, or loopback', () => {
    const lines = [
      imapSsl(0, 'dana@example.com', '198.51.100.30'),
      popStartTls(10, 'dana@example.com', '198.51.100.30'),
      dovecotPop(20, 'dana@example.com', '198.51.100.30', true),
      imapFailPlain(30, 'eric@example.com', '203.0.113.8'),
      imapPlain(40, 'fay@example.com', '127.0.0.1'),
    ];
    expect(run(lines)).toEqual([]);
    // Dovecot without TLS is flagged
    const f = run([dovecotPop(0, 'gil@example.com', '198.51.100.31', false)]);
    expect(f).toHaveLength(1);
    expect(f[0]!.window).toMatchObject({ protocol: 'pop3', source: 'dovecot' });
  });

  it('flags SMTP AUTH on port 25 without STARTTLS, once a day; TLS sessions are fine', () => {
    const lines = [
      ...mxTls(0),
      ...smtpSession(10, 'submission', 'hana@example.com', '203.0.113.45', true),
      ...smtpSession(20, 'smtps', 'hana@example.com', '203.0.113.46', false), // wrapper-mode TLS
      ...smtpSession(30, 'smtpd', 'ivan@example.com', '198.51.100.77', false),
      ...smtpSession(40, 'smtpd', 'ivan@example.com', '198.51.100.77', false),
      ...smtpSession(50, 'smtpd', 'jill@example.com', '198.51.100.78', true),
    ];
    const f = run(lines);
    expect(f).toHaveLength(1);
    expect(f[0]!.entity.id).toBe('ivan@example.com');
    expect(f[0]!.summary).toContain('SMTP AUTH');
    expect(f[0]!.window).toMatchObject({ protocol: 'smtp', service: 'smtpd' });
    expect(f[0]!.ip).toBe('198.51.100.77');
  });

  it('does not judge SMTP on a host that never logs TLS handshakes (smtpd_tls_loglevel=0)', () => {
    const lines = smtpSession(30, 'smtpd', 'ivan@example.com', '198.51.100.77', false, 'quiet');
    expect(run(lines)).toEqual([]);
    expect(run(lines, { requireTlsLogging: false })).toHaveLength(1);
  });
});
