import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const d = (msg: string, tag = 'dovecot') => `Nov 27 10:00:01 mail ${tag}: ${msg}`;
const status = (l: string) => parseText(l).lines[0]!.status;

describe('dovecot parser', () => {
  it('parses logins with protocol and TLS', () => {
    expect(eventsOf(d('imap-login: Login: user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, mpid=1, TLS, session=<x>'))).toMatchObject([
      { kind: 'auth', source: 'dovecot', protocol: 'imap', outcome: 'success', account: 'u', ip: '1.2.3.4', method: 'PLAIN', tls: true },
    ]);
    expect(eventsOf(d('Info: Login: user=<v>, method=LOGIN, rip=1.2.3.5, lip=5.6.7.8, mpid=2, session=<y>', 'submission-login'))[0]).toMatchObject({
      protocol: 'smtp',
      tls: false,
    });
  });

  it('parses login failures with attempts', () => {
    expect(eventsOf(d('pop3-login: Disconnected (auth failed, 3 attempts in 2 secs): user=<u>, method=PLAIN, rip=1.2.3.4, lip=5.6.7.8, TLS'))[0]).toMatchObject({
      protocol: 'pop3',
      outcome: 'failure',
      attempts: 3,
      reason: 'auth failed',
    });
    expect(eventsOf(d('imap-login: Login aborted: Connection closed (auth failed, 3 attempts in 16 secs) (auth_failed): user=<i@x>, method=PLAIN, rip=192.0.2.110, lip=0.0.0.0, TLS, session=<C>'))[0]).toMatchObject({
      account: 'i@x',
      attempts: 3,
    });
    const [noUser] = eventsOf(d('imap-login: Disconnected (auth failed, 1 attempts): method=PLAIN, rip=5.5.5.5, lip=1.1.1.1, TLS: Disconnected'));
    expect(noUser).not.toHaveProperty('account');
  });

  it('parses passdb failures and hides given passwords', () => {
    expect(eventsOf(d('auth-worker(31326): pam(user,1.2.3.4): unknown user'))).toMatchObject([{ protocol: 'other', outcome: 'failure', account: 'user', ip: '1.2.3.4', reason: 'unknown user' }]);
    const [e] = eventsOf(d('auth-worker(1): conn unix:auth-worker (pid=2,uid=3): auth-worker<4>: sql(a@b,1.2.3.4): unknown user (given password: S3cret!)'));
    expect(e).toMatchObject({ account: 'a@b', reason: 'unknown user' });
    expect(JSON.stringify(e)).not.toContain('S3cret');
    expect(eventsOf(d('Info: sql: Password mismatch (given password: x)', 'auth(u@d,9.9.9.9,sasl:plain)<s>'))[0]).toMatchObject({ account: 'u@d', ip: '9.9.9.9', method: 'PLAIN' });
    expect(eventsOf(d('pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=u rhost=1.2.3.4 user=u', 'auth'))[0]).toMatchObject({ account: 'u', ip: '1.2.3.4' });
  });

  it('treats userdb misses and session lines as routine', () => {
    for (const l of [
      d('auth: passwd-file(u@d): unknown user'),
      d('imap(u)<1><s>: Logged out in=1 out=2'),
      d('lmtp(u)<1><s>: msgid=<m@x>: saved mail to INBOX'),
      d('imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=1.2.3.4, lip=5.6.7.8, session=<x>'),
      d('Dovecot v2.3.21 starting up (core dumps disabled)'),
      d('master: Warning: Killed with signal 15 (by pid=1 uid=0 code=kill)'),
    ]) {
      expect(status(l), l).toBe(ParseStatus.Recognised);
      expect(eventsOf(l), l).toEqual([]);
    }
  });

  it('ignores auth-failed text inside a user name and rejects unknown lines', () => {
    expect(eventsOf(d('imap-login: Disconnected (no auth attempts in 1 secs): user=<(auth failed, 9 attempts)>, rip=1.2.3.4'))).toEqual([]);
    expect(status(d('badlogin: [192.0.2.4] plain [SASL(-13): authentication failure]', 'imap[22130]'))).toBe(ParseStatus.Unknown);
    expect(status(d('imap(u): frobnicated the widgets'))).toBe(ParseStatus.Unknown);
  });
});
