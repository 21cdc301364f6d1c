/**
 * `floodgate demo` (what `npm start` runs): the whole pipeline — parsers,
 * correlator, every detector, the policy — over the bundled demo log, a
 * synthetic day on a Zimbra server with one stolen account sending as
 * x@yahoo.com.tw among decoys (an all-staff announcement, a newsletter's
 * peak, a password typo). Dry-run: nothing is executed. Needs only Node.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { validateConfig } from '../config/config.js';
import type { Finding } from '../detect/finding.js';
import { ZoneClock } from '../envelope/zone.js';
import { DetectPipeline } from '../pipeline/detect-pipeline.js';
import { mergeInputs } from '../pipeline/merge.js';
import type { Decision } from '../policy/policy.js';

export const demoHelp = `Usage: floodgate demo [--json]

Run the whole detection pipeline (dry-run) over the bundled demo log
(demo/zimbra-day.log) and explain what it found and what it would do.
--json prints the findings and decisions as JSON lines instead.`;

export const demoLog = fileURLToPath(new URL('../../../demo/zimbra-day.log', import.meta.url));

/** The site the demo log comes from: what an admin would put in floodgate.yaml. */
export const demoSite = { localDomains: ['example.com'], mailHosts: ['10.0.0.5'], outboundIps: ['198.51.100.10'] };

const clock = (ts: number) => new Date(ts).toISOString().slice(11, 19);

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(demoHelp + '\n');
    return 0;
  }
  const cfg = validateConfig({ timezone: 'UTC', site: demoSite }, 'demo config');
  const findings: Finding[] = [];
  const decisions: Decision[] = [];
  const pipeline = new DetectPipeline(cfg, { onFinding: (f) => findings.push(f), onDecision: (d) => decisions.push(d) });
  const t0 = performance.now();
  await mergeInputs([{ path: demoLog, host: 'mbox1' }], pipeline.lines, (r) => pipeline.feed(r), { zone: new ZoneClock('UTC'), year: 2026 });
  await pipeline.finish();
  const ms = performance.now() - t0;
  if (values.json) {
    for (const o of [...findings, ...decisions].sort((a, b) => a.ts - b.ts)) process.stdout.write(JSON.stringify(o) + '\n');
    return 0;
  }
  const s = pipeline.stats;
  const out: string[] = [];
  out.push(`floodgate demo — ${demoLog}`);
  out.push(`${s.lines} lines → ${s.events} events, ${s.messages} messages → ${findings.length} findings → ${decisions.length} decisions, in ${ms.toFixed(0)} ms (dry-run: nothing executed)`);
  out.push('');
  const byDetector = new Map<string, number>();
  for (const f of findings) byDetector.set(f.detector, (byDetector.get(f.detector) ?? 0) + 1);
  out.push(`Findings by detector: ${[...byDetector].map(([d, n]) => `${d} ${n}`).join(', ') || 'none'}`);
  out.push('');
  const locks = decisions.filter((d) => d.action === 'lock');
  const alerts = decisions.filter((d) => d.action === 'alert');
  for (const d of locks) {
    const first = findings.filter((f) => (f.account ?? f.entity.id) === d.account).reduce((m, f) => Math.min(m, f.ts), Infinity);
    out.push(`LOCK (dry-run) ${d.account} at ${clock(d.ts)} — risk ${d.score}${Number.isFinite(first) ? `, ${Math.round((d.ts - first) / 1000)} s after the first finding on it` : ''}`);
    for (const r of d.reasons) out.push(`    ${r}`);
    out.push(`    would run: zmprov ma ${d.account} zimbraAccountStatus locked; hold its queued mail (postsuper -h)`);
    const ev = d.evidence[0];
    if (ev) out.push(`    evidence: ${ev.file} at byte ${ev.offset} (and ${d.evidence.length - 1} more)`);
  }
  if (locks.length === 0) out.push('No account would be locked.');
  out.push('');
  out.push(`Alerts (${alerts.length}), no lock:`);
  for (const d of alerts.slice(0, 12)) out.push(`  ${clock(d.ts)} ${d.entity.kind}=${d.entity.id} risk ${d.score}: ${d.reasons[0] ?? ''}`);
  if (alerts.length > 12) out.push(`  … and ${alerts.length - 12} more (floodgate demo --json)`);
  out.push('');
  out.push('Your own logs: npx floodgate replay /var/log/zimbra.log /opt/zimbra/log/mailbox.log --config floodgate.yaml');
  out.push('Live, with the API:  npx floodgate run --config floodgate.yaml   (see README)');
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
