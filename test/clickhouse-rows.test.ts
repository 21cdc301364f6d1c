/** Row mapping and deterministic ids, without a server. */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  actionRow,
  decisionId,
  decisionRow,
  deadLetterRow,
  eventId,
  eventRow,
  findingId,
  findingRow,
  LineEventIndexer,
  messageId,
  messageRow,
} from '../src/clickhouse/rows.js';
import type { Event } from '../src/core/events.js';
import type { Finding } from '../src/detect/finding.js';
import { decisionKey } from '../src/run/runner.js';
import { authEvent, pipelineOutput, type PipelineOutput } from './clickhouse-fixtures.js';

let out: PipelineOutput;
let again: PipelineOutput;
beforeAll(async () => {
  out = await pipelineOutput(12_000);
  again = await pipelineOutput(12_000); // a replay: the same input processed a second time
});

describe('deterministic ids', () => {
  it('a replay of the same input yields the same ids for every event, message, finding and decision', () => {
    expect(out.events.length).toBeGreaterThan(10_000);
    expect(out.messages.length).toBeGreaterThan(500);
    expect(out.findings.length).toBeGreaterThan(0);
    expect(out.decisions.length).toBeGreaterThan(0);
    expect(again.events.map((x) => eventId(x.event, x.index))).toEqual(out.events.map((x) => eventId(x.event, x.index)));
    expect(again.messages.map(messageId)).toEqual(out.messages.map(messageId));
    expect(again.findings.map(findingId)).toEqual(out.findings.map(findingId));
    expect(again.decisions.map(decisionId)).toEqual(out.decisions.map(decisionId));
  });

  it('distinct things get distinct ids', () => {
    const distinct = <T>(xs: T[]) => new Set(xs).size;
    const eventIds = out.events.map((x) => eventId(x.event, x.index));
    expect(distinct(eventIds)).toBe(eventIds.length);
    // The correlator may report one queue id twice (an `expired` fragment, then its removal): one message, as in the SQLite store.
    expect(distinct(out.messages.map(messageId))).toBe(distinct(out.messages.map((m) => `${m.host}|${m.queueId}|${m.firstTs}`)));
    expect(distinct(out.messages.map(messageId))).toBeGreaterThan(out.messages.length * 0.99);
    const findingIds = out.findings.map(findingId);
    expect(distinct(findingIds)).toBe(new Set(out.findings.map((f) => JSON.stringify([f.detector, f.entity, f.ts, f.summary]))).size);
  });

  it('event ids separate the events of one line, hosts, files, and a rotated file whose offsets restart', () => {
    const e = authEvent();
    const base = eventId(e, 0);
    expect(eventId(e, 1)).not.toBe(base);
    expect(eventId({ ...e, host: 'mx2' } as Event, 0)).not.toBe(base);
    expect(eventId({ ...e, src: { file: '/var/log/mail.log', offset: 4096 } } as Event, 0)).not.toBe(base);
    expect(eventId({ ...e, src: { file: e.src.file, offset: 4097 } } as Event, 0)).not.toBe(base);
    // After rotation the same offset holds a later line.
    expect(eventId({ ...e, ts: e.ts + 86_400_000 } as Event, 0)).not.toBe(base);
    // Fields that do not identify the line (parsed details) do not change the id.
    expect(eventId({ ...e, reason: 'x' } as Event, 0)).toBe(base);
    expect(base).toMatch(/^[0-9a-f]{40}$/);
  });

  it('event ids stay those earlier versions stored: SHA-1 of the JSON array of the line identity, for any strings', () => {
    const e = authEvent();
    const stored = (x: Event, n: number) => createHash('sha1').update(JSON.stringify(['e', x.host, x.src.file, x.src.offset, x.ts, x.kind, n])).digest('hex');
    for (const weird of ['mx"1', 'a\\b', 'tab\there', 'ünï 🙂', '\u2028', '']) {
      const x = { ...e, host: weird, src: { file: `/var/log/${weird}`, offset: 7 } } as Event;
      expect(eventId(x, 3), JSON.stringify(weird)).toBe(stored(x, 3));
    }
    expect(eventId(e, 0)).toBe(stored(e, 0));
  });

  it('the line indexer numbers the events of one line and restarts on the next', () => {
    const ix = new LineEventIndexer();
    const a = authEvent();
    const b = authEvent({ src: { file: a.src.file, offset: 5000 } });
    expect([ix.index(a), ix.index(a), ix.index(b), ix.index(a)]).toEqual([0, 1, 0, 0]);
    const multi = new Map<string, number[]>();
    for (const x of out.events) {
      const k = `${x.event.host}|${x.event.src.file}|${x.event.src.offset}`;
      multi.set(k, [...(multi.get(k) ?? []), x.index]);
    }
    for (const idx of multi.values()) expect(idx).toEqual(idx.map((_, i) => i));
  });

  it('decision ids are the standalone store keys', () => {
    for (const d of out.decisions) expect(decisionId(d)).toBe(decisionKey(d));
  });

  it('message ids: a reused queue id later is another message; more recipients later is the same one', () => {
    const m = out.messages[0]!;
    expect(messageId({ ...m, firstTs: m.firstTs + 1 })).not.toBe(messageId(m));
    expect(messageId({ ...m, recipients: [], lastTs: m.lastTs + 9 })).toBe(messageId(m));
  });

  it('finding ids change with detector, entity, time and summary', () => {
    const f = out.findings[0]!;
    const id = findingId(f);
    const variants: Finding[] = [
      { ...f, detector: f.detector + 'x' },
      { ...f, entity: { ...f.entity, id: f.entity.id + 'x' } },
      { ...f, ts: f.ts + 1 },
      { ...f, summary: f.summary + '!' },
    ];
    for (const v of variants) expect(findingId(v)).not.toBe(id);
    expect(findingId({ ...f, score: 1 })).toBe(id);
  });
});

describe('rows', () => {
  it('event rows: seconds and milliseconds, lowercased account, JSON that parses back to the event', () => {
    const e = authEvent();
    const r = eventRow(e, 0);
    expect(r).toMatchObject({ ts: Math.floor(e.ts / 1000), ts_ms: e.ts, host: 'mx1', kind: 'auth', account: 'alice@example.com', ip: '203.0.113.7', file: '/var/log/zimbra.log', offset: 4096 });
    expect(JSON.parse(r.json)).toEqual(e);
    const noAccount = eventRow({ kind: 'queue.removed', ts: 1, host: 'h', program: 'postfix/qmgr', src: { file: 'f', offset: 0 }, queueId: 'ABC' }, 0);
    expect(noAccount).toMatchObject({ account: '', ip: '', ts: 0, ts_ms: 1 });
  });

  it('message, finding, decision and action rows carry what queries filter on', () => {
    const m = out.messages.find((x) => x.saslUser !== undefined && x.recipients.length > 0)!;
    const mr = messageRow(m);
    expect(mr).toMatchObject({ host: m.host, queue_id: m.queueId, first_ts_ms: m.firstTs, last_ts_ms: m.lastTs, sasl_user: m.saslUser!.toLowerCase(), rcpt_count: m.recipients.length });
    expect(mr.rcpt_addresses).toEqual(m.recipients.map((r) => r.address));
    expect(mr.rcpt_status).toEqual(m.recipients.map((r) => r.status));
    expect(JSON.parse(mr.json)).toEqual(m);

    const f = out.findings.find((x) => x.entity.kind === 'account')!;
    const fr = findingRow(f);
    expect(fr).toMatchObject({ detector: f.detector, entity_kind: 'account', account: f.entity.id.toLowerCase(), severity: f.severity, score: f.score, signals: f.signals, summary: f.summary });
    expect(JSON.parse(fr.window)).toEqual(f.window);
    expect(JSON.parse(fr.evidence)).toEqual(f.evidence);
    const ipFinding: Finding = { ...f, entity: { kind: 'ip', id: '198.51.100.9' }, account: 'Bob@Example.com', ip: undefined };
    expect(findingRow(ipFinding)).toMatchObject({ account: 'bob@example.com', ip: '198.51.100.9' });

    const d = out.decisions[0]!;
    expect(decisionRow(d)).toMatchObject({ id: decisionKey(d), entity: `${d.entity.kind}:${d.entity.id}`, action: d.action, hold: d.hold ? 1 : 0, dry_run: d.dryRun ? 1 : 0, detectors: d.detectors, reasons: d.reasons });

    const a = out.actions[0]!;
    expect(actionRow(a)).toMatchObject({ id: a.id, ts_ms: a.ts, action: a.action, account: a.account, ok: 1, by: 'policy', command: a.command ?? [], error_code: '' });
  });

  it('hostile values stay data: quotes, backslashes, NUL, newlines, $(...), unicode survive into the JSON text', () => {
    const evil = "x'); DROP TABLE events; --\\\0\n$(reboot)`id`日本🙂";
    const e = authEvent({ account: evil, reason: evil, src: { file: `/var/log/${evil}`, offset: 1 } });
    const r = eventRow(e, 0);
    expect(r.account).toBe(evil.toLowerCase());
    expect(r.file).toBe(`/var/log/${evil}`);
    expect(JSON.parse(r.json)).toEqual(e);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r); // what JSONEachRow carries
    const dl = deadLetterRow('events', { account: evil }, `bad ${evil}`, 1_700_000_000_123);
    expect(JSON.parse(dl.row)).toEqual({ account: evil });
    expect(dl).toMatchObject({ table_name: 'events', ts: 1_700_000_000, ts_ms: 1_700_000_000_123 });
    expect(deadLetterRow('events', { account: evil }, 'other error', 5).id).toBe(dl.id); // the same row refused again is one dead letter
  });
});
