import { describe, expect, it } from 'vitest';
import type { Event, EventOf } from '../../src/core/events.js';
import { ParseStatus } from '../../src/core/dispatch.js';
import { eventsOf, parseText } from '../../test/helpers/parse.js';

const P = 'Nov 27 10:00:01 mail postfix/qmgr[1234]: ';

function one<K extends Event['kind']>(line: string, kind: K): EventOf<K> {
  const evs = eventsOf(line);
  expect(evs).toHaveLength(1);
  expect(evs[0]!.kind).toBe(kind);
  return evs[0] as EventOf<K>;
}

describe('postfix-qmgr', () => {
  it('parses queue active', () => {
    expect(one(`${P}3F2A1C0B4: from=<a@b.c>, size=1234, nrcpt=2 (queue active)`, 'queue.from')).toMatchObject({ queueId: '3F2A1C0B4', sender: 'a@b.c', size: 1234, nrcpt: 2 });
  });
  it('gives the null sender as an empty string', () => {
    expect(one(`${P}3F2A1C0B4: from=<>, size=1, nrcpt=1 (queue active)`, 'queue.from').sender).toBe('');
  });
  it.each(['$(reboot)@x.com', '`id`@x', 'a>b@x', 'a> b@x', '"q"@x'])('round-trips from=<%s>', (s) => {
    expect(one(`${P}4Z3Tsbq50Bz7LV0: from=<${s}>, size=1, nrcpt=1 (queue active)`, 'queue.from').sender).toBe(s);
  });
  it('parses removed and expiry', () => {
    expect(one(`${P}3F2A1C0B4: removed`, 'queue.removed').queueId).toBe('3F2A1C0B4');
    expect(one(`${P}3F2A1C0B4: from=<a@b.c>, status=expired, returned to sender`, 'queue.expired')).toMatchObject({ sender: 'a@b.c', reason: 'expired' });
    expect(one(`${P}3F2A1C0B4: from=<>, status=force-expired, returned to sender`, 'queue.expired')).toMatchObject({ sender: '', reason: 'force-expired' });
  });
  it('parses its delivery-style lines with agent qmgr', () => {
    const e = one(`${P}3F2A1C0B4: to=<x@y>, relay=none, delay=3600, delays=3600/0/0/0, dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to mx.y[192.0.2.9]:25: Connection timed out)`, 'delivery');
    expect(e).toMatchObject({ agent: 'qmgr', status: 'deferred', relay: 'none' });
    expect(e).not.toHaveProperty('relayIp');
  });
  it('recognises skipped and warnings, and nothing else', () => {
    for (const l of ['3F2A1C0B4: skipped, still being delivered', 'warning: lots of deferred mail, that is bad for performance']) {
      const r = parseText(P + l);
      expect(r.lines[0]!.status).toBe(ParseStatus.Recognised);
      expect(r.events).toHaveLength(0);
    }
    expect(parseText(`${P}3F2A1C0B4: removed twice`).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(`${P}3F2A1C0B4: from=<a@b.c>, status=bogus, x`).lines[0]!.status).toBe(ParseStatus.Unknown);
    expect(parseText(`${P}hello`).lines[0]!.status).toBe(ParseStatus.Unknown);
  });
});
