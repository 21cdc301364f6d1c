import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateLines, writeLog, type GenerateOptions } from '../bench/generate.js';

const take = (opts: GenerateOptions): string[] => [...generateLines(opts)];

const RFC3164 = /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ( [1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d [\w.-]+ [\w/.-]+\[\d+\]: \S/;
const ZIMBRA = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d,\d{3} (INFO |WARN |ERROR|DEBUG) \[[^\]]+\] \[[^\]]*\] [\w.-]+ - \S/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Epoch seconds of a line's timestamp (RFC 3164 lines are taken in `year`). */
function lineTime(line: string, year: number): number {
  if (line.charCodeAt(0) >= 48 && line.charCodeAt(0) <= 57) {
    return Date.UTC(+line.slice(0, 4), +line.slice(5, 7) - 1, +line.slice(8, 10), +line.slice(11, 13), +line.slice(14, 16), +line.slice(17, 19)) / 1000;
  }
  const m = MONTHS.indexOf(line.slice(0, 3));
  return Date.UTC(year, m, +line.slice(4, 6), +line.slice(7, 9), +line.slice(10, 12), +line.slice(13, 15)) / 1000;
}

describe('bench/generate', () => {
  const sample = take({ lines: 40_000, seed: 7 });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = take({ lines: 5000, seed: 123 });
    const b = take({ lines: 5000, seed: 123 });
    const c = take({ lines: 5000, seed: 124 });
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    // Different enough, not a shifted copy.
    const same = a.filter((l, i) => l === c[i]).length;
    expect(same).toBeLessThan(500);
  });

  it('yields exactly the requested number of lines, without newlines', () => {
    for (const n of [0, 1, 7, 1234]) expect(take({ lines: n, seed: 1 })).toHaveLength(n);
    expect(sample).toHaveLength(40_000);
    expect(sample.every((l) => !l.includes('\n') && l.length > 0)).toBe(true);
  });

  it('starts every line with a valid RFC 3164 or Zimbra envelope, in time order', () => {
    const bad = sample.filter((l) => !RFC3164.test(l) && !ZIMBRA.test(l));
    expect(bad.slice(0, 5)).toEqual([]);
    let prev = -Infinity;
    for (const l of sample) {
      const t = lineTime(l, 2026);
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
    expect(sample[0]!.startsWith('Nov 27 00:00:0') || sample[0]!.startsWith('2026-11-27 00:00:0')).toBe(true);
    // 40k lines cover about an hour at night, far from a month boundary.
    expect(prev - lineTime(sample[0]!, 2026)).toBeLessThan(6 * 3600);
  });

  it('pads single-digit days and rolls over month and year', () => {
    const early = take({ lines: 500, seed: 3, startTs: Date.UTC(2026, 10, 7, 12, 0, 0) });
    expect(early.some((l) => l.startsWith('Nov  7 12:0'))).toBe(true);
    expect(early.some((l) => l.startsWith('2026-11-07 12:0'))).toBe(true);
    const nye = take({ lines: 20_000, seed: 3, startTs: Date.UTC(2026, 11, 31, 23, 58, 0) });
    expect(nye[0]!.startsWith('Dec 31 23:58') || nye[0]!.startsWith('2026-12-31 23:58')).toBe(true);
    expect(nye.some((l) => l.startsWith('Jan  1 00:'))).toBe(true);
    expect(nye.some((l) => l.startsWith('2027-01-01 00:'))).toBe(true);
    expect(nye.every((l) => RFC3164.test(l) || ZIMBRA.test(l))).toBe(true);
  });

  it('gives every queued message its own 10-hex-digit queue id', () => {
    const cleanup = /postfix\/cleanup\[\d+\]: ([0-9A-F]+): message-id=/;
    const active = /postfix\/qmgr\[\d+\]: ([0-9A-F]+): from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active\)/;
    const seenCleanup = new Set<string>();
    const seenActive = new Set<string>();
    for (const l of sample) {
      const c = cleanup.exec(l);
      if (c) {
        expect(c[1]).toMatch(/^[0-9A-F]{10}$/);
        expect(seenCleanup.has(c[1]!)).toBe(false);
        seenCleanup.add(c[1]!);
      }
      const a = active.exec(l);
      if (a) {
        expect(seenActive.has(a[1]!)).toBe(false);
        seenActive.add(a[1]!);
      }
    }
    expect(seenCleanup.size).toBeGreaterThan(2000);
    // Each amavis hop names the original and the re-queued id, and they differ.
    const hop = /Queue-ID: ([0-9A-F]{10}), .*queued_as: ([0-9A-F]{10}),/;
    let hops = 0;
    for (const l of sample) {
      const m = hop.exec(l);
      if (m) {
        hops++;
        expect(m[1]).not.toBe(m[2]);
        expect(seenCleanup.has(m[2]!)).toBe(true);
      }
    }
    expect(hops).toBeGreaterThan(1000);
  });

  it('mixes traffic roughly as designed', () => {
    const n = sample.length;
    const count = (s: string): number => sample.reduce((k, l) => (l.includes(s) ? k + 1 : k), 0);
    const zimbra = sample.filter((l) => ZIMBRA.test(l)).length / n;
    expect(zimbra).toBeGreaterThan(0.02);
    expect(zimbra).toBeLessThan(0.1);
    const sasl = count('sasl_username=');
    const inbound = count('postfix/postscreen[');
    expect(sasl / n).toBeGreaterThan(0.005);
    expect(inbound).toBeGreaterThan(sasl);
    expect(count('Relay access denied')).toBeGreaterThan(0);
    expect(count('blocked using ')).toBeGreaterThan(0);
    expect(count('SASL LOGIN authentication failed')).toBeGreaterThan(0);
    expect(count('auth_zimbra: ')).toBeGreaterThan(0);
    expect(count('queued as ')).toBeGreaterThan(n * 0.05);
    expect(count('postfix/lmtp[')).toBeGreaterThan(0);
    expect(count('relay=gmail-smtp-in.l.google.com[')).toBeGreaterThan(0);
    expect(count('policyd-spf[')).toBeGreaterThan(0);
    expect(count('Passed CLEAN {RelayedOutbound}, ORIGINATING')).toBeGreaterThan(0);
    expect(count('sender non-delivery notification: ')).toBeGreaterThan(0);
    expect(count('statistics: ')).toBeGreaterThan(0);
    expect(count('status=expired, returned to sender')).toBeGreaterThan(0);
    expect(count('invalid password')).toBeGreaterThan(0);
    // The compromised-account episode: one account, forged senders, foreign IPs.
    const forged = sample.filter((l) => /postfix\/qmgr\[\d+\]: [0-9A-F]{10}: from=<[a-z0-9]+@yahoo\.com\.tw>/.test(l));
    expect(forged.length).toBeGreaterThan(10);
    const users = new Map<string, number>();
    for (const l of sample) {
      const m = /sasl_username=(\S+)/.exec(l);
      if (m) users.set(m[1]!, (users.get(m[1]!) ?? 0) + 1);
    }
    const top = Math.max(...users.values());
    expect(top).toBeGreaterThan(50);
    expect(users.size).toBeGreaterThan(300);
    // Realistic line lengths.
    const avg = sample.reduce((k, l) => k + l.length, 0) / n;
    expect(avg).toBeGreaterThan(120);
    expect(avg).toBeLessThan(280);
  });

  it('honours hosts and accounts', () => {
    const lines = take({ lines: 5000, seed: 9, hosts: ['mx1', 'mx2.example.com'], accounts: 12 });
    expect(lines.some((l) => / mx1 postfix\//.test(l))).toBe(true);
    expect(lines.some((l) => / mx2\.example\.com postfix\//.test(l))).toBe(true);
    for (const l of lines) {
      const m = /sasl_username=(\S+)/.exec(l);
      if (m) expect(m[1]).toMatch(/^user00(0[1-9]|1[0-2])@example\.com$/);
    }
  });

  describe('writeLog', () => {
    const dir = mkdtempSync(join(tmpdir(), 'floodgate-gen-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('writes the same lines, newline-terminated, and reports the size', async () => {
      const path = join(dir, 'gen.log');
      const opts = { lines: 30_000, seed: 11 };
      const res = await writeLog(path, opts);
      expect(res.lines).toBe(30_000);
      expect(res.bytes).toBe(statSync(path).size);
      const text = readFileSync(path, 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      expect(text.slice(0, -1).split('\n')).toEqual(take(opts));
    });

    it('writes an empty file for zero lines', async () => {
      const path = join(dir, 'empty.log');
      expect(await writeLog(path, { lines: 0 })).toEqual({ lines: 0, bytes: 0 });
      expect(statSync(path).size).toBe(0);
    });

    it('rejects when the file cannot be opened', async () => {
      await expect(writeLog(join(dir, 'no', 'such', 'dir', 'x.log'), { lines: 10 })).rejects.toThrow();
    });
  });
});
