import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { parseText } from '../../test/helpers/parse.js';

const status = (l: string) => parseText(l).lines[0]!.status;

describe('postfix-misc', () => {
  it.each([
    'postfix/master[1]: daemon started -- version 3.7.6, configuration /etc/postfix',
    'postfix/master[1]: warning: process /usr/lib/postfix/sbin/smtpd pid 2345 exit status 1',
    'postfix/scache[1]: statistics: start interval Nov 27 09:55:37',
    'postfix/tlsproxy[1]: CONNECT from [192.0.2.1]:48198',
    'postfix/postfix-script[1]: starting the Postfix mail system',
    'postfix-script[1]: stopping the Postfix mail system',
    'postfix/sendmail[1]: fatal: Recipient addresses must be specified',
    'postfix-out/trivial-rewrite[1]: warning: do not list domain example.com in BOTH mydestination and virtual_mailbox_domains',
  ])('recognises %s', (l) => {
    const r = parseText(`Nov 27 09:59:00 mail ${l}`);
    expect(r.lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(r.events).toHaveLength(0);
  });
  it('leaves unknown lines unknown', () => {
    expect(status('Nov 27 09:59:00 mail postfix/master[1]: something new')).toBe(ParseStatus.Unknown);
  });
});
