import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';
import { zimbraValue } from './parser.js';

const z = (rest: string) => `2026-11-27 10:00:00,123 INFO  ${rest}`;

describe('zimbra-mailbox parser', () => {
  it('reads context values with ;; escapes', () => {
    expect(zimbraValue('name=a@b;oip=1.2.3.4;ua=X (A;; B);', 'ua=')).toBe('X (A; B)');
    expect(zimbraValue('name=a@b;oip=1.2.3.4;', 'ip=')).toBeUndefined();
    expect(zimbraValue('cmd=Auth; account=u@d; protocol=soap;', 'protocol=')).toBe('soap');
    expect(zimbraValue('name=a;;ip=evil;ip=1.2.3.4;', 'ip=')).toBe('1.2.3.4');
    expect(zimbraValue('ua=x;;;ip=5.5.5.5;', 'ip=')).toBe('5.5.5.5');
    expect(zimbraValue('ua=x;;;ip=5.5.5.5;', 'ua=')).toBe('x;');
    expect(zimbraValue('name=u;', 'name=')).toBe('u');
  });

  it('parses SoapEngine failures with oip preferred and SMTP on behalf of saslauthd', () => {
    expect(
      eventsOf(z('[qtp1-1:https://m/service/soap/AuthRequest] [name=u@d;ip=10.0.0.1;oip=1.2.3.4;ua=UA 1;] SoapEngine - handler exception: authentication failed for [u@d], invalid password')),
    ).toMatchObject([{ kind: 'auth', source: 'zimbra', protocol: 'soap', outcome: 'failure', account: 'u@d', ip: '1.2.3.4', reason: 'invalid password', tls: true, userAgent: 'UA 1' }]);
    const [e] = eventsOf(z('[qtp1-2:smtp://m:7073/service/admin/soap/] [oip=5.6.7.8;oport=1;oproto=smtp;] SoapEngine - handler exception: authentication failed for [x], account not found'));
    expect(e).toMatchObject({ protocol: 'smtp', account: 'x', ip: '5.6.7.8', reason: 'account not found' });
    expect(e).not.toHaveProperty('tls');
  });

  it('parses audit.log Auth lines', () => {
    expect(eventsOf(z('[ImapSSLServer-5] [ip=10.0.0.2;oip=9.9.9.9;] security - cmd=Auth; account=a@d; protocol=imap;'))).toMatchObject([
      { protocol: 'imap', outcome: 'success', account: 'a@d', ip: '9.9.9.9', tls: true },
    ]);
    expect(eventsOf(z('[qtp1-3:https://m/Microsoft-Server-ActiveSync] [ip=1.1.1.1;] security - cmd=Auth; account=b@d; protocol=zsync; error=authentication failed for [b@d], invalid password;'))).toMatchObject([
      { protocol: 'activesync', outcome: 'failure', reason: 'invalid password' },
    ]);
    const r = parseText(z('[qtp1-4:https://m/service/soap/ChangePasswordRequest] [name=a@d;] security - cmd=ChangePassword; account=a@d;'));
    expect(r.lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(r.events).toEqual([]);
  });

  it('parses IMAP/POP success and failure with TLS from the thread', () => {
    expect(eventsOf(z('[ImapServer-1] [name=u@d;ip=1.2.3.4;] imap - user u@d authenticated, mechanism=PLAIN'))).toMatchObject([
      { protocol: 'imap', outcome: 'success', account: 'u@d', method: 'PLAIN', tls: false, thread: 'ImapServer-1' },
    ]);
    expect(eventsOf(z('[Pop3Server-3] [ip=1.2.3.4;] pop - user v@d authenticated, mechanism=LOGIN [TLS]'))[0]).toMatchObject({ protocol: 'pop3', tls: true });
    expect(eventsOf(z('[Pop3SSLServer-3] [ip=1.2.3.4;] pop - authentication failed for [w@d] (invalid password)'))[0]).toMatchObject({
      protocol: 'pop3',
      outcome: 'failure',
      account: 'w@d',
      reason: 'invalid password',
      tls: true,
    });
  });

  it('returns false for unrelated mailbox lines, and recognises routine LMTP deliveries without an event', () => {
    expect(parseText(z('[qtp1-5:https://m/service/soap/GetInfoRequest] [name=u@d;] mailbox - Creating folder Junk')).lines[0]!.status).toBe(ParseStatus.Unknown);
    const lmtp = parseText(z('[LmtpServer-1] [name=u@d;mid=1;] lmtp - Delivering message: size=1234 bytes'));
    expect(lmtp.lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(lmtp.events).toEqual([]);
    expect(parseText(z('[qtp1-5:https://m/service/soap/GetInfoRequest] [name=u@d;] SoapEngine - handler exception: no such folder')).events).toEqual([]);
  });
});
