/**
 * Real pipeline output for the ClickHouse tests: a generated log (two MTAs,
 * a compromised-account episode) through envelope, parsers, correlator,
 * detectors and policy, plus action records as the actuator makes them.
 */
import { generateLines } from '../bench/generate.js';
import { actionRecordSchema, type ActionRecord } from '../src/actions/types.js';
import { validateConfig } from '../src/config/config.js';
import type { Event } from '../src/core/events.js';
import type { Message } from '../src/correlator/message.js';
import type { Finding } from '../src/detect/finding.js';
import { ZoneClock } from '../src/envelope/zone.js';
import { DetectPipeline } from '../src/pipeline/detect-pipeline.js';
import { envelopeContext } from '../src/pipeline/line-parser.js';
import type { Decision } from '../src/policy/policy.js';
import { LineEventIndexer } from '../src/clickhouse/rows.js';

export interface PipelineOutput {
  events: { event: Event; index: number }[];
  messages: Message[];
  findings: Finding[];
  decisions: Decision[];
  actions: ActionRecord[];
}

export async function pipelineOutput(lines = 20_000, seed = 7): Promise<PipelineOutput> {
  const cfg = validateConfig({ timezone: 'UTC' });
  const out: PipelineOutput = { events: [], messages: [], findings: [], decisions: [], actions: [] };
  const indexer = new LineEventIndexer();
  const p = new DetectPipeline(cfg, {
    onEvent: (e) => out.events.push({ event: e, index: indexer.index(e) }),
    onMessage: (m) => out.messages.push(m),
    onFinding: (f) => out.findings.push(f),
    onDecision: (d) => out.decisions.push(d),
  });
  const zone = new ZoneClock('UTC');
  const hosts = ['mx1', 'mx2'];
  const ctx = envelopeContext({ file: '/var/log/zimbra.log', zone, year: 2026 });
  let offset = 0;
  for (const line of generateLines({ lines, seed, hosts })) {
    const rec = p.lines.envelope(line, offset, ctx);
    if (rec) p.feed(rec);
    offset += Buffer.byteLength(line) + 1;
  }
  await p.finish();
  let n = 0;
  for (const d of out.decisions.filter((x) => x.account !== undefined).slice(0, 5)) {
    out.actions.push(
      actionRecordSchema.parse({
        id: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
        ts: d.ts + 5,
        action: d.action === 'lock' ? 'lock' : 'webhook',
        account: d.account,
        ok: true,
        dryRun: d.dryRun,
        changed: !d.dryRun,
        backend: d.action === 'lock' ? 'zmprov' : 'webhook',
        detail: `${d.action} for ${d.account}`,
        ...(d.action === 'lock' ? { command: ['/opt/zimbra/bin/zmprov', 'ma', d.account, 'zimbraAccountStatus', 'locked'] } : {}),
        by: 'policy',
        reason: d.reasons,
      }),
    );
  }
  return out;
}

/** A SASL login failure event, with fields to override (a row's worth of every column). */
export const authEvent = (over: Partial<Extract<Event, { kind: 'auth' }>> = {}): Event => ({
  kind: 'auth',
  ts: Date.UTC(2026, 10, 27, 10, 0, 0, 123),
  host: 'mx1',
  program: 'saslauthd',
  src: { file: '/var/log/zimbra.log', offset: 4096 },
  source: 'saslauthd',
  protocol: 'smtp',
  outcome: 'failure',
  account: 'Alice@Example.com',
  ip: '203.0.113.7',
  ...over,
});
