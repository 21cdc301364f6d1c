import { describe, expect, it } from 'vitest';
import { generateLines } from '../bench/generate.js';
import { eventRowWithJson } from '../src/clickhouse/rows.js';
import { tabSeparated } from '../src/clickhouse/tsv.js';
import type { Event } from '../src/core/events.js';
import type { Message } from '../src/correlator/message.js';
import { ParsePartition } from '../src/distributed/parse-partition.js';
import { BLOCK_BYTES, decodeChunk, decodeItems, encodeChunk, encodeItems, linesOf, requestsWithin, type LineChunk, type RoutedItem } from '../src/distributed/wire.js';
import { ZoneClock } from '../src/envelope/zone.js';

const rec = (topic: string, partition: number | undefined, bytes: number, n: number) => ({ topic, ...(partition === undefined ? {} : { partition }), value: Buffer.alloc(bytes, 97), n });

describe('requestsWithin (records of one transaction split so no partition exceeds the broker batch limit)', () => {
  it('keeps a small transaction in one request', () => {
    const records = [rec('ev', 0, 100, 0), rec('ev', 1, 100, 1), rec('dead', undefined, 50, 2)];
    expect(requestsWithin(records, 1000)).toEqual([records]);
  });

  it('gives each request at most the budget per partition, in order, losing nothing', () => {
    const records = [];
    for (let i = 0; i < 40; i++) records.push(rec('ev', i % 3, 300, i));
    const requests = requestsWithin(records, 1000);
    expect(requests.length).toBeGreaterThan(1);
    for (const req of requests) {
      const perPartition = new Map<number, number>();
      for (const r of req) perPartition.set(r.partition!, (perPartition.get(r.partition!) ?? 0) + r.value.length);
      for (const bytes of perPartition.values()) expect(bytes).toBeLessThanOrEqual(1000);
    }
    // Every record once, and each partition's records in their original order across requests.
    const flat = requests.flat();
    expect(flat.map((r) => r.n).sort((a, b) => a - b)).toEqual(records.map((r) => r.n));
    for (const p of [0, 1, 2]) {
      const seq = flat.filter((r) => r.partition === p).map((r) => r.n);
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
    }
  });

  it('counts topics apart: the same partition number of two topics has two budgets', () => {
    const records = [rec('ev', 0, 600, 0), rec('dead', 0, 600, 1), rec('ev', 0, 600, 2)];
    const requests = requestsWithin(records, 1000);
    expect(requests.map((r) => r.map((x) => x.n))).toEqual([[0, 1], [2]]);
  });

  it('sends a record bigger than the budget alone rather than dropping it', () => {
    const records = [rec('ev', 0, 100, 0), rec('ev', 0, 5000, 1), rec('ev', 0, 100, 2)];
    expect(requestsWithin(records, 1000).map((r) => r.map((x) => x.n))).toEqual([[0], [1], [2]]);
  });
});

describe('items on the events topic (encodeItems / decodeItems)', () => {
  const event = { kind: 'auth', ts: 1_795_000_000_123, host: 'mx1', program: 'zimbra', src: { file: '/var/log/zimbra.log', offset: 42 }, account: 'Ann@example.com', ip: '203.0.113.7', note: 'tab\there "quoted" \\ back' } as unknown as Event;
  const message = { host: 'mx1', queueId: 'ABC123', firstTs: 1, lastTs: 2, recipients: [{ address: 'b@example.net', status: 'sent' }] } as unknown as Message;
  const items: RoutedItem[] = [
    { route: { kind: 'account', key: 'ann@example.com' }, primary: true, n: 0, event },
    { route: { kind: 'ip', key: '203.0.113.7' }, primary: false, n: 3, event },
    { route: { kind: 'host', key: 'odd "key"\twith\\escapes\u2028' }, primary: true, message },
    { route: { kind: 'account', key: 'ann@example.com' }, primary: false, handOff: { detector: 'plaintext-auth', data: { at: 5, why: ['x'] } } },
    { route: { kind: 'ip', key: '203.0.113.7' }, primary: true, submission: message },
    { route: { kind: 'account', key: 'ann@example.com' }, primary: false, settled: message },
  ];

  it('round-trips every kind of item, route and key; events and messages keep their JSON text for the row', () => {
    const bad: string[] = [];
    const out = encodeItems(items).flatMap((b) => decodeItems(b, (reason) => bad.push(reason)));
    expect(bad).toEqual([]);
    expect(out.map(({ json: _json, ...it }) => it)).toEqual(items);
    expect(out[0]!.json).toBe(JSON.stringify(event));
    expect(out[2]!.json).toBe(JSON.stringify(message));
    expect(out[3]!.json).toBeUndefined();
    expect(out[4]!.json).toBe(JSON.stringify(message));
    expect(out[5]!.settled).toEqual(message);
  });

  it('sends the JSON text an item carries instead of serialising its event again (the parse stage serialises once for all routes)', () => {
    // Text that JSON.stringify(event) would not give: proves the carried text is what travels.
    const carried = JSON.stringify({ ...event, marker: 'carried' });
    const out = encodeItems([{ ...items[0]!, json: carried }]).flatMap((b) => decodeItems(b, () => undefined));
    expect(out[0]!.json).toBe(carried);
    expect((out[0]!.event as unknown as { marker?: string }).marker).toBe('carried');
  });

  it('cuts records at maxBytes without losing or reordering items', () => {
    const many = Array.from({ length: 300 }, (_, i): RoutedItem => ({ route: { kind: 'account', key: `u${i}@example.com` }, primary: true, n: i, event }));
    const records = encodeItems(many, 4096);
    expect(records.length).toBeGreaterThan(10);
    expect(records.flatMap((b) => decodeItems(b, () => undefined)).map((it) => it.n)).toEqual(many.map((it) => it.n));
  });

  it('still reads the first version (one JSON object per item), for a rolling upgrade', () => {
    const v1 = [JSON.stringify({ r: 'a', k: 'ann@example.com', p: 1, n: 2, e: event }), JSON.stringify({ r: 'h', k: 'mx1', m: message }), JSON.stringify({ r: 'i', k: '203.0.113.7', h: { d: 'dnsbl', x: 1 } })].join('\n');
    const out = decodeItems(Buffer.from(v1), () => expect.unreachable());
    expect(out).toEqual([
      { route: { kind: 'account', key: 'ann@example.com' }, primary: true, n: 2, event },
      { route: { kind: 'host', key: 'mx1' }, primary: false, message },
      { route: { kind: 'ip', key: '203.0.113.7' }, primary: false, handOff: { detector: 'dnsbl', data: 1 } },
    ]);
  });

  it('passes lines that are not items to bad() and keeps their neighbours', () => {
    const good = encodeItems([items[0]!])[0]!.toString();
    const lines = [good, 'ea1\t"k"\t{not json', 'xa1\t"k"\t{}', 'ez1\t"k"\t{}', 'ea1x\t"k"\t{}', 'ea1', 'ha0\t"k"\t{"x":1}', '{"r":"a"}', good];
    const bad: string[] = [];
    const out = decodeItems(Buffer.from(lines.join('\n')), (_reason, line) => bad.push(line));
    expect(out).toHaveLength(2);
    expect(bad).toEqual(lines.slice(1, -1));
  });
});

describe('items the parse stage routes', () => {
  const mailLog = (lines: string[]) => ({ host: 'mx1', file: '/var/log/mail.log', source: 's1', format: 'auto' as const, mtime: Date.UTC(2026, 10, 27), offsets: lines.map((_, i) => i * 200), lines });
  const SASL = 'Nov 27 10:00:01 mx1 postfix/smtpd[123]: 4ABCD1234: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=ann@example.com';
  const FROM = 'Nov 27 10:00:01 mx1 postfix/qmgr[9]: 4ABCD1234: from=<ann@example.com>, size=1200, nrcpt=1 (queue active)';
  const SENT = 'Nov 27 10:00:02 mx1 postfix/smtp[10]: 4ABCD1234: to=<x@elsewhere.example>, relay=mx.elsewhere.example[198.51.100.7]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)';
  const REMOVED = 'Nov 27 10:00:02 mx1 postfix/qmgr[9]: 4ABCD1234: removed';

  it('carry their event serialised once, the same text for every route, and no object of it until they are sent', () => {
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 60_000, maxEntries: 1000 });
    part.feed(mailLog([SASL]));
    const items = part.takeOutput();
    expect(items.map((it) => it.route.kind)).toEqual(['account', 'ip']);
    expect(items.map((it) => it.primary)).toEqual([true, false]);
    expect(items.every((it) => it.event === undefined && it.message === undefined)).toBe(true);
    const decoded = encodeItems(items).flatMap((b) => decodeItems(b, () => undefined));
    expect(decoded.map((it) => it.route.kind)).toEqual(['account', 'ip']);
    expect(decoded.map((it) => it.primary)).toEqual([true, false]);
    expect(decoded[0]!.event?.kind).toBe('smtp.client');
    expect(decoded[0]!.json).toBe(JSON.stringify(decoded[0]!.event));
    expect(decoded[1]!.json).toBe(decoded[0]!.json);
  });

  it('when the partition stores: a row for every event and message, no stored copy among the items, unread events not routed', () => {
    const reads = (e: Event) => e.kind === 'smtp.client';
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 60_000, maxEntries: 1000, stores: { reads } });
    const plain = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 60_000, maxEntries: 1000 });
    for (const p of [part, plain]) {
      p.feed(mailLog([SASL, FROM, SENT, REMOVED]));
      p.flush();
    }
    const rows = part.takeRows();
    const all = encodeItems(plain.takeOutput()).flatMap((b) => decodeItems(b, () => undefined));
    const primaryEvents = all.filter((it) => it.primary && it.event);
    // the same rows as the detect stage would have stored from the primary copies, with the same text
    const eventRows = Array.from({ length: rows.events.length }, (_, i) => rows.events.rowObject(i));
    expect(eventRows.map((r) => r.json)).toEqual(primaryEvents.map((it) => it.json));
    expect(eventRows.map((r) => r.kind)).toEqual(['smtp.client', 'queue.from', 'delivery', 'queue.removed']);
    // each line is the row the detect stage made from the primary copy, as a TabSeparated insert sends it
    for (let i = 0; i < eventRows.length; i++) {
      const it = primaryEvents[i]!;
      expect(rows.events.line(i) + '\n').toBe(tabSeparated([eventRowWithJson(it.event!, it.n ?? 0, it.json!)])!.body);
    }
    expect(rows.messages).toHaveLength(1);
    expect(rows.messages[0]!.json).toBe(all.find((it) => it.primary && it.message)!.json);
    const routed = encodeItems(part.takeOutput()).flatMap((b) => decodeItems(b, () => undefined));
    expect(routed.every((it) => !it.primary)).toBe(true);
    expect(routed.filter((it) => it.event).map((it) => it.event!.kind)).toEqual(['smtp.client', 'smtp.client']); // account and IP
    expect(routed.filter((it) => it.message)).toHaveLength(all.filter((it) => it.message).length); // messages always go
    expect(part.storedOnly).toBe(3);
    expect(part.takeRows().events.length).toBe(0); // taken once
    expect(plain.takeRows().events.length).toBe(0); // a partition that does not store makes none
  });
});

describe('submissions the parse stage routes', () => {
  const mailLog = (lines: string[]) => ({ host: 'mx1', file: '/var/log/mail.log', source: 's1', format: 'auto' as const, mtime: Date.UTC(2026, 10, 27), offsets: lines.map((_, i) => i * 200), lines });
  const SASL = 'Nov 27 10:00:01 mx1 postfix/smtpd[123]: 4ABCD1234: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=ann@example.com';
  const FROM = 'Nov 27 10:00:01 mx1 postfix/qmgr[9]: 4ABCD1234: from=<x@yahoo.com.tw>, size=1200, nrcpt=3 (queue active)';
  const DEFERRED = 'Nov 27 10:00:02 mx1 postfix/smtp[10]: 4ABCD1234: to=<v@yahoo.com>, relay=mta5.am0.yahoodns.net[67.195.204.72]:25, delay=2, delays=0.1/0/0.6/1.3, dsn=4.7.0, status=deferred (421 4.7.0 [TSS04] try later)';

  it('go out at the qmgr line, before its event, by the account and the IP, and are never stored', () => {
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 60_000, maxEntries: 1000, stores: { reads: () => true } });
    part.feed(mailLog([SASL, FROM, DEFERRED]));
    const out = encodeItems(part.takeOutput()).flatMap((b) => decodeItems(b, () => undefined));
    const kinds = out.map((it) => (it.event ? it.event.kind : it.submission ? 'submission' : it.message ? 'message' : 'other'));
    expect(kinds).toEqual(['smtp.client', 'smtp.client', 'submission', 'submission', 'queue.from', 'delivery']);
    const subs = out.filter((it) => it.submission);
    expect(subs.map((it) => it.route)).toEqual([
      { kind: 'account', key: 'ann@example.com' },
      { kind: 'ip', key: '203.0.113.9' },
    ]);
    expect(subs[0]!.submission).toMatchObject({ queueId: '4ABCD1234', saslUser: 'ann@example.com', sender: 'x@yahoo.com.tw', nrcpt: 3, recipients: [] });
    const rows = part.takeRows();
    expect(rows.messages).toHaveLength(0); // the message is stored when it is emitted, not when it is queued
    expect(rows.events.length).toBe(3);
  });

  it('are not sent when no enabled detector reads them', () => {
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 60_000, maxEntries: 1000, stores: { reads: () => true }, submissions: false });
    part.feed(mailLog([SASL, FROM, DEFERRED]));
    const out = encodeItems(part.takeOutput()).flatMap((b) => decodeItems(b, () => undefined));
    expect(out.map((it) => it.event?.kind)).toEqual(['smtp.client', 'smtp.client', 'queue.from', 'delivery']);
  });
});

describe("a held message's settled recipients, as the parse stage routes them", () => {
  const mailLog = (lines: string[]) => ({ host: 'mx1', file: '/var/log/mail.log', source: 's1', format: 'auto' as const, mtime: Date.UTC(2026, 10, 27), offsets: lines.map((_, i) => i * 200), lines });
  const deferred = (t: string, to: string) =>
    `Nov 27 ${t} mx1 postfix/smtp[10]: 4ABCD1234: to=<${to}>, relay=mta5.am0.yahoodns.net[67.195.204.72]:25, delay=2, delays=0.1/0/0.6/1.3, dsn=4.7.0, status=deferred (421 4.7.0 [TSS04] try later)`;
  const log = [
    'Nov 27 10:00:01 mx1 postfix/smtpd[123]: 4ABCD1234: client=unknown[203.0.113.9], sasl_method=LOGIN, sasl_username=ann@example.com',
    'Nov 27 10:00:01 mx1 postfix/qmgr[9]: 4ABCD1234: from=<ann@example.com>, size=1200, nrcpt=2 (queue active)',
    'Nov 27 10:00:02 mx1 postfix/smtp[10]: 4ABCD1234: to=<w@example.net>, relay=mx.example.net[198.51.100.7]:25, delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 ok)',
    deferred('10:00:02', 'v@yahoo.com'),
    deferred('10:05:10', 'v@yahoo.com'),
    deferred('10:15:30', 'v@yahoo.com'),
  ];

  it('go out at the retry that shows the mail held, by the account and the IP, and are never stored', () => {
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 7200_000, maxEntries: 1000, stores: { reads: () => true }, submissions: false });
    part.feed(mailLog(log));
    const out = encodeItems(part.takeOutput()).flatMap((b) => decodeItems(b, () => undefined));
    const settled = out.filter((it) => it.settled);
    expect(settled.map((it) => it.route)).toEqual([
      { kind: 'account', key: 'ann@example.com' },
      { kind: 'ip', key: '203.0.113.9' },
    ]);
    expect(settled.every((it) => !it.primary)).toBe(true);
    expect(settled[0]!.settled!.recipients.map((r) => [r.address, r.status, r.settled])).toEqual([
      ['w@example.net', 'sent', true],
      ['v@yahoo.com', 'deferred', true],
    ]);
    // at the retry 15 min in (the one 5 min in showed greylisting-like delay only)
    expect(settled[0]!.settled!.lastTs).toBe(Date.UTC(2026, 10, 27, 10, 15, 30));
    expect(part.takeRows().messages).toHaveLength(0);
  });

  it('are not sent when no enabled detector reads them', () => {
    const part = new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 7200_000, maxEntries: 1000, stores: { reads: () => true }, submissions: false, settled: false });
    part.feed(mailLog(log));
    expect(encodeItems(part.takeOutput()).flatMap((b) => decodeItems(b, () => undefined)).filter((it) => it.settled)).toEqual([]);
  });
});

describe('a parse partition fed only to rebuild its state', () => {
  // Generated mail log in records of 500 lines, as a shipper sends them.
  const chunks = (() => {
    const lines = [...generateLines({ lines: 6000, seed: 31 })];
    const out: LineChunk[] = [];
    let offset = 0;
    for (let i = 0; i < lines.length; i += 500) {
      const part = lines.slice(i, i + 500);
      const offsets = part.map((l) => (offset += Buffer.byteLength(l) + 1) - Buffer.byteLength(l) - 1);
      out.push(decodeChunk(encodeChunk({ host: 'mx1', file: '/var/log/mail.log', source: 'mx1:1', format: 'auto', mtime: Date.UTC(2026, 10, 28), offsets, lines: part })));
    }
    return out;
  })();
  const storing = () => new ParsePartition({ zone: new ZoneClock('UTC'), idleTimeoutMs: 3_600_000, maxEntries: 100_000, stores: { reads: () => true } });
  const text = (p: ParsePartition) => {
    const rows = p.takeRows();
    return {
      events: Array.from({ length: rows.events.length }, (_, i) => rows.events.line(i)),
      messages: rows.messages.map((m) => m.json),
      items: p.takeOutput().map((it) => it.line),
    };
  };

  it('makes no items or rows, and afterwards the same output as a partition that made them', () => {
    const whole = storing();
    const rebuilt = storing();
    const cut = 6;
    for (let i = 0; i < cut; i++) {
      whole.feed(chunks[i]!);
      text(whole);
      rebuilt.feed(chunks[i]!, true);
      expect(text(rebuilt)).toEqual({ events: [], messages: [], items: [] });
    }
    const after = { whole: { events: [] as string[], messages: [] as string[], items: [] as (string | undefined)[] }, rebuilt: { events: [] as string[], messages: [] as string[], items: [] as (string | undefined)[] } };
    for (let i = cut; i < chunks.length; i++) {
      for (const [name, p] of [['whole', whole], ['rebuilt', rebuilt]] as const) {
        p.feed(chunks[i]!);
        const t = text(p);
        after[name].events.push(...t.events);
        after[name].messages.push(...t.messages);
        after[name].items.push(...t.items);
      }
    }
    // Messages that began before the cut are among them, whole: the rebuilt state had their first lines.
    expect(after.whole.messages.length).toBeGreaterThan(50);
    expect(after.rebuilt).toEqual(after.whole);
    expect(rebuilt.snapshot()).toEqual(whole.snapshot());
  });

  it('needs those chunks: a partition fed only the later ones makes other messages (begun before, without their start)', () => {
    const cold = storing();
    const whole = storing();
    for (let i = 0; i < 6; i++) whole.feed(chunks[i]!, true);
    const messages = (p: ParsePartition) => {
      const out: string[] = [];
      for (let i = 6; i < chunks.length; i++) {
        p.feed(chunks[i]!);
        out.push(...text(p).messages);
      }
      return out;
    };
    expect(messages(cold)).not.toEqual(messages(whole));
  });
});

describe('linesOf and the record size (no string over a block: V8 maps each large string afresh)', () => {
  // A deterministic mix: ASCII, 2- to 4-byte UTF-8, an invalid lead byte right before a newline, empty lines, and lines longer than a block.
  function sample(seed: number, lines: number): Buffer {
    let x = seed;
    const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const parts: Buffer[] = [];
    for (let i = 0; i < lines; i++) {
      const kind = rnd(20);
      if (kind === 0) parts.push(Buffer.from('x'.repeat(BLOCK_BYTES + rnd(5000))));
      else if (kind === 1) parts.push(Buffer.from([0x61, 0xe2, 0x82])); // truncated 3-byte sequence
      else if (kind === 2) parts.push(Buffer.alloc(0));
      else parts.push(Buffer.from(`line ${i} ü€𝄞 `.repeat(1 + rnd(400))));
      parts.push(Buffer.from('\n'));
    }
    return Buffer.concat(parts);
  }

  it('gives what toString().split() gives, for any start and end', () => {
    for (const seed of [1, 2, 3]) {
      const buf = sample(seed, 300);
      expect(buf.length).toBeGreaterThan(4 * BLOCK_BYTES);
      for (const [a, b] of [[0, buf.length], [7, buf.length - 3], [0, BLOCK_BYTES + 1], [0, 0], [100, BLOCK_BYTES * 3]] as const) {
        expect(linesOf(buf, a, b)).toEqual(buf.toString('utf8', a, b).split('\n'));
      }
    }
  });

  it('decodes a chunk far bigger than a block to its lines and offsets', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `Nov 28 10:00:00 mx1 postfix/smtpd[1]: line ${i} ${'é'.repeat(i % 50)}`);
    const offsets = lines.map((_, i) => i * 100);
    const buf = encodeChunk({ host: 'mx1', file: '/var/log/mail.log', source: 'mx1:1:2:0', format: 'auto', mtime: 1, offsets, lines });
    expect(buf.length).toBeGreaterThan(3 * BLOCK_BYTES);
    const back = decodeChunk(buf);
    expect(back.lines).toEqual(lines);
    expect(back.offsets).toEqual(offsets);
  });

  it('cuts event records at a block by default', () => {
    const items: RoutedItem[] = Array.from({ length: 2000 }, (_, i) => ({ route: { kind: 'account', key: `u${i}@example.com` }, primary: true, n: 0, event: { kind: 'auth', ts: i, host: 'mx1', program: 'postfix/smtpd', account: `u${i}@example.com`, ip: '192.0.2.1', ok: true, service: 'smtp', file: '/var/log/mail.log', offset: i, pad: 'p'.repeat(200) } as unknown as Event }));
    const records = encodeItems(items);
    expect(records.length).toBeGreaterThan(4);
    for (const r of records) expect(r.length).toBeLessThanOrEqual(BLOCK_BYTES);
    expect(records.flatMap((r) => decodeItems(r, (reason) => { throw new Error(reason); })).map((it) => it.route.key)).toEqual(items.map((it) => it.route.key));
  });
});
