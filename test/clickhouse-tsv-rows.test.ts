/** Rows encoded at once (TsvRows, eventTsvLine): the same bytes tabSeparated sends, kept outside the heap. */
import { describe, expect, it } from 'vitest';
import { EVENT_COLUMNS, eventRowWithJson, eventTsvLine } from '../src/clickhouse/rows.js';
import { tabSeparated, TsvRows } from '../src/clickhouse/tsv.js';
import type { Event } from '../src/core/events.js';
import { authEvent, pipelineOutput } from './clickhouse-fixtures.js';

const tsvOf = (e: Event, n: number) => {
  const json = JSON.stringify(e);
  return tabSeparated([eventRowWithJson(e, n, json)])!.body;
};

describe('eventTsvLine', () => {
  it('is the row tabSeparated makes of eventRowWithJson, for every event of a pipeline run', async () => {
    const out = await pipelineOutput(3000);
    expect(out.events.length).toBeGreaterThan(2000);
    expect(EVENT_COLUMNS).toEqual(Object.keys(eventRowWithJson(out.events[0]!.event, 0, '{}')));
    for (const { event, index } of out.events) expect(eventTsvLine(event, index, JSON.stringify(event)) + '\n').toBe(tsvOf(event, index));
  });

  it('hostile values: tabs, newlines, backslashes, NUL, $(...), unicode and lone surrogates stay inside their field', () => {
    const evil = "a\tb\nc\r\\d\0$(reboot)`id`日本🙂\uD800x";
    const e = authEvent({ account: evil, host: `mx\t${evil}`, program: `p\n${evil}`, ip: evil, reason: evil, src: { file: `/var/log/${evil}`, offset: 7 } });
    const line = eventTsvLine(e, 2, JSON.stringify(e));
    expect(line + '\n').toBe(tsvOf(e, 2));
    expect(line.split('\t')).toHaveLength(EVENT_COLUMNS.length);
    expect(line).not.toMatch(/[\n\r\0]/);
    const rows = new TsvRows(EVENT_COLUMNS);
    rows.push(line);
    const back = rows.rowObject(0);
    expect(back.account).toBe(evil.toLowerCase().replace('\uD800', '\uFFFD')); // UTF-8 has no lone surrogate: ClickHouse gets U+FFFD
    expect(back.host).toBe(`mx\t${evil}`.replace('\uD800', '\uFFFD'));
    expect(JSON.parse(back.json!)).toEqual(JSON.parse(JSON.stringify(e)));
  });

  it('refuses an event whose time is not a number (a parser bug) instead of writing a broken row', () => {
    expect(() => eventTsvLine(authEvent({ ts: Number.NaN }), 0, '{}')).toThrow(/not a finite number/);
  });
});

describe('TsvRows', () => {
  const line = (i: number) => `id${i}\t${'x'.repeat(i % 37)}\tü${i}`;
  const columns = ['id', 'pad', 'v'];

  it('keeps rows in order through pushes, shifts, growth and reuse of the taken rows\' space', () => {
    const rows = new TsvRows(columns, 64);
    const expected: string[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let k = 0; k < 40; k++) {
        rows.push(line(next));
        expected.push(line(next++));
      }
      const take = (round * 7) % 45;
      rows.shift(take);
      expected.splice(0, take);
      expect(rows.length).toBe(expected.length);
    }
    for (let i = 0; i < expected.length; i++) expect(rows.line(i)).toBe(expected[i]);
    expect(rows.body().toString('utf8')).toBe(expected.map((l) => l + '\n').join(''));
    expect(rows.byteLength).toBe(Buffer.byteLength(expected.map((l) => l + '\n').join('')));
    rows.shift(rows.length + 5);
    expect(rows.length).toBe(0);
    expect(rows.body().length).toBe(0);
  });

  it('reuses the taken rows\' space instead of growing while a backlog stays small, and gives a backlog\'s grown buffer back once emptied', () => {
    const rows = new TsvRows(columns, 1 << 20);
    const row = 'r'.repeat(999); // 1000 bytes with its newline
    for (let round = 0; round < 200; round++) {
      for (let k = 0; k < 100; k++) rows.push(row);
      rows.shift(100);
      rows.push(row); // one row always left: the buffer is never simply reset
    }
    expect(rows.bufferBytes).toBe(1 << 20); // 20 MB went through a 1 MiB buffer
    for (let k = 0; k < 40_000; k++) rows.push(row); // a backlog: 40 MB, more than a full insert of event rows
    expect(rows.bufferBytes).toBeGreaterThanOrEqual(40_000_000);
    rows.shift(rows.length);
    expect(rows.bufferBytes).toBeLessThanOrEqual(32 << 20);
    rows.push(row);
    expect(rows.line(0)).toBe(row);
  });

  it('slice copies a range; append adds another set of rows of the same columns, and refuses other columns', () => {
    const a = new TsvRows(columns, 16);
    for (let i = 0; i < 30; i++) a.push(line(i));
    a.shift(5);
    const s = a.slice(3, 9);
    expect(s.length).toBe(6);
    expect(Array.from({ length: 6 }, (_, i) => s.line(i))).toEqual([8, 9, 10, 11, 12, 13].map(line));
    a.push(line(30)); // the slice is a copy: later changes do not reach it
    a.shift(10);
    expect(s.line(0)).toBe(line(8));
    const b = new TsvRows(columns, 16);
    b.push(line(100));
    b.append(s);
    b.append(a.slice(0, 0));
    expect(b.length).toBe(7);
    expect(b.line(6)).toBe(line(13));
    expect(b.body().toString('utf8').split('\n')).toHaveLength(8);
    expect(() => b.append(new TsvRows(['id', 'v']))).toThrow(/columns differ/);
    expect(() => b.line(7)).toThrow(RangeError);
    expect(b.slice(5, 100).length).toBe(2);
    expect(b.slice(-3, 2).length).toBe(2);
  });
});
