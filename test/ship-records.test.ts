import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/config.js';
import { Shipper } from '../src/distributed/ship.js';
import { BLOCK_BYTES, decodeChunk } from '../src/distributed/wire.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('ship: one follower batch, records of at most a block', () => {
  it('sends a batch far bigger than a block as several records in one send, every line once, in order, with its offset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fg-ship-records-'));
    dirs.push(dir);
    const file = join(dir, 'mail.log');
    const lines = Array.from({ length: 1500 }, (_, i) => `Nov 28 10:00:00 mx1 postfix/smtpd[${i}]: connect from host${i}.example.net[192.0.2.${i % 250}] ${'é'.repeat(i % 90)}`);
    writeFileSync(file, lines.join('\n') + '\n');
    const sends: { key: string; value: Buffer }[][] = [];
    const producer = {
      send: async (r: { messages: { key: string; value: Buffer }[] }) => {
        sends.push(r.messages);
        return [];
      },
    } as unknown as Producer;
    const cfg = validateConfig({ inputs: [{ path: file }], kafka: { batchLines: 2000 }, ship: { statePath: join(dir, 'ship-state.json') } });
    const shipper = new Shipper({ cfg, producer, log: pino({ level: 'silent' }), host: 'mx1', pollMs: 20 });
    await shipper.start();
    for (let i = 0; i < 200 && shipper.metrics.linesShipped < lines.length; i++) await new Promise((r) => setTimeout(r, 20));
    await shipper.stop();

    expect(shipper.metrics.linesShipped).toBe(lines.length);
    expect(sends).toHaveLength(1); // one follower batch: one send, acknowledged as a whole
    const records = sends[0]!;
    expect(records.length).toBeGreaterThan(3);
    for (const r of records) {
      expect(r.key).toBe('mx1');
      expect(r.value.length).toBeLessThanOrEqual(BLOCK_BYTES);
    }
    const chunks = records.map((r) => decodeChunk(r.value));
    expect(chunks.flatMap((c) => c.lines)).toEqual(lines);
    const offsets: number[] = [];
    let at = 0;
    for (const l of lines) {
      offsets.push(at);
      at += Buffer.byteLength(l) + 1;
    }
    expect(chunks.flatMap((c) => c.offsets)).toEqual(offsets);
    expect(new Set(chunks.map((c) => c.source)).size).toBe(1);
  });
});
