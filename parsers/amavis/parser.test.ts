import { describe, expect, it } from 'vitest';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const line = (msg: string, prog = 'amavis[1234]') => `Nov 27 10:00:01 mail ${prog}: ${msg}`;
const status = (msg: string) => parseText(line(msg)).lines[0]!.status;

describe('amavis parser', () => {
  it('parses the main log entry with policy banks, disposition and both IPs', () => {
    const [e] = eventsOf(
      line(
        '(12345-01) Passed CLEAN {RelayedOutbound}, ORIGINATING LOCAL [10.0.0.5]:41234 [203.0.113.9] <a@x.com> -> <b@y.com>,<c@z.com>, Queue-ID: 3F2A1C0B4, Message-ID: <m@x>, mail_id: abc, Hits: -1.2, size: 1234, queued_as: 4C9A23E1F, 532 ms',
      ),
    );
    expect(e).toMatchObject({
      kind: 'amavis',
      verdict: 'Passed',
      category: 'CLEAN',
      ip: '10.0.0.5',
      originIp: '203.0.113.9',
      sender: 'a@x.com',
      recipients: ['b@y.com', 'c@z.com'],
      queueId: '3F2A1C0B4',
      queuedAs: ['4C9A23E1F'],
      messageId: 'm@x',
      mailId: 'abc',
      hits: -1.2,
      size: 1234,
      policy: 'ORIGINATING LOCAL',
      disposition: 'RelayedOutbound',
    });
  });

  it('keeps the virus name as detail and omits Hits: -', () => {
    const [e] = eventsOf(
      line(
        '(02222-01) Blocked INFECTED (Eicar-Test-Signature) {DiscardedInbound,Quarantined}, [192.0.2.10]:51022 [192.0.2.10] <e@x.org> -> <u@y.com>, quarantine: virus-Zz9, Queue-ID: 1A2B3C4D5, Message-ID: <e@x.org>, mail_id: Zz9, Hits: -, size: 812, 98 ms',
        'amavisd-new[2222]',
      ),
    );
    expect(e).toMatchObject({ verdict: 'Blocked', category: 'INFECTED', detail: 'Eicar-Test-Signature' });
    expect(e).not.toHaveProperty('hits');
    expect(e).not.toHaveProperty('queuedAs');
  });

  it('splits several queued_as ids and takes the null sender as empty', () => {
    const [e] = eventsOf(
      line('(01234-04) Passed BAD-HEADER-0 {RelayedInbound}, [192.0.2.30] [192.0.2.30] <> -> <p@x.com>, Hits: 0.5, size: 3000, queued_as: AAAAA1/BBBBB2, 210 ms'),
    );
    expect(e).toMatchObject({ category: 'BAD-HEADER-0', sender: '', queuedAs: ['AAAAA1', 'BBBBB2'] });
  });

  it('does not read fields from the Subject', () => {
    const [e] = eventsOf(
      line('(01234-07) Passed CLEAN, DEFAULT [192.0.2.50] [192.0.2.50] <p@x.org> -> <u@x.com>, Message-ID: <p@x.org>, mail_id: J1, Hits: -0.1, size: 700, Subject: "x, queued_as: EVIL1, size: 1", 40 ms'),
    );
    expect(e).toMatchObject({ size: 700, policy: 'DEFAULT' });
    expect(e).not.toHaveProperty('queuedAs');
  });

  it('keeps hostile addresses as data', () => {
    const [e] = eventsOf(line('(01234-06) Passed CLEAN [127.0.0.1] <$(id)@x.com> -> <`id`@y.net>, mail_id: D3, Hits: 1.1, size: 512, 12 ms'));
    expect(e).toMatchObject({ sender: '$(id)@x.com', recipients: ['`id`@y.net'], ip: '127.0.0.1' });
    expect(e).not.toHaveProperty('originIp');
  });

  it('recognises routine lines without events and rejects unknown ones', () => {
    for (const m of [
      '(01234-01) Checking: Xy3 ORIGINATING LOCAL [10.0.0.5] <a@x.com> -> <b@y.net>',
      '(01234-01) p001 1/1 Content-Type: text/plain, size: 120',
      '(01234-01) Xy3-aBcDeF_1 FWD from <a@x.com> -> <b@y.net>, BODY=7BIT 250 2.0.0 Ok',
      '(01234-02) (!)ClamAV-clamd: Can\'t connect to UNIX socket',
      'starting. /usr/sbin/amavisd-new at mail amavisd-new-2.11.0',
      'Net::Server: Group Not Defined.',
    ]) {
      expect(status(m), m).toBe(ParseStatus.Recognised);
      expect(eventsOf(line(m))).toEqual([]);
    }
    expect(status('(01234-01) something nobody logs')).toBe(ParseStatus.Unknown);
    expect(status('(01234-01) Passed CLEAN garbage without arrow')).toBe(ParseStatus.Unknown);
  });
});
