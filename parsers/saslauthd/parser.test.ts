import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const line = (msg: string) => `Nov 27 10:00:01 mail saslauthd[900]: ${msg}`;

describe('saslauthd parser', () => {
  it('parses auth_zimbra success and failure', () => {
    expect(eventsOf(line('auth_zimbra: user@example.com auth OK'))).toMatchObject([
      { kind: 'auth', source: 'saslauthd', protocol: 'smtp', outcome: 'success', account: 'user@example.com' },
    ]);
    expect(eventsOf(line('auth_zimbra: user@example.com auth failed: authentication failed for [user@example.com], invalid password'))).toMatchObject([
      { outcome: 'failure', account: 'user@example.com', reason: 'invalid password' },
    ]);
    expect(eventsOf(line('auth_zimbra: u@x auth failed: account lockout'))[0]).toMatchObject({ reason: 'account lockout' });
  });

  it('parses do_auth lines with padded function names', () => {
    expect(eventsOf(line('do_auth         : auth failure: [user=x] [service=smtp] [realm=r] [mech=pam] [reason=PAM auth error]'))).toMatchObject([
      { outcome: 'failure', protocol: 'smtp', account: 'x', service: 'smtp', reason: 'PAM auth error' },
    ]);
    const [ok] = eventsOf(line('do_auth : auth success: [user=y] [service=pop] [realm=] [mech=shadow]'));
    expect(ok).toMatchObject({ outcome: 'success', protocol: 'pop3', account: 'y' });
    expect(ok).not.toHaveProperty('reason');
  });

  it('parses pam_unix failures and recognises housekeeping', () => {
    expect(eventsOf(line('pam_unix(smtp:auth): authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=  user=z'))).toMatchObject([
      { outcome: 'failure', account: 'z', protocol: 'smtp' },
    ]);
    for (const m of ["zmauth: authenticating against elected url 'https://x:7073/service/admin/soap/' ...", 'pam_unix(smtp:auth): check pass; user unknown', 'ipc_init        : listening on socket: /var/run/saslauthd/mux']) {
      const r = parseText(line(m));
      expect(r.lines[0]!.status, m).toBe(ParseStatus.Recognised);
      expect(r.events).toEqual([]);
    }
    expect(parseText(line('something else entirely')).lines[0]!.status).toBe(ParseStatus.Unknown);
  });

  it('keeps hostile user names as data', () => {
    expect(eventsOf(line('auth_zimbra: $(id)`x` auth OK'))[0]).toMatchObject({ account: '$(id)`x`' });
  });
});
