/**
 * One benchmark phase in its own process, so its peak RSS is its own:
 * `node dist/bench/phase.js <phase> FILE`. Prints one JSON object.
 *
 * Phases: envelope-parse, parse-correlate (issue #2), pipeline (replay's
 * whole path: merge → parse → correlate → all detectors → policy), and
 * state-memory (100k active accounts and 1M distinct client IPs through
 * every detector; FILE is ignored).
 */
import { validateConfig } from '../src/config/config.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { DetectPipeline } from '../src/pipeline/detect-pipeline.js';
import { envelopeContext } from '../src/pipeline/line-parser.js';
import { mergeInputs } from '../src/pipeline/merge.js';
import { parseFiles } from '../src/pipeline/parse-files.js';

const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

/**
 * CPU this process used since `from` (user + system, every thread: GC and
 * compiler threads too), per line: what a run cost, beside how long it took.
 * On these VMs both move together from run to run (the host's speed varies).
 */
function cpuOf(from: NodeJS.CpuUsage, lines: number): { cpuSeconds: number; cpuMicrosPerLine: number } {
  const u = process.cpuUsage(from);
  const us = u.user + u.system;
  return { cpuSeconds: Number((us / 1e6).toFixed(3)), cpuMicrosPerLine: Number((us / Math.max(1, lines)).toFixed(2)) };
}

async function parsePhase(phase: string, file: string): Promise<Record<string, unknown>> {
  const correlate = phase === 'parse-correlate';
  let messages = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await parseFiles([file], { zone: new ZoneClock('UTC'), year: 2026, correlate, onMessage: correlate ? () => void messages++ : undefined });
  const seconds = (performance.now() - t0) / 1000;
  const s = r.stats;
  return {
    lines: s.lines,
    bytes: r.bytes,
    seconds: Number(seconds.toFixed(3)),
    linesPerSec: Math.round(s.lines / seconds),
    mbPerSec: Number((r.bytes / 1048576 / seconds).toFixed(1)),
    ...cpuOf(c0, s.lines),
    peakRssMb: rssMb(),
    events: s.events,
    unknown: s.unknown,
    malformed: s.malformed,
    ...(correlate ? { messages, correlatorPeakEntries: r.correlator!.stats.peakOpen, shed: r.correlator!.stats.shed, linked: r.correlator!.stats.linked } : {}),
  };
}

const benchSite = { localDomains: ['example.com'], outboundIps: ['198.51.100.10'] };

async function pipelinePhase(file: string): Promise<Record<string, unknown>> {
  const cfg = validateConfig({ site: benchSite });
  const p = new DetectPipeline(cfg, {});
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await mergeInputs([{ path: file }], p.lines, (rec) => p.feed(rec), { zone: new ZoneClock('UTC'), year: 2026 });
  await p.finish();
  const seconds = (performance.now() - t0) / 1000;
  return {
    lines: p.stats.lines,
    bytes: r.bytes,
    seconds: Number(seconds.toFixed(3)),
    linesPerSec: Math.round(p.stats.lines / seconds),
    mbPerSec: Number((r.bytes / 1048576 / seconds).toFixed(1)),
    ...cpuOf(c0, p.stats.lines),
    peakRssMb: rssMb(),
    messages: p.stats.messages,
    findings: p.counters.findings,
    decisions: p.counters.decisions,
    byAction: p.counters.byAction,
    detectors: cfg.enabledDetectors.length,
  };
}

/** 100k accounts log in and send from 1M distinct IPs, and 1M IPs fail SASL logins: every keyed structure fills to its cap. */
function stateMemoryPhase(): Record<string, unknown> {
  const cfg = validateConfig({ site: benchSite });
  const p = new DetectPipeline(cfg, {});
  const ctx = envelopeContext({ file: 'synthetic', zone: new ZoneClock('UTC'), year: 2026 });
  const ACCOUNTS = 100_000;
  const IPS = 1_000_000;
  const base = Date.UTC(2026, 10, 27, 0, 0, 0);
  const ipOf = (i: number) => `${10 + (i >>> 16) % 200}.${(i >>> 8) & 255}.${i & 255}.${7 + (i % 3)}`;
  const hex = (n: number) => (0x1000000000 + n).toString(16).toUpperCase().slice(-10);
  const stamp = (ms: number) => {
    const d = new Date(ms);
    return `Nov ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)}`;
  };
  const t0 = performance.now();
  let lines = 0;
  let offset = 0;
  const feed = (line: string) => {
    const rec = p.lines.envelope(line, offset, ctx);
    offset += line.length + 1;
    lines++;
    if (rec) p.feed(rec);
  };
  // Two passes over 1M IPs within 2 hours: logins with sending (accounts × IPs) and SASL failures.
  for (let i = 0; i < IPS; i++) {
    const ts = stamp(base + Math.floor((i / IPS) * 7200_000));
    const ip = ipOf(i);
    const acct = `user${i % ACCOUNTS}@example.com`;
    const q = hex(i);
    feed(`${ts} mx1 postfix/submission/smtpd[100]: ${q}: client=unknown[${ip}], sasl_method=LOGIN, sasl_username=${acct}`);
    feed(`${ts} mx1 postfix/qmgr[101]: ${q}: from=<${acct}>, size=1000, nrcpt=1 (queue active)`);
    feed(`${ts} mx1 postfix/smtp[102]: ${q}: to=<r${i % 5000}@d${i % 9000}.example.net>, relay=mx.example.net[192.0.2.25]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 ok)`);
    feed(`${ts} mx1 postfix/qmgr[101]: ${q}: removed`);
    feed(`${ts} mx1 postfix/smtpd[103]: warning: unknown[${ipOf((i * 7919) % IPS)}]: SASL LOGIN authentication failed: authentication failure`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const peakRssMb = rssMb();
  const mem = process.memoryUsage();
  // with --expose-gc: what is live (the rest of heapUsed is garbage not yet collected)
  const gc = (globalThis as { gc?: () => void }).gc;
  let live: NodeJS.MemoryUsage | undefined;
  if (gc !== undefined) {
    gc();
    live = process.memoryUsage();
  }
  const stats = p.engine.store.stats();
  const keys = Object.values(stats).reduce((s, x) => s + x.keys, 0);
  const evicted = Object.values(stats).reduce((s, x) => s + x.evicted, 0);
  return {
    accounts: ACCOUNTS,
    distinctIps: IPS,
    lines,
    seconds: Number(seconds.toFixed(1)),
    linesPerSec: Math.round(lines / seconds),
    peakRssMb,
    heapUsedMb: Math.round(mem.heapUsed / 1048576),
    // the window store's typed columns live outside the JS heap
    arrayBuffersMb: Math.round(mem.arrayBuffers / 1048576),
    ...(live !== undefined ? { heapLiveMb: Math.round(live.heapUsed / 1048576), arrayBuffersLiveMb: Math.round(live.arrayBuffers / 1048576) } : {}),
    storeKeys: keys,
    storeStrings: p.engine.store.strings.size,
    storeEvicted: evicted,
    findings: p.counters.findings,
    largestStructures: Object.entries(stats)
      .sort((a, b) => b[1].keys - a[1].keys)
      .slice(0, 5)
      .map(([n, s]) => `${n}=${s.keys}`),
  };
}

async function main(): Promise<void> {
  const [phase, file] = process.argv.slice(2);
  let r: Record<string, unknown>;
  if (phase === 'envelope-parse' || phase === 'parse-correlate') r = await parsePhase(phase, file!);
  else if (phase === 'pipeline') r = await pipelinePhase(file!);
  else if (phase === 'state-memory') r = stateMemoryPhase();
  else throw new Error('usage: phase.js envelope-parse|parse-correlate|pipeline|state-memory FILE');
  process.stdout.write(JSON.stringify({ phase, ...r }) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(String((err as Error).stack ?? err) + '\n');
  process.exitCode = 1;
});
