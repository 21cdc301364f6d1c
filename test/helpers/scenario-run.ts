/**
 * Test helper: run log lines through the WHOLE pipeline (the file reader,
 * envelope, parsers, correlator, detectors and policy: DetectPipeline fed by
 * mergeInputs, as `floodgate replay` does) and collect findings and decisions.
 */
import { closeSync, mkdtempSync, openSync, readSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig, type FloodgateConfig } from '../../src/config/config.js';
import type { DnsLookup } from '../../src/detect/dns.js';
import type { Finding } from '../../src/detect/finding.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { DetectPipeline } from '../../src/pipeline/detect-pipeline.js';
import { mergeInputs } from '../../src/pipeline/merge.js';
import type { Decision } from '../../src/policy/policy.js';

/** A realistic single-server Zimbra site. mynetworks is too wide on purpose (the whole 10/8). */
export const siteConfig = {
  localDomains: ['example.com'],
  outboundIps: ['198.51.100.10'],
  trustedNetworks: ['127.0.0.0/8', '::1/128', '10.0.0.0/8'],
  mailHosts: ['10.0.0.1', '10.0.0.5'],
  aliases: { 'hr@example.com': ['announce@example.com'] },
};

export function scenarioConfig(extra: Record<string, unknown> = {}): FloodgateConfig {
  return validateConfig({ timezone: 'UTC', site: siteConfig, ...extra });
}

export interface RunResult {
  file: string;
  findings: Finding[];
  decisions: Decision[];
  lines: number;
  /**
   * Per finding (same index), the newest log time read when it came out: a
   * finding's own ts may be older (a message judged at its first line), and
   * this says how far into the log detection had to read to report it.
   */
  foundAt: number[];
}

let dir: string | undefined;
let n = 0;

/** Write `lines` to a temp file and replay it (year 2026, UTC). */
export async function runLines(lines: string[], opts: { cfg?: FloodgateConfig; dns?: DnsLookup; name?: string } = {}): Promise<RunResult> {
  dir ??= mkdtempSync(join(tmpdir(), 'floodgate-scenario-'));
  const file = join(dir, `${opts.name ?? 'scenario'}-${n++}.log`);
  writeFileSync(file, lines.join('\n') + '\n');
  return runFile(file, opts);
}

export async function runFile(file: string, opts: { cfg?: FloodgateConfig; dns?: DnsLookup } = {}): Promise<RunResult> {
  const cfg = opts.cfg ?? scenarioConfig();
  const findings: Finding[] = [];
  const decisions: Decision[] = [];
  const foundAt: number[] = [];
  let newest = 0;
  const p = new DetectPipeline(cfg, { onFinding: (f) => void (findings.push(f), foundAt.push(newest)), onDecision: (d) => decisions.push(d) }, { dns: opts.dns });
  await mergeInputs(
    [{ path: file, host: 'mx1' }],
    p.lines,
    (rec) => {
      if (rec.ts > newest) newest = rec.ts;
      p.feed(rec);
    },
    { zone: new ZoneClock('UTC'), year: 2026 },
  );
  await p.finish();
  return { file, findings, decisions, lines: p.stats.lines, foundAt };
}

/** The source line at a byte offset of a file. */
export function lineAt(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const got = readSync(fd, buf, 0, buf.length, offset);
    const s = buf.subarray(0, got).toString('utf8');
    const nl = s.indexOf('\n');
    return nl < 0 ? s : s.slice(0, nl);
  } finally {
    closeSync(fd);
  }
}

export function summarize(r: RunResult): string {
  const f = r.findings.map((x) => `F ${new Date(x.ts).toISOString().slice(5, 19)} ${x.detector} ${x.signals.join(',')} ${x.entity.kind}=${x.entity.id} ${x.severity}/${x.score}: ${x.summary.slice(0, 140)}`);
  const d = r.decisions.map((x) => `D ${new Date(x.ts).toISOString().slice(5, 19)} ${x.action} ${x.entity.kind}=${x.entity.id} score=${x.score} [${x.signals.join(',')}]`);
  return [...f, ...d].join('\n');
}
