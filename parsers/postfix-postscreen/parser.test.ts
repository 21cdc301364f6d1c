import { describe, expect, it } from 'vitest';
import type { EventOf } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';
import { postfixPostscreenParser } from './parser.js';

const P = 'Nov 27 15:00:01 mx postfix/postscreen[901]: ';

describe('postfix-postscreen', () => {
  it('CONNECT keeps ip, port and the local address', () => {
    const [e] = eventsOf(`${P}CONNECT from [2001:db8::25]:40000 to [2001:db8::1]:25`) as EventOf<'postscreen'>[];
    expect(e).toMatchObject({ kind: 'postscreen', action: 'connect', ip: '2001:db8::25', port: 40000, detail: '[2001:db8::1]:25' });
  });

  it('DNSBL rank', () => {
    const [e] = eventsOf(`${P}DNSBL rank 3 for [192.0.2.9]:5555`) as EventOf<'postscreen'>[];
    expect(e).toMatchObject({ action: 'dnsbl', rank: 3, ip: '192.0.2.9', port: 5555 });
  });

  it('PREGREET keeps the raw greeting and the delay', () => {
    const [e] = eventsOf(`${P}PREGREET 11 after 0.07 from [192.0.2.200]:62464: EHLO $(reboot)\\r\\n`) as EventOf<'postscreen'>[];
    expect(e).toMatchObject({ action: 'pregreet', delay: 0.07, detail: 'EHLO $(reboot)\\r\\n' });
  });

  it('HANGUP phase', () => {
    const [e] = eventsOf(`${P}HANGUP after 5.1 from [192.0.2.5]:11986 in tests before SMTP handshake`) as EventOf<'postscreen'>[];
    expect(e).toMatchObject({ action: 'hangup', delay: 5.1, detail: 'before SMTP handshake' });
  });

  it('old and new list names', () => {
    const acts = ['WHITELISTED', 'ALLOWLISTED', 'BLACKLISTED', 'DENYLISTED'].map(
      (w) => (eventsOf(`${P}${w} [192.0.2.1]:1`)[0] as EventOf<'postscreen'>).action,
    );
    expect(acts).toEqual(['allowlisted', 'allowlisted', 'denylisted', 'denylisted']);
  });

  it('NOQUEUE reject: postscreen noqueue + smtp.reject (rbl, list, comma-separated tail)', () => {
    const evs = eventsOf(
      `${P}NOQUEUE: reject: RCPT from [192.0.2.200]:62464: 550 5.7.1 Service unavailable; client [192.0.2.200] blocked using zen.spamhaus.org; from=<$(reboot)@x.com>, to=<alice@example.com>, proto=ESMTP, helo=<USER>`,
    );
    expect(evs.map((e) => e.kind)).toEqual(['postscreen', 'smtp.reject']);
    expect(evs[0]).toMatchObject({ action: 'noqueue', ip: '192.0.2.200', port: 62464 });
    const r = evs[1] as EventOf<'smtp.reject'>;
    expect(r).toMatchObject({ service: 'postscreen', category: 'rbl', list: 'zen.spamhaus.org', code: 550, dsn: '5.7.1', from: '$(reboot)@x.com', to: 'alice@example.com', proto: 'ESMTP', helo: 'USER' });
    expect('clientHost' in r).toBe(false);
  });

  it('too many connections is a rate reject', () => {
    const evs = eventsOf(`${P}NOQUEUE: reject: CONNECT from [192.0.2.212]:1234: too many connections`);
    expect((evs[1] as EventOf<'smtp.reject'>).category).toBe('rate');
  });

  it('recognises cache cleanup and warnings; unknown lines are unknown', () => {
    const { lines } = parseText(
      [
        `${P}cache btree:/var/lib/postfix/postscreen_cache full cleanup: retained=105 dropped=3 entries`,
        `${P}warning: dnsblog reply timeout 10s for zen.spamhaus.org`,
        `${P}SOMETHING NEW [192.0.2.1]:1`,
      ].join('\n'),
    );
    expect(lines.map((l) => l.status)).toEqual([0, 0, 1]);
  });

  it('never throws on truncations', () => {
    const msg = 'NOQUEUE: reject: RCPT from [192.0.2.200]:62464: 550 5.7.1 Service unavailable; client [192.0.2.200] blocked using zen.spamhaus.org; from=<a>, to=<b>, proto=ESMTP, helo=<USER>';
    const others = ['PREGREET 11 after 0.07 from [192.0.2.200]:62464: EHLO', 'HANGUP after 0 from [1.2.3.4]:5 in tests after SMTP handshake', 'DNSBL rank 3 for [1.2.3.4]:5', 'CONNECT from [1.2.3.4]:5 to [5.6.7.8]:25', 'COMMAND PIPELINING from [1.2.3.4]:5 after ?: x'];
    for (const m of [msg, ...others]) {
      for (let i = 0; i <= m.length; i++) {
        const rec: LogRecord = { ts: 0, host: 'h', program: 'postfix/postscreen', pid: 1, message: m.slice(0, i), file: 'f', offset: 0 };
        expect(() => postfixPostscreenParser.parse(rec, [])).not.toThrow();
      }
    }
  });
});
