import { describe, expect, it } from 'vitest';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 15:00:09 mx postfix/dnsblog[911]: ';

describe('postfix-dnsblog', () => {
  it('listed by domain → dnsbl', () => {
    expect(eventsOf(`${P}addr 192.0.2.200 listed by domain zen.spamhaus.org as 127.0.0.4`)).toMatchObject([
      { kind: 'dnsbl', ip: '192.0.2.200', list: 'zen.spamhaus.org', reply: '127.0.0.4', program: 'postfix/dnsblog' },
    ]);
  });

  it('IPv6 address', () => {
    expect(eventsOf(`${P}addr 2001:db8::25 listed by domain zen.spamhaus.org as 127.0.0.3`)[0]).toMatchObject({ ip: '2001:db8::25' });
  });

  it('warnings are recognised, other lines are unknown', () => {
    const { lines } = parseText(`${P}warning: dnsblog_query: lookup error for DNS query x: Host not found\n${P}addr 1.2.3.4 something else`);
    expect(lines.map((l) => l.status)).toEqual([0, 1]);
    expect(lines[0]!.events).toEqual([]);
  });
});
