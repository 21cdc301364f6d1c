import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../src/core/record.js';
import { parseEnvelope, type EnvelopeFormat } from '../src/envelope/envelope.js';
import { YearInferrer } from '../src/envelope/year.js';
import { ZoneClock } from '../src/envelope/zone.js';

function ctx(opts: { zone?: string; year?: number; ref?: number; format?: EnvelopeFormat } = {}) {
  return {
    format: opts.format ?? 'auto',
    zone: new ZoneClock(opts.zone ?? 'UTC'),
    years: new YearInferrer(opts.ref ?? Date.UTC(2026, 10, 30), opts.year),
    defaultHost: 'fallback',
    file: 'f.log',
  };
}

const iso = (r: LogRecord | undefined) => (r ? new Date(r.ts).toISOString() : undefined);

describe('RFC 3164', () => {
  it('parses host, program, pid and message', () => {
    const r = parseEnvelope('Nov 27 10:00:01 mx1 postfix/submission/smtpd[4242]: connect from a[1.2.3.4]', 17, ctx());
    expect(r).toMatchObject({ host: 'mx1', program: 'postfix/submission/smtpd', pid: 4242, message: 'connect from a[1.2.3.4]', file: 'f.log', offset: 17 });
    expect(iso(r)).toBe('2026-11-27T10:00:01.000Z');
  });

  it('accepts space-padded and unpadded single-digit days', () => {
    expect(iso(parseEnvelope('Nov  7 01:02:03 h p: m', 0, ctx()))).toBe('2026-11-07T01:02:03.000Z');
    expect(iso(parseEnvelope('Nov 7 01:02:03 h p: m', 0, ctx()))).toBe('2026-11-07T01:02:03.000Z');
  });

  it('handles host-less lines, <PRI>, syslog-ng <facility.priority> and fractions', () => {
    expect(parseEnvelope('Jan 29 09:33:58 pop3-login: Info: Aborted login', 0, ctx())).toMatchObject({ host: 'fallback', program: 'pop3-login', message: 'Info: Aborted login' });
    expect(parseEnvelope('<22>Nov 27 10:00:01 mx1 postfix/qmgr[1]: x', 0, ctx())).toMatchObject({ host: 'mx1', program: 'postfix/qmgr' });
    expect(parseEnvelope('Jun 17 14:37:39 <mail.info> robin sm-mta[2794]: x', 0, ctx())).toMatchObject({ host: 'robin', program: 'sm-mta', pid: 2794 });
    expect(iso(parseEnvelope('Nov 27 10:00:01.250 h p: m', 0, ctx()))).toBe('2026-11-27T10:00:01.250Z');
  });

  it('keeps a dovecot process context with colons inside the tag', () => {
    const r = parseEnvelope('Aug 30 00:10:57 auth(info@example.com,192.0.2.110,sasl:login)<CvN+E95Uf4e7eEnj>: Info: sql: Password mismatch', 0, ctx());
    expect(r).toMatchObject({ program: 'auth(info@example.com,192.0.2.110,sasl:login)<CvN+E95Uf4e7eEnj>', message: 'Info: sql: Password mismatch' });
  });

  it('converts local time in the given zone, across a DST change', () => {
    // Europe/Paris: CEST (+2) until 2026-10-25 03:00, then CET (+1).
    expect(iso(parseEnvelope('Oct 24 12:00:00 h p: m', 0, ctx({ zone: 'Europe/Paris' })))).toBe('2026-10-24T10:00:00.000Z');
    expect(iso(parseEnvelope('Oct 26 12:00:00 h p: m', 0, ctx({ zone: 'Europe/Paris' })))).toBe('2026-10-26T11:00:00.000Z');
    expect(iso(parseEnvelope('Nov 27 10:00:00 h p: m', 0, ctx({ zone: 'America/New_York' })))).toBe('2026-11-27T15:00:00.000Z');
  });

  it('infers the year from the reference time and rolls over at New Year', () => {
    const c = ctx({ ref: Date.UTC(2027, 0, 2) });
    const lines = ['Dec 31 23:59:58 h p: a', 'Dec 31 23:59:59 h p: b', 'Jan  1 00:00:00 h p: c', 'Jan  1 00:00:05 h p: d'];
    expect(lines.map((l) => iso(parseEnvelope(l, 0, c)))).toEqual([
      '2026-12-31T23:59:58.000Z',
      '2026-12-31T23:59:59.000Z',
      '2027-01-01T00:00:00.000Z',
      '2027-01-01T00:00:05.000Z',
    ]);
  });

  it('pins the first line to --year', () => {
    expect(iso(parseEnvelope('Mar  3 03:03:03 h p: m', 0, ctx({ year: 2019 })))).toBe('2019-03-03T03:03:03.000Z');
  });

  it('rejects garbage instead of guessing', () => {
    for (const bad of ['', 'garbage', 'Foo 27 10:00:01 h p: m', 'Nov 32 10:00:01 h p: m', 'Nov 27 25:00:01 h p: m', 'Nov 27 10:00:01 onlyhost', '\u0000\u0001binary', 'Nov 27 10:00:01 h prog with spaces and no colon']) {
      expect(parseEnvelope(bad, 0, ctx()), JSON.stringify(bad)).toBeUndefined();
    }
  });
});

describe('ISO and RFC 5424', () => {
  it('parses rsyslog high-precision timestamps with offsets', () => {
    const r = parseEnvelope('2026-11-27T10:00:00.123456+01:00 mx1 postfix/smtpd[9]: connect from x[1.2.3.4]', 0, ctx());
    expect(r).toMatchObject({ host: 'mx1', program: 'postfix/smtpd', pid: 9 });
    expect(iso(r)).toBe('2026-11-27T09:00:00.123Z');
    expect(iso(parseEnvelope('2026-11-27T10:00:00Z mx1 p: m', 0, ctx()))).toBe('2026-11-27T10:00:00.000Z');
  });

  it('uses the zone for ISO times without an offset', () => {
    expect(iso(parseEnvelope('2013-08-11 03:56:40 auth-worker(default): Info: x', 0, ctx({ zone: 'Europe/Paris' })))).toBe('2013-08-11T01:56:40.000Z');
  });

  it('parses RFC 5424 with and without structured data', () => {
    const a = parseEnvelope('<22>1 2026-11-27T10:00:00.5Z mx1 postfix/smtpd 4242 - - connect from x[1.2.3.4]', 0, ctx());
    expect(a).toMatchObject({ host: 'mx1', program: 'postfix/smtpd', pid: 4242, message: 'connect from x[1.2.3.4]' });
    expect(iso(a)).toBe('2026-11-27T10:00:00.500Z');
    const b = parseEnvelope('<22>1 2026-11-27T10:00:00Z mx1 amavis - ID47 [exampleSDID@32473 iut="3" eventSource="A \\] b"] (123-01) Passed CLEAN', 0, ctx());
    expect(b).toMatchObject({ program: 'amavis', pid: -1, message: '(123-01) Passed CLEAN' });
  });

  it('parses TAI64N labels', () => {
    const r = parseEnvelope('@400000004c91b044077a9e94 dovecot-auth: pam_unix(dovecot:auth): authentication failure', 0, ctx());
    expect(r).toMatchObject({ program: 'dovecot-auth', host: 'fallback' });
    // daemontools' taia_now writes 2^62 + unix seconds + 10; 0x4c91b044 is 05:51:00 unix time.
    expect(iso(r)).toBe('2010-09-16T05:50:50.125Z');
  });
});

describe('Zimbra mailbox.log / audit.log', () => {
  it('splits level, thread, context, category and message', () => {
    const line =
      '2021-03-03 19:26:38,616 INFO  [qtp93314457-137:https://test.fr:7071/service/admin/soap/AuthRequest] [name=toto@test.fr;oip=192.168.7.101;port=52016;ua=ZimbraWebClient - GC88 (Linux);soapId=9fd8101;] SoapEngine - handler exception: authentication failed for [toto@test.fr], invalid password';
    const r = parseEnvelope(line, 0, ctx({ zone: 'UTC' }));
    expect(r).toMatchObject({
      program: 'zimbra-mailbox',
      host: 'fallback',
      message: 'handler exception: authentication failed for [toto@test.fr], invalid password',
      zimbra: {
        level: 'INFO',
        thread: 'qtp93314457-137:https://test.fr:7071/service/admin/soap/AuthRequest',
        context: 'name=toto@test.fr;oip=192.168.7.101;port=52016;ua=ZimbraWebClient - GC88 (Linux);soapId=9fd8101;',
        category: 'SoapEngine',
      },
    });
    expect(iso(r)).toBe('2021-03-03T19:26:38.616Z');
  });

  it('accepts an empty context and refuses Zimbra lines when another format is pinned', () => {
    const line = '2026-11-27 10:00:00,001 WARN  [ImapServer-3] [] imap - something';
    expect(parseEnvelope(line, 0, ctx())).toMatchObject({ zimbra: { context: '', category: 'imap' }, message: 'something' });
    expect(parseEnvelope(line, 0, ctx({ format: 'rfc3164' }))).toBeUndefined();
    expect(parseEnvelope('Nov 27 10:00:01 h p: m', 0, ctx({ format: 'zimbra' }))).toBeUndefined();
  });
});

describe("Dovecot's own log file", () => {
  it('reads `Info: imap-login: ...` like the syslog form', () => {
    const c = { format: 'auto' as const, zone: new ZoneClock('UTC'), years: new YearInferrer(Date.UTC(2026, 10, 30)), defaultHost: 'fallback', file: 'f' };
    expect(parseEnvelope('Jun 23 15:04:05 Info: imap-login: Disconnected (auth failed, 1 attempts): user=<a>', 0, c)).toMatchObject({ program: 'imap-login', message: 'Info: Disconnected (auth failed, 1 attempts): user=<a>' });
    expect(parseEnvelope('Jun 23 15:04:05 Warn: auth(default): pam(x,1.2.3.4): unknown user', 0, c)).toMatchObject({ program: 'auth(default)', message: 'Warn: pam(x,1.2.3.4): unknown user' });
  });
});
