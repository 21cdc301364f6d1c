/**
 * Distributed hold: the queue ids and senders of an account's mail, read
 * back from the events and messages the detect workers stored in ClickHouse
 * (the real server), since no one process there has the correlator that
 * knows them. Compared with what the log text itself ties to the account.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../../bench/scenarios.js';
import { createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrations.js';
import { ClickhouseQueries } from '../../src/clickhouse/queries.js';
import { eventRow, LineEventIndexer, messageRow } from '../../src/clickhouse/rows.js';
import { ClickhouseSink } from '../../src/clickhouse/sink.js';
import { validateConfig } from '../../src/config/config.js';
import type { Event } from '../../src/core/events.js';
import type { Message } from '../../src/correlator/message.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { DetectPipeline } from '../../src/pipeline/detect-pipeline.js';
import { envelopeContext } from '../../src/pipeline/line-parser.js';
import { tiedTo } from '../helpers/queue-ids.js';
import { chConfig, dropDatabase, testDatabase } from './clickhouse-server.js';

const EP = Date.UTC(2026, 10, 27, 10, 0, 0);
const users = S.users(10);
const victim = users[0]!.account;

describe("an account's queued mail, looked up in ClickHouse for hold", () => {
  const db = testDatabase();
  let client: ChClient;
  let mx1: string[];
  let events: { event: Event; index: number }[];
  let messages: Message[];

  beforeAll(async () => {
    const log = new S.ScenarioLog(3, 'mx1');
    S.background(log, { start: EP - 6 * S.HOUR, end: EP + S.HOUR, users, inboundPerHour: 10 });
    S.forgedSenderFlood(log, { account: victim, ips: ['41.203.18.77'], start: EP, count: 120, paceMs: 6000, deferRate: 0.9 });
    mx1 = log.render();
    // Another MTA whose queue ids collide with the victim's: one of its messages has the victim's first queue id, re-injected as 0EEEEEEEE1.
    const first = tiedTo(mx1, victim);
    const q1 = [...first.ids][0]!;
    const amavis = mx1.find((l) => l.includes(`Queue-ID: ${q1},`))!;
    const mx2 = [amavis.replace(' mx1 ', ' mx2 ').replace(/queued_as: [0-9A-F]+/, 'queued_as: 0EEEEEEEE1')];
    expect(mx2[0]).toContain(' mx2 ');

    events = [];
    messages = [];
    const indexer = new LineEventIndexer();
    const p = new DetectPipeline(validateConfig({ timezone: 'UTC' }), {
      onEvent: (e) => events.push({ event: e, index: indexer.index(e) }),
      onMessage: (m) => messages.push(m),
    });
    const zone = new ZoneClock('UTC');
    for (const [file, lines] of [['/var/log/mx1.log', mx1], ['/var/log/mx2.log', mx2]] as const) {
      const ctx = envelopeContext({ file, zone, year: 2026 });
      let offset = 0;
      for (const line of lines) {
        const rec = p.lines.envelope(line, offset, ctx);
        if (rec) p.feed(rec);
        offset += Buffer.byteLength(line) + 1;
      }
    }
    await p.finish();

    client = createClickhouseClient(chConfig({ database: db }));
    await migrate(client, { retentionDays: 3650 });
    const sink = new ClickhouseSink(client, { batchRows: 5000, flushMs: 20, maxBufferedRows: 1_000_000 });
    sink.add('events', events.map((x) => eventRow(x.event, x.index)));
    sink.add('messages', messages.map(messageRow));
    await sink.flush();
    await sink.close();
  });
  afterAll(async () => {
    await dropDatabase(client, db);
    await client.close();
  });

  it("names the account's submissions and their re-injected ids on the same host, and the senders it used", async () => {
    const want = tiedTo(mx1, victim);
    expect(want.ids.size).toBeGreaterThan(120); // the flood and its own mail
    expect(want.hops.size).toBe(want.ids.size);
    const got = await new ClickhouseQueries(client).queuedMailOf(victim.toUpperCase(), 0);
    expect(got.queueIds.sort()).toEqual([...want.ids, ...want.hops].sort());
    expect(got.queueIds).not.toContain('0EEEEEEEE1'); // the colliding id's hop on mx2 is not the victim's
    // Senders of its finished messages: forged ones, each one the log shows it using.
    expect(got.senders.length).toBeGreaterThan(0);
    for (const s of got.senders) expect(want.senders.has(s.toLowerCase()), s).toBe(true);
    expect(got.senders.some((s) => s.endsWith('@yahoo.com.tw'))).toBe(true);
  });

  it('looks no further back than asked, and finds nothing of an account that sent nothing', async () => {
    const q = new ClickhouseQueries(client);
    expect(await q.queuedMailOf(victim, EP + 2 * S.HOUR)).toEqual({ senders: [], queueIds: [] });
    // From the flood's start on: only what the log shows the account submitting since then.
    const since = tiedTo(mx1.filter((l) => Date.parse(`2026 ${l.slice(0, 15)} UTC`) >= EP), victim);
    const fromEp = await q.queuedMailOf(victim, EP);
    expect(fromEp.queueIds.sort()).toEqual([...since.ids, ...since.hops].sort());
    expect(since.ids.size).toBeLessThan(tiedTo(mx1, victim).ids.size);
    // A hostile account string is a value, never SQL.
    expect(await q.queuedMailOf("nobody@example.com' OR '1'='1", 0)).toEqual({ senders: [], queueIds: [] });
    // Other users' mail is never named.
    const other = tiedTo(mx1, users[3]!.account);
    const got = await q.queuedMailOf(victim, 0);
    for (const id of [...other.ids, ...other.hops]) expect(got.queueIds).not.toContain(id);
    expect(other.ids.size).toBeGreaterThan(0);
  });
});
