/**
 * `floodgate ship --config F`: follow the configured log files and produce
 * their lines to Kafka (distributed mode; see src/distributed/ship.ts).
 */
import { parseArgs } from 'node:util';
import { Partitioners } from 'kafkajs';
import { loadConfig } from '../config/config.js';
import { FloodgateError } from '../core/errors.js';
import { createKafka, ensureTopics } from '../distributed/kafka.js';
import { createLogger } from '../distributed/log.js';
import { counter, gauge, serveMetrics } from '../distributed/metrics-server.js';
import { Shipper } from '../distributed/ship.js';
import { intArg, usageError } from './args.js';
import { parseHostPort } from './listen-arg.js';

export const shipHelp = `Usage: floodgate ship --config F [options]

Follow the log files listed in the config's inputs (tail -F, rotation by
rename and copytruncate) and produce their lines to Kafka (kafka.topics.lines,
keyed by this host; acks=all, idempotent producer, batches of kafka.batchLines,
gzip). Positions are saved in ship.statePath after the broker acknowledged a
batch. When Kafka is down, reading stops and resumes where it was: nothing is
lost and memory stays bounded. Run one on every mail host.

Options:
  --config F                floodgate.yaml (required: it lists the inputs)
  --host NAME               Kafka key and host of lines that carry none (default: ship.host or hostname)
  --poll-ms N               how often inputs are polled, ms (default 250)
  --metrics-listen H:P      serve /metrics and /health there (default: off)
  --verbose                 debug logs too
  -h, --help

Logs: JSON lines on stderr (pino). SIGTERM/SIGINT: stop reading, wait for the
batch in flight, save positions, exit 0.`;

export async function shipCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      'poll-ms': { type: 'string' },
      'metrics-listen': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(shipHelp + '\n');
    return 0;
  }
  if (positionals.length > 0) throw usageError(`ship takes no file arguments (inputs come from the config), got '${positionals[0]}'`);
  if (values.config === undefined) throw usageError('ship needs --config F (its inputs list the files to follow)');
  const cfg = loadConfig(values.config);
  if (cfg.inputs.length === 0) throw new FloodgateError('FG_CONFIG_INVALID', `${values.config}: inputs is empty; list the log files to ship`);
  const pollMs = intArg('poll-ms', values['poll-ms'], 1, 60_000);
  const metricsAt = values['metrics-listen'] !== undefined ? parseHostPort('--metrics-listen', values['metrics-listen']) : undefined;
  const log = createLogger('floodgate-ship', values.verbose ? 'debug' : 'info');

  const kafka = createKafka(cfg.kafka, log);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, cfg.kafka, log);
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const shipper = new Shipper({ cfg, producer, log, ...(values.host ? { host: values.host } : {}), ...(pollMs ? { pollMs } : {}) });
  await shipper.start();
  const server = metricsAt
    ? await serveMetrics(
        metricsAt.host,
        metricsAt.port,
        () => [
          counter('floodgate_ship_lines_total', 'Lines acknowledged by Kafka', shipper.metrics.linesShipped),
          counter('floodgate_ship_bytes_total', 'Bytes of records acknowledged by Kafka (compressed by the producer on the wire)', shipper.metrics.bytesShipped),
          counter('floodgate_ship_batches_total', 'Records (line batches) acknowledged by Kafka', shipper.metrics.batches),
          counter('floodgate_ship_send_failures_total', 'Failed sends (Kafka down or refusing); each batch is retried', shipper.metrics.sendFailures),
          gauge('floodgate_ship_in_flight_lines', 'Lines waiting for the broker acknowledgement', shipper.metrics.inFlightLines),
          gauge('floodgate_ship_last_send_seconds', 'Duration of the last acknowledged send', shipper.metrics.lastSendMs / 1000),
        ],
        () => Promise.resolve({ ok: shipper.metrics.inFlightLines === 0 || shipper.metrics.lastSendMs < 30_000, inputs: shipper.inputStatus().map((i) => ({ path: i.path, lines: i.lines })) }),
      )
    : undefined;
  if (server) log.info({ address: server.address }, 'metrics listening');

  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  log.info('stopping');
  await shipper.stop();
  await producer.disconnect().catch(() => undefined);
  await server?.close();
  log.flush();
  return 0;
}
