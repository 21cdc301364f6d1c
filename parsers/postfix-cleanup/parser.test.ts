import { describe, expect, it } from 'vitest';
import type { Event, EventOf } from '../../src/core/events.js';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:00:01 mail postfix/cleanup[1300]: ';

function one<K extends Event['kind']>(line: string, kind: K): EventOf<K> {
  const evs = eventsOf(line);
  expect(evs).toHaveLength(1);
  expect(evs[0]!.kind).toBe(kind);
  return evs[0] as EventOf<K>;
}

describe('postfix-cleanup: message-id', () => {
  it.each(['<a@b>', '<>', '', 'no-brackets', '<x y "z" $(reboot)>'])('keeps message-id=%s as logged', (id) => {
    expect(one(`${P}3F2A1C0B4: message-id=${id}`, 'queue.messageid').messageId).toBe(id);
  });
  it('recognises resent-message-id without an event', () => {
    const r = parseText(`${P}3F2A1C0B4: resent-message-id=<r@b>`);
    expect(r.lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(r.events).toHaveLength(0);
  });
});

describe('postfix-cleanup: header/body checks', () => {
  it('parses a header reject', () => {
    const e = one(`${P}3F2A1C0B4: reject: header Subject: hello from you from unknown[203.0.113.77]; from=<spam@yahoo.com.tw> to=<v@example.com> proto=ESMTP helo=<[203.0.113.77]>: 5.7.1 Message content rejected`, 'cleanup.action');
    expect(e).toMatchObject({
      action: 'reject',
      check: 'header',
      detail: 'Subject: hello from you',
      ip: '203.0.113.77',
      clientHost: 'unknown',
      from: 'spam@yahoo.com.tw',
      to: 'v@example.com',
      proto: 'ESMTP',
      helo: '[203.0.113.77]',
      reason: '5.7.1 Message content rejected',
    });
  });
  it('handles local submissions without proto/helo and no text', () => {
    const e = one(`${P}3F2A1C0B4: hold: body click here from local; from=<www-data@x>`, 'cleanup.action');
    expect(e).toMatchObject({ action: 'hold', check: 'body', detail: 'click here', clientHost: 'local', from: 'www-data@x' });
    expect(e).not.toHaveProperty('ip');
    expect(e).not.toHaveProperty('reason');
    expect(e).not.toHaveProperty('helo');
  });
  it('keeps hostile envelope values as data', () => {
    const e = one(`${P}3F2A1C0B4: warning: header X: y from h[192.0.2.1]; from=<a>b$(id)@x> to=<\`c\`@y> proto=ESMTP helo=<h>x>: t`, 'cleanup.action');
    expect(e).toMatchObject({ action: 'warning', from: 'a>b$(id)@x', to: '`c`@y', helo: 'h>x', reason: 't' });
  });
});

describe('postfix-cleanup: milter', () => {
  it.each([
    ['milter-reject', 'reject', '5.7.1 Spam; really'],
    ['milter-discard', 'discard', 'milter triggers DISCARD action'],
    ['milter-hold', 'hold', 'milter triggers HOLD action'],
  ])('%s', (tag, action, reply) => {
    const e = one(`${P}3F2A1C0B4: ${tag}: END-OF-MESSAGE from mx.x[192.0.2.8]: ${reply}; from=<> to=<p@example.com> proto=ESMTP helo=<mx.x>`, 'cleanup.action');
    expect(e).toMatchObject({ action, check: 'milter', detail: 'END-OF-MESSAGE', reason: reply, ip: '192.0.2.8', clientHost: 'mx.x', from: '', to: 'p@example.com', proto: 'ESMTP', helo: 'mx.x' });
  });
  it('handles an IPv6 client', () => {
    const e = one(`${P}3F2A1C0B4: milter-reject: END-OF-MESSAGE from mx.x[2001:db8::1]: 5.7.1 no; from=<a@b> to=<c@d> proto=ESMTP helo=<h>`, 'cleanup.action');
    expect(e).toMatchObject({ ip: '2001:db8::1', clientHost: 'mx.x', reason: '5.7.1 no' });
  });
});

describe('postfix-cleanup: the rest', () => {
  it('recognises warnings, not unknown shapes', () => {
    expect(parseText(`${P}warning: milter inet:127.0.0.1:8891: can't read SMFIC_OPTNEG reply packet header: Connection refused`).lines[0]!.status).toBe(ParseStatus.Recognised);
    expect(parseText(`${P}3F2A1C0B4: frobnicate: header X from h[1.2.3.4];`).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(`${P}3F2A1C0B4: reject: header X without origin`).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(`${P}hello`).lines[0]!.status).toBe(ParseStatus.Unknown);
  });
});
