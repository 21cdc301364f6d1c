import { describe, expect, it } from 'vitest';
import { requestsWithin } from '../src/distributed/wire.js';

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
