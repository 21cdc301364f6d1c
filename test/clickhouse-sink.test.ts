/**
 * ClickhouseSink's flush policy without a server: a recording stand-in for
 * the client and fake timers show when each table's inserts go.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChClient } from '../src/clickhouse/client.js';
import { ClickhouseSink } from '../src/clickhouse/sink.js';

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
