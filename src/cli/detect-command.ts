/**
 * `floodgate detect --config F`: one worker of the distributed detection
 * (Kafka consumer groups → parse/correlate → re-key → detectors/policy →
 * ClickHouse, actions exactly once via Redis). See src/distributed/.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { createLogger } from '../distributed/log.js';
import { serveMetrics } from '../distributed/metrics-server.js';
import { DetectWorker } from '../distributed/worker.js';
import { usageError, zoneArg } from './args.js';
import { dnsFromConfig } from './dns-hook.js';
import { parseHostPort } from './listen-arg.js';

export const detectHelp = `Usage: floodgate detect --config F [options]

Run one detection worker of the distributed mode. Workers with the same
kafka.groupId share the work: add workers to scale (up to kafka.partitions).

Stage parse: consumes the lines topic, parses and correlates per host, and
re-keys events and messages by account / IP onto the events topic (one Kafka
transaction per batch: exactly once). Stage detect: runs the detectors and
the policy per partition, stores events, messages, findings, decisions and
actions in ClickHouse (migrations run at start), and runs actions exactly once
per decision across workers (Redis lease). Detector state is checkpointed to
Redis (redis.snapshotIntervalMs) and restored when partitions move.

Options:
  --config F              floodgate.yaml (kafka, clickhouse, redis, policy, detectors...)
  --worker-id ID          stable name of this worker (default: hostname); two workers on one host need two ids
  --stages LIST           parse,detect (default both)
  --tz ZONE               zone of syslog timestamps (default: timezone in config, $TZ, or local)
  --metrics-listen H:P    serve /metrics and /health there (default: off)
  --verbose               debug logs too
  -h, --help

Logs: JSON lines on stderr (pino). SIGTERM/SIGINT: finish the batch, final
checkpoint, leave the group, exit 0.`;

export async function detectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      'worker-id': { type: 'string' },
      stages: { type: 'string' },
      tz: { type: 'string' },
      'metrics-listen': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(detectHelp + '\n');
    return 0;
  }
  if (positionals.length > 0) throw usageError(`detect takes no file arguments, got '${positionals[0]}'`);
  if (values.config === undefined) throw usageError('detect needs --config F');
  const workerId = values['worker-id'];
  if (workerId !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(workerId)) throw usageError('--worker-id: 1 to 64 letters, digits, . _ -');
  const stageList = (values.stages ?? 'parse,detect').split(',').map((s) => s.trim());
  for (const s of stageList) if (s !== 'parse' && s !== 'detect') throw usageError(`--stages: unknown stage '${s}' (parse, detect)`);
  const cfg = loadConfig(values.config);
  const zone = zoneArg(values.tz ?? cfg.timezone);
  const metricsAt = values['metrics-listen'] !== undefined ? parseHostPort('--metrics-listen', values['metrics-listen']) : undefined;
  const log = createLogger('floodgate-detect', values.verbose ? 'debug' : 'info');
  const dns = dnsFromConfig(cfg);
  const worker = new DetectWorker({
    cfg,
    zone,
    log,
    ...(workerId ? { workerId } : {}),
    stages: { parse: stageList.includes('parse'), detect: stageList.includes('detect') },
    ...(dns ? { dns } : {}),
  });
  await worker.start();
  const server = metricsAt ? await serveMetrics(metricsAt.host, metricsAt.port, () => worker.metrics(), () => worker.health()) : undefined;
  if (server) log.info({ address: server.address }, 'metrics listening');
  log.info({ worker: worker.workerId, stages: stageList }, 'detect worker running');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  log.info('stopping');
  await worker.stop();
  await server?.close();
  log.flush();
  return 0;
}
