/**
 * `floodgate replay FILE...`: the whole pipeline on finished files, by the
 * lines' own timestamps (no sleeping): findings and decisions as JSON lines
 * on stdout, a summary on stderr. Dry-run unless --act.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import type { Finding } from '../detect/finding.js';
import { DetectPipeline } from '../pipeline/detect-pipeline.js';
import { mergeInputs } from '../pipeline/merge.js';
import type { Decision } from '../policy/policy.js';
import { formatArg, intArg, usageError, yearArg, zoneArg } from './args.js';
import { JsonLinesWriter } from './output.js';
import { Progress } from './progress.js';
import { createActionRunner, type ActionHook } from './actions-hook.js';
import { dnsFromConfig } from './dns-hook.js';

export const replayHelp = `Usage: floodgate replay FILE... [options]

Run parsing, correlation, every detector and the policy over finished log
files (syslog and Zimbra mailbox.log/audit.log together: each file's format
is detected, and records are merged in time order). Times are the lines' own.

Options:
  --config F        floodgate.yaml (default: built-in defaults)
  --json            JSON lines even on a terminal (the default when piped)
  --act             execute decided actions (lock, hold, webhook); default is dry-run
  --tz ZONE         zone of timestamps without offset (default: config, $TZ, local)
  --year YYYY       year of the first classic-syslog line of each file
  --host NAME       host for lines without one (mailbox.log)
  --format F        auto|rfc3164|iso|rfc5424|zimbra (default auto)
  --max-line-bytes N
  -h, --help

Output: {"type":"finding","detector":...,"entity":{"kind","id"},"severity","score","ts","window","evidence":[...]}
and {"type":"decision","account","action":"alert"|"lock"|"none","dryRun",...}; a summary on stderr.`;

function human(o: Finding | Decision): string {
  const t = new Date(o.ts).toISOString().replace('T', ' ').slice(0, 19);
  if (o.type === 'finding') return `${t}  FINDING  ${o.severity.padEnd(8)} ${o.detector.padEnd(17)} ${o.entity.kind}=${o.entity.id}  ${o.summary}`;
  return `${t}  DECISION ${o.action.toUpperCase().padEnd(8)} ${(o.dryRun ? '(dry-run) ' : '')}${o.entity.kind}=${o.entity.id} score=${o.score}  ${o.reasons.join(' | ')}`;
}

export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      act: { type: 'boolean', default: false },
      tz: { type: 'string' },
      year: { type: 'string' },
      host: { type: 'string' },
      format: { type: 'string' },
      'max-line-bytes': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(replayHelp + '\n');
    return 0;
  }
  if (positionals.length === 0) throw usageError('replay needs at least one log file (see floodgate replay --help)');
  const cfg = loadConfig(values.config);
  if (!values.act) cfg.policy.dryRun = true;
  else cfg.policy.dryRun = false;
  const zone = zoneArg(values.tz ?? cfg.timezone);
  const format = formatArg(values.format);
  const json = values.json || !process.stdout.isTTY;
  const out = new JsonLinesWriter(process.stdout);
  const write = (o: Finding | Decision) => (json ? out.write(o) : process.stdout.write(human(o) + '\n'));
  const actions: ActionHook | undefined = values.act
    ? createActionRunner(cfg, (rec) => (json ? out.write(rec) : process.stdout.write(`ACTION ${JSON.stringify(rec)}\n`)), {
        queuedMailOf: (account) => ({ senders: [], queueIds: pipeline.correlator.queueIdsOf(account) }),
      })
    : undefined;
  const dns = dnsFromConfig(cfg);
  const pending: Promise<unknown>[] = [];
  const pipeline = new DetectPipeline(
    cfg,
    {
      onFinding: write,
      onDecision: (d) => {
        write(d);
        if (actions) pending.push(actions.execute(d));
      },
    },
    { dns },
  );
  const progress = new Progress(process.stderr);
  const t0 = performance.now();
  const r = await mergeInputs(
    positionals.map((p) => ({ path: p, format, host: values.host ?? 'localhost' })),
    pipeline.lines,
    (rec) => pipeline.feed(rec),
    {
      zone,
      year: yearArg(values.year),
      maxLineBytes: intArg('max-line-bytes', values['max-line-bytes'], 256, 64 * 1024 * 1024),
      onInputError: (file, err) => {
        progress.clear();
        process.stderr.write(`floodgate: ${file}: ${err.message} [${err.code}]\n`);
      },
      onProgress: (bytes, total) => progress.update('replay', bytes, total),
    },
  );
  await pipeline.finish();
  await Promise.all(pending);
  progress.clear();
  await out.end();
  const s = pipeline.stats;
  const seconds = (performance.now() - t0) / 1000;
  process.stderr.write(
    JSON.stringify({
      type: 'summary',
      lines: s.lines,
      events: s.events,
      messages: s.messages,
      findings: pipeline.counters.findings,
      decisions: pipeline.counters.decisions,
      byAction: pipeline.counters.byAction,
      dryRun: cfg.policy.dryRun,
      unknown: s.unknown,
      malformed: s.malformed,
      unclaimed: s.unclaimed,
      inputErrors: r.inputErrors,
      seconds: Number(seconds.toFixed(3)),
      linesPerSec: Math.round(s.lines / Math.max(seconds, 1e-9)),
    }) + '\n',
  );
  return r.inputErrors > 0 ? 1 : 0;
}
