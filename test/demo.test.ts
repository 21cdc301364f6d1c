/**
 * The bundled demo log (demo/zimbra-day.log, built by `npm run demo:build`)
 * replayed through the whole pipeline with no DNS: the stolen account is
 * locked (dry-run) within minutes of its first forged message, the decoys
 * (announcement, newsletter peak, password typo) are not.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEMO_DECOYS, DEMO_FLOOD_START, DEMO_SPRAY_IP, DEMO_VICTIM } from '../bench/build-demo.js';
import { lineAt, runFile, summarize } from './helpers/scenario-run.js';

const demo = fileURLToPath(new URL('../demo/zimbra-day.log', import.meta.url));

describe('demo/zimbra-day.log', () => {
  it('locks the stolen account within 5 minutes of its first forged message, and no decoy', async () => {
    const text = readFileSync(demo, 'utf8');
    const lines = text.split('\n').filter((l) => l.length > 0);
    expect(lines.length).toBeGreaterThan(15_000);
    expect(lines.length).toBeLessThan(30_000);
    expect(Buffer.byteLength(text)).toBeLessThan(5 * 1024 * 1024);
    // the flood's first forged message, as the log shows it (qmgr from=<...@yahoo.com.tw>)
    const first = lines.find((l) => l.includes('@yahoo.com.tw>, size='))!;
    const firstTs = Date.parse(`2026 ${first.slice(0, 15)} UTC`);
    expect(firstTs - DEMO_FLOOD_START).toBeLessThan(60_000);

    const r = await runFile(demo); // no DNS: passive signals only
    const locks = r.decisions.filter((d) => d.action === 'lock');
    expect(locks.map((d) => d.entity.id), summarize(r)).toEqual([DEMO_VICTIM]);
    const lock = locks[0]!;
    expect(lock.dryRun).toBe(true);
    expect(lock.ts - firstTs).toBeGreaterThanOrEqual(0);
    expect(lock.ts - firstTs).toBeLessThan(5 * 60_000);
    expect(lock.signals).toContain('forged-sender');
    for (const ev of lock.evidence) expect(lineAt(demo, ev.offset)).toMatch(/lucas@example\.com|41\.203\.18\.77|102\.89\.34\.12|197\.210\.53\.9|154\.120\.67\.201|105\.112\.44\.18/);

    for (const decoy of Object.values(DEMO_DECOYS)) expect(r.decisions.filter((d) => d.entity.id === decoy), decoy).toEqual([]);
    // spraying: an alert on the IP, never a lock
    expect(r.decisions.filter((d) => d.entity.id === DEMO_SPRAY_IP).map((d) => d.action)).toEqual(['alert']);
  });
});
