import { describe, expect, it } from 'vitest';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:05:01 mail postfix/anvil[801]: ';

describe('postfix-anvil', () => {
  it('rates carry value, period, service and ip', () => {
    expect(eventsOf(`${P}statistics: max message rate 250/60s for (submission:203.0.113.45) at Nov 27 10:02:30`)[0]).toMatchObject({
      kind: 'anvil', statistic: 'message-rate', value: 250, period: 60, service: 'submission', ip: '203.0.113.45',
    });
  });

  it('counts have no period', () => {
    const e = eventsOf(`${P}statistics: max connection count 3 for (smtp:192.0.2.200) at Nov 27 10:01:14`)[0]!;
    expect(e).toMatchObject({ statistic: 'connection-count', value: 3, service: 'smtp', ip: '192.0.2.200' });
    expect('period' in e).toBe(false);
  });

  it('cache size has no ident', () => {
    const e = eventsOf(`${P}statistics: max cache size 3 at Nov 27 10:01:14`)[0]!;
    expect(e).toMatchObject({ statistic: 'cache-size', value: 3 });
    expect('ip' in e || 'service' in e).toBe(false);
  });

  it('IPv6 clients and host:port services', () => {
    expect(eventsOf(`${P}statistics: max auth rate 4/60s for (smtps:2001:db8::66) at Nov 27 10:03:00`)[0]).toMatchObject({ service: 'smtps', ip: '2001:db8::66' });
    expect(eventsOf(`${P}statistics: max connection count 2 for (127.0.0.1:10025:127.0.0.1) at Nov  7 10:01:14`)[0]).toMatchObject({ service: '127.0.0.1:10025', ip: '127.0.0.1' });
    expect(eventsOf(`${P}statistics: max connection count 2 for (127.0.0.1:10025:2001:db8::7) at Nov  7 10:01:14`)[0]).toMatchObject({ service: '127.0.0.1:10025', ip: '2001:db8::7' });
  });

  it('warnings recognised, garbage unknown', () => {
    const { lines } = parseText(`${P}warning: anvil_remote_disconnect: unknown key: smtp:192.0.2.9\n${P}statistics: max\n${P}hello`);
    expect(lines.map((l) => l.status)).toEqual([0, 1, 1]);
  });
});
