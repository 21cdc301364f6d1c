/**
 * ClickhouseSink's flush policy without a server: a recording stand-in for
 * the client and fake timers show when each table's inserts go.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChClient, InsertRows } from '../src/clickhouse/client.js';
import { ClickhouseSink } from '../src/clickhouse/sink.js';
import { TsvRows } from '../src/clickhouse/tsv.js';

function recordingClient(now: () => number): ChClient & { inserts: { table: string; rows: number; at: number }[] } {
  const inserts: { table: string; rows: number; at: number }[] = [];
  return {
    database: 'test',
    inserts,
    command: async () => undefined,
    query: async () => [],
    insert: async (table, rows) => void inserts.push({ table, rows: rows.length, at: now() }),
    ping: async () => true,
    serverVersion: async () => ({ text: '18.16.1', major: 18, minor: 16, patch: 1 }),
    close: async () => undefined,
  };
}

describe('ClickhouseSink flush policy', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('tables named in tableFlushMs go after their own delay; the rest wait flushMs and go together', async () => {
    const client = recordingClient(() => Date.now());
    const sink = new ClickhouseSink(client, { batchRows: 1000, flushMs: 1000, tableFlushMs: { findings: 0, decisions: 50 }, maxBufferedRows: 10_000 });
    const t0 = Date.now();
    sink.add('events', [{ id: 'e1' }, { id: 'e2' }]);
    sink.add('findings', [{ id: 'f1' }]);
    sink.add('decisions', [{ id: 'd1' }]);
    sink.add('findings', [{ id: 'f2' }]);
    await vi.advanceTimersByTimeAsync(0);
    expect(client.inserts.map((i) => [i.table, i.rows, i.at - t0])).toEqual([['findings', 2, 0]]);
    await vi.advanceTimersByTimeAsync(50);
    expect(client.inserts.map((i) => i.table)).toEqual(['findings', 'decisions']);
    sink.add('events', [{ id: 'e3' }]);
    await vi.advanceTimersByTimeAsync(900);
    expect(client.inserts.map((i) => i.table)).not.toContain('events');
    await vi.advanceTimersByTimeAsync(100);
    expect(client.inserts.at(-1)).toEqual({ table: 'events', rows: 3, at: t0 + 1000 });
    expect(sink.buffered).toBe(0);
  });

  it('a consumer waiting for room sends what waits at once, even when batchRows exceeds maxBufferedRows', async () => {
    const client = recordingClient(() => Date.now());
    const sink = new ClickhouseSink(client, { batchRows: 50_000, flushMs: 1000, maxBufferedRows: 100 });
    const t0 = Date.now();
    sink.add('events', Array.from({ length: 90 }, (_, i) => ({ id: `e${i}` })));
    sink.add('messages', Array.from({ length: 10 }, (_, i) => ({ id: `m${i}` })));
    const room = sink.whenRoom();
    await vi.advanceTimersByTimeAsync(0);
    expect(client.inserts.map((i) => [i.table, i.rows, i.at - t0]).sort()).toEqual([
      ['events', 90, 0],
      ['messages', 10, 0],
    ]);
    await room;
    expect(sink.buffered).toBe(0);
    // Below the bound, rows still wait for flushMs.
    sink.add('events', [{ id: 'late' }]);
    await sink.whenRoom();
    await vi.advanceTimersByTimeAsync(999);
    expect(client.inserts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(client.inserts).toHaveLength(3);
  });

  it('flush() does not wait for any table\'s delay', async () => {
    const client = recordingClient(() => Date.now());
    const sink = new ClickhouseSink(client, { batchRows: 1000, flushMs: 60_000, tableFlushMs: { findings: 30_000 }, maxBufferedRows: 10_000 });
    sink.add('events', [{ id: 'e1' }]);
    sink.add('findings', [{ id: 'f1' }]);
    await sink.flush();
    expect(client.inserts.map((i) => i.table).sort()).toEqual(['events', 'findings']);
    expect(sink.buffered).toBe(0);
  });
});

describe('ClickhouseSink under steady load', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('rows arriving during an insert wait for their own flushMs (counted from their arrival), not go back to back', async () => {
    let now = 0;
    const inserts: { rows: number; at: number }[] = [];
    const client = {
      ...recordingClient(() => Date.now()),
      // Each insert takes 40 ms.
      insert: async (_table: string, rows: readonly object[]) => {
        inserts.push({ rows: rows.length, at: Date.now() - now });
        await new Promise((r) => setTimeout(r, 40));
      },
    };
    now = Date.now();
    const sink = new ClickhouseSink(client, { batchRows: 1000, flushMs: 100, maxBufferedRows: 10_000 });
    // A row every 10 ms for 1 s.
    for (let t = 0; t < 1000; t += 10) {
      sink.add('events', [{ id: t }]);
      await vi.advanceTimersByTimeAsync(10);
    }
    await vi.advanceTimersByTimeAsync(200);
    expect(sink.buffered).toBe(0);
    expect(inserts.reduce((a, i) => a + i.rows, 0)).toBe(100);
    // One insert per flushMs, not one per insert time (40 ms) as when due stayed set.
    expect(inserts.length).toBeLessThanOrEqual(11);
    for (let i = 1; i < inserts.length; i++) expect(inserts[i]!.at - inserts[i - 1]!.at).toBeGreaterThanOrEqual(90);
  });

  it('the rest of a backlog bigger than batchRows goes at once, and a flush() during an insert is honoured without delay', async () => {
    const client = recordingClient(() => Date.now());
    const sink = new ClickhouseSink(client, { batchRows: 10, flushMs: 60_000, maxBufferedRows: 10_000 });
    sink.add('events', Array.from({ length: 25 }, (_, i) => ({ id: i })));
    const t0 = Date.now();
    await sink.flush();
    expect(client.inserts.map((i) => [i.rows, i.at - t0])).toEqual([
      [10, 0],
      [10, 0],
      [5, 0],
    ]);
  });
});

describe('ClickhouseSink after an outage', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('the first insert that gets through sends the other tables\' waiting inserts at once, not after their backoff', async () => {
    let down = true;
    const base = recordingClient(() => Date.now());
    const client: typeof base = {
      ...base,
      insert: async (table, rows) => {
        if (down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
        return base.insert(table, rows);
      },
    };
    const sink = new ClickhouseSink(client, { batchRows: 100, flushMs: 0, maxBufferedRows: 1000, random: () => 1 });
    sink.add('decisions', [{ id: 'd1' }]);
    // A minute down: the decisions insert now waits 30 s between attempts.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(base.inserts).toEqual([]);
    down = false;
    const back = Date.now();
    sink.add('actions', [{ id: 'a1' }]);
    await vi.advanceTimersByTimeAsync(10);
    expect(base.inserts.map((i) => [i.table, i.at - back])).toEqual([
      ['actions', 0],
      ['decisions', 0],
    ]);
    expect(sink.buffered).toBe(0);
  });
});

describe('ClickhouseSink with rows already encoded (TsvRows)', () => {
  const encoded = (from: number, n: number) => {
    const rows = new TsvRows(['id', 'v']);
    for (let i = from; i < from + n; i++) rows.push(`e${i}\tv\\${i}`);
    return rows;
  };
  const idsOf = (rows: InsertRows): string[] => (rows instanceof TsvRows ? Array.from({ length: rows.length }, (_, i) => rows.rowObject(i).id!) : rows.map((r) => String((r as { id: unknown }).id)));

  it('stores them in batches of batchRows, next to row objects of the same table, each row once; the caller may reuse its rows', async () => {
    const stored: string[][] = [];
    const base = recordingClient(() => 0);
    const client: typeof base = { ...base, insert: async (_table, rows) => void stored.push(idsOf(rows)) };
    const sink = new ClickhouseSink(client, { batchRows: 40, flushMs: 60_000, maxBufferedRows: 10_000 });
    const first = encoded(0, 30);
    sink.add('events', first);
    first.shift(30); // the sink took a copy
    sink.add('events', [{ id: 'o1' }, { id: 'o2' }]);
    sink.add('events', encoded(30, 70));
    expect(sink.buffered).toBe(102);
    await sink.flush();
    expect(sink.buffered).toBe(0);
    expect(stored.map((b) => b.length)).toEqual([40, 40, 20, 2]);
    expect(stored.flat()).toEqual([...Array.from({ length: 100 }, (_, i) => `e${i}`), 'o1', 'o2']);
  });

  it('an insert that takes the whole queue sends its rows intact while more arrive, and the next insert reuses its emptied buffer', async () => {
    const bodies: string[] = [];
    const buffers: ArrayBufferLike[] = [];
    let release: (() => void) | undefined;
    const base = recordingClient(() => 0);
    const client: typeof base = {
      ...base,
      insert: async (_table, rows) => {
        const body = (rows as TsvRows).body();
        buffers.push(body.buffer);
        // Held open while rows keep arriving: the body is read only at the end, as an HTTP request streams it.
        if (bodies.length === 0) await new Promise<void>((r) => (release = r));
        bodies.push(body.toString('utf8'));
      },
    };
    const sink = new ClickhouseSink(client, { batchRows: 1000, flushMs: 0, maxBufferedRows: 10_000 });
    sink.add('events', encoded(0, 500));
    await vi.waitFor(() => expect(release).toBeDefined());
    for (let k = 0; k < 20; k++) sink.add('events', encoded(500 + k * 25, 25)); // 500 more, enough to move a shared buffer
    release!();
    await sink.flush();
    sink.add('events', encoded(1000, 10));
    await sink.flush();
    const ids = (body: string) => body.split('\n').filter((l) => l !== '').map((l) => l.split('\t')[0]);
    expect(bodies.map(ids)).toEqual([0, 500, 1000].map((from, i) => Array.from({ length: i === 2 ? 10 : 500 }, (_, k) => `e${from + k}`)));
    expect(buffers[2]).toBe(buffers[0]); // the first insert's buffer, emptied, took the third's rows
  });

  it('a row the server refuses is isolated by halving and dead-lettered with its fields readable; its neighbours are stored', async () => {
    const stored: string[] = [];
    const base = recordingClient(() => 0);
    const client: typeof base = {
      ...base,
      insert: async (table, rows) => {
        const ids = idsOf(rows);
        if (table === 'events' && ids.includes('e13')) throw new Error('Code: 27, e.displayText() = DB::Exception: Cannot parse input (at row 14)');
        for (const id of ids) stored.push(`${table}:${id}`);
      },
    };
    const sink = new ClickhouseSink(client, { batchRows: 100, flushMs: 0, maxBufferedRows: 10_000, deadLetterTable: false });
    sink.add('events', encoded(0, 20));
    await sink.flush();
    expect(stored.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `events:e${i}`).filter((x) => x !== 'events:e13').sort());
    expect(sink.deadLetters()).toHaveLength(1);
    expect(sink.deadLetters()[0]).toMatchObject({ table: 'events', row: { id: 'e13', v: 'v\\13' }, code: 27 });
    expect(sink.status().deadLettered).toBe(1);
  });
});
