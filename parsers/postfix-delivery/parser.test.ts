import { describe, expect, it } from 'vitest';
import type { Event, EventOf } from '../../src/core/events.js';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';
import { queuedAsOf, relayIpOf } from './line.js';

const P = 'Nov 27 10:00:01 mail postfix/smtp[2201]: ';

function one<K extends Event['kind']>(line: string, kind: K): EventOf<K> {
  const evs = eventsOf(line);
  expect(evs).toHaveLength(1);
  expect(evs[0]!.kind).toBe(kind);
  return evs[0] as EventOf<K>;
}

function status(line: string): number {
  return parseText(line).lines[0]!.status;
}

function delivery(rest: string, prefix = P): EventOf<'delivery'> {
  return one(`${prefix}3F2A1C0B4: ${rest}`, 'delivery');
}

describe('postfix-delivery: queuedAs', () => {
  it('takes Postfix queued as', () => {
    expect(queuedAsOf('250 2.0.0 Ok: queued as 4F2A3B')).toBe('4F2A3B');
  });
  it('takes the LAST queued as of an amavis re-injection reply', () => {
    expect(queuedAsOf('250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 3F1A2B')).toBe('3F1A2B');
    expect(queuedAsOf('250 2.0.0 Ok: queued as AAAA11 from MTA: 250 2.0.0 Ok: queued as BBBB22')).toBe('BBBB22');
  });
  it('takes long queue ids, capitalised Queued as, local forwards and Exim ids', () => {
    expect(queuedAsOf('250 2.0.0 Ok: queued as 4SgQ2x0Lz9z1xyz')).toBe('4SgQ2x0Lz9z1xyz');
    expect(queuedAsOf('250 2.0.0 Queued as 9A8B7C.')).toBe('9A8B7C');
    expect(queuedAsOf('forwarded as C23CE317C6')).toBe('C23CE317C6');
    expect(queuedAsOf('250 OK id=1r7abc-0001Xy-2Q')).toBe('1r7abc-0001Xy-2Q');
  });
  it('has none for other replies', () => {
    expect(queuedAsOf('250 2.1.5 Delivery OK')).toBeUndefined();
    expect(queuedAsOf('250 2.6.0 <x@y> [InternalId=1] Queued mail for delivery')).toBeUndefined();
    expect(queuedAsOf('250 queued as ')).toBeUndefined();
  });
  it('is set on the event only for status=sent', () => {
    const sent = delivery('to=<u@example.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.1, delays=0.22/0.02/0/0.81, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 3F1A2B)');
    expect(sent.queuedAs).toBe('3F1A2B');
    expect(sent.relayIp).toBe('127.0.0.1');
    expect(sent.reply).toBe('250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 3F1A2B');
    const bounced = delivery('to=<u@example.com>, relay=mx.x[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=5.0.0, status=bounced (host mx.x[192.0.2.1] said: 550 nope (queued as FAKE) (in reply to end of DATA command))');
    expect(bounced).not.toHaveProperty('queuedAs');
  });
});

describe('postfix-delivery: fields', () => {
  it('parses every field of a full line', () => {
    const e = delivery('to=<carol@example.org>, orig_to=<team@example.com>, relay=mx1.example.org[203.0.113.25]:25, conn_use=2, delay=0.6, delays=0.1/0.05/0.2/0.25, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F2A3C)');
    expect(e).toMatchObject({
      queueId: '3F2A1C0B4',
      agent: 'smtp',
      to: 'carol@example.org',
      origTo: 'team@example.com',
      relay: 'mx1.example.org[203.0.113.25]:25',
      relayIp: '203.0.113.25',
      connUse: 2,
      delay: 0.6,
      delays: '0.1/0.05/0.2/0.25',
      dsn: '2.0.0',
      status: 'sent',
      reply: '250 2.0.0 Ok: queued as 4F2A3C',
      queuedAs: '4F2A3C',
    });
  });
  it('sets no optional field that is absent', () => {
    const e = delivery('to=<u@example.com>, relay=none, delay=0.05, status=bounced (Host or domain name not found)');
    expect(Object.keys(e).sort()).toEqual(['agent', 'delay', 'host', 'kind', 'program', 'queueId', 'relay', 'reply', 'src', 'status', 'to', 'ts']);
    expect(Object.values(e)).not.toContain(undefined);
  });
  it.each(['sent', 'deferred', 'bounced', 'expired', 'undeliverable', 'deliverable', 'softbounce'])('accepts status=%s', (s) => {
    expect(delivery(`to=<u@example.com>, relay=none, delay=1, delays=1/0/0/0, dsn=4.0.0, status=${s} (text)`).status).toBe(s);
  });
  it('treats an unknown status as an unknown line', () => {
    expect(status(`${P}3F2A1C0B4: to=<u@example.com>, relay=none, delay=1, status=weird (x)`)).toBe(ParseStatus.Unknown);
  });
  it('keeps the reply verbatim, nested parentheses included', () => {
    const e = delivery('to=<u@x.example>, relay=mx.x.example[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=4.2.0, status=deferred (host mx.x.example[192.0.2.1] said: 450 4.2.0 Greylisted (see http://x/) (in reply to RCPT TO command))');
    expect(e.reply).toBe('host mx.x.example[192.0.2.1] said: 450 4.2.0 Greylisted (see http://x/) (in reply to RCPT TO command)');
  });
  it('reads relayIp only from host[ip]', () => {
    expect(relayIpOf('mail.example.com[10.0.0.5]:7025')).toBe('10.0.0.5');
    expect(relayIpOf('mx2.comcast.net[2001:558:fe21:2a::6]:25')).toBe('2001:558:fe21:2a::6');
    expect(relayIpOf('mx[ipv6:2001:db8::1]:25')).toBe('2001:db8::1');
    expect(relayIpOf('mailstore[/var/run/dovecot/lmtp]')).toBeUndefined();
    expect(relayIpOf('private/dovecot-lmtp')).toBeUndefined();
    expect(relayIpOf('none')).toBeUndefined();
    expect(relayIpOf('local')).toBeUndefined();
  });
  it('uses the daemon name as agent, across instances and services', () => {
    expect(delivery('to=<u@x>, relay=local, delay=0.1, status=sent (delivered to mailbox)', 'Nov 27 10:00:01 mail postfix/local[1]: ').agent).toBe('local');
    expect(delivery('to=<u@x>, relay=mail.example.com[10.0.0.5]:7025, delay=0.1, status=sent (250 2.1.5 Delivery OK)', 'Nov 27 10:00:01 zimbra postfix/lmtp[1]: ').agent).toBe('lmtp');
    expect(delivery('to=<u@x>, relay=none, delay=0.1, status=sent (ok)', 'Nov 27 10:00:01 mail postfix-out/relay/smtp[1]: ').agent).toBe('smtp');
  });
});

describe('postfix-delivery: hostile addresses stay data', () => {
  it.each([
    '$(reboot)@x.com',
    '`id`@x.com',
    '"quoted user"@x.com',
    "'; DROP TABLE users; --@x.com",
    'a>b@x.com',
    'a> b@x.com',
    'a>,b@x.com',
  ])('round-trips to=<%s>', (addr) => {
    const e = delivery(`to=<${addr}>, orig_to=<${addr}>, relay=mx.x.com[192.0.2.10]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)`);
    expect(e.to).toBe(addr);
    expect(e.origTo).toBe(addr);
    expect(e.relay).toBe('mx.x.com[192.0.2.10]:25');
  });
});

describe('postfix-delivery: other lines', () => {
  it('emits smtp.tls direction out', () => {
    const e = one(`${P}Trusted TLS connection established to gmail-smtp-in.l.google.com[142.250.27.26]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519`, 'smtp.tls');
    expect(e).toMatchObject({ direction: 'out', service: 'smtp', ip: '142.250.27.26', clientHost: 'gmail-smtp-in.l.google.com', tlsProtocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', trust: 'Trusted' });
  });
  it.each([
    '3F2A1C0B4: host mx.x[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)',
    '3F2A1C0B4: host mx.x[192.0.2.1] refused to talk to me: 554 5.7.1 go away',
    '3F2A1C0B4: lost connection with mx.x[192.0.2.1] while sending RCPT TO',
    '3F2A1C0B4: conversation with mx.x[192.0.2.1] timed out while sending end of data -- message may be sent more than once',
    '3F2A1C0B4: enabling PIX workarounds: disable_esmtp delay_dotcrlf for mx.x[192.0.2.1]:25',
    'connect to mx.x[192.0.2.1]:25: Connection refused',
    'warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol',
    'discarding EHLO keywords: 8BITMIME STARTTLS',
  ])('recognises %s without an event', (rest) => {
    const r = parseText(P + rest);
    expect(r.lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(r.events).toHaveLength(0);
  });
  it('leaves unknown lines unknown', () => {
    expect(status(`${P}something nobody logs`)).toBe(ParseStatus.Unknown);
    expect(status(`${P}3F2A1C0B4: something nobody logs`)).toBe(ParseStatus.Unknown);
    expect(status(`${P}3F2A1C0B4: to=<u@x>, no relay here`)).toBe(ParseStatus.Unknown);
  });
});
