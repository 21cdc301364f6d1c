/**
 * `floodgate run --config F`: the standalone live mode. Follows every
 * configured input, detects, decides, acts, keeps its history in the
 * embedded store and serves the API, until SIGTERM/SIGINT (final checkpoint,
 * exit 0). `--once` reads every input to its current end, checkpoints and
 * exits (cron, tests). Status lines go to stderr as JSON, without account
 * names or IPs at info level.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Actuator } from '../actions/index.js';
import { buildApi, type ApiToken } from '../api/server.js';
import { renderMetrics } from '../api/metrics.js';
import { loadConfig, type FloodgateConfig } from '../config/config.js';
import { FloodgateError } from '../core/errors.js';
import { Runner, type LogLevel, type RunLog } from '../run/runner.js';
import { Store } from '../store/store.js';
import { intArg, usageError, zoneArg } from './args.js';
import { parseHostPort } from './listen-arg.js';
import { dnsFromConfig } from './dns-hook.js';

export const runHelp = `Usage: floodgate run --config F [options]

Follow the configured log files live (tail -F, rotation-aware), detect
compromised accounts, decide and act (dry-run unless policy.dryRun: false),
keep findings, decisions, actions and messages in the embedded store
(store.path, SQLite), and serve the HTTP API (api.listen).

Results are committed at checkpoints together with each input's position and
the detection state, in one transaction: after a crash or kill -9, floodgate
resumes from the last checkpoint and every line counts exactly once. Actions
are recorded at once and never repeated for the same decision or for an
account floodgate already locked.

Options:
  --config F          floodgate.yaml (required: it lists the inputs)
  --once              read every input to its current end, checkpoint, exit
  --checkpoint-ms N   checkpoint interval in ms (default 2000)
  --poll-ms N         how often inputs are polled, ms (default 250)
  --listen HOST:PORT  API address (default: api.listen; port 0 picks one)
  --no-api            do not serve the API
  --verbose           debug status lines too
  -h, --help

Signals: SIGTERM/SIGINT stop the inputs, commit a final checkpoint, close the
API and exit 0.
Status (stderr): one JSON object per line {"ts","level","msg",...}.
API: GET /health, /metrics, /findings, /accounts/{account}, /openapi.json;
POST /accounts/{account}/lock|unlock (act token). See docs or /openapi.json.`;

function jsonLog(verbose: boolean): RunLog {
  return (level: LogLevel, msg: string, fields: Record<string, unknown> = {}) => {
    if (level === 'debug' && !verbose) return;
    process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }) + '\n');
  };
}

export function resolveTokens(cfg: FloodgateConfig): ApiToken[] {
  const problems: string[] = [];
  const out: ApiToken[] = [];
  cfg.api.tokens.forEach((t, i) => {
    const value = t.token ?? (t.tokenEnv !== undefined ? process.env[t.tokenEnv] : undefined);
    if (value === undefined || value === '') problems.push(`api.tokens[${i}].tokenEnv: the environment variable ${t.tokenEnv} is not set`);
    else if (value.length < 16) problems.push(`api.tokens[${i}]: tokens must be at least 16 characters`);
    else out.push({ name: t.name, role: t.role, token: value });
  });
  if (problems.length > 0) throw new FloodgateError('FG_CONFIG_INVALID', `invalid api config:\n  - ${problems.join('\n  - ')}`);
  return out;
}


export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      once: { type: 'boolean', default: false },
      'checkpoint-ms': { type: 'string' },
      'poll-ms': { type: 'string' },
      listen: { type: 'string' },
      'no-api': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(runHelp + '\n');
    return 0;
  }
  if (positionals.length > 0) throw usageError(`run takes no file arguments (inputs are listed in the config); got '${positionals[0]}'`);
  if (values.config === undefined) throw usageError('run needs --config F (the inputs are listed there; see floodgate run --help)');
  const cfg = loadConfig(values.config);
  if (cfg.inputs.length === 0) throw new FloodgateError('FG_CONFIG_INVALID', `${values.config}: inputs: list at least one log file to follow (e.g. - path: /var/log/zimbra.log)`);
  const zone = zoneArg(cfg.timezone);
  const checkpointMs = intArg('checkpoint-ms', values['checkpoint-ms'], 10, 3600_000);
  const pollMs = intArg('poll-ms', values['poll-ms'], 1, 60_000);
  const serveApi = !values.once && !values['no-api'];
  const listen = parseHostPort('--listen', values.listen ?? cfg.api.listen);
  const tokens = serveApi ? resolveTokens(cfg) : [];
  const log = jsonLog(values.verbose);

  // A relative store path is relative to the config file, so the unit's working directory does not matter.
  const storePath = isAbsolute(cfg.store.path) ? cfg.store.path : resolve(dirname(values.config), cfg.store.path);
  const store = new Store(storePath);
  const runner = new Runner({ config: cfg, store, zone, checkpointMs, pollMs, log, dns: dnsFromConfig(cfg) });

  if (values.once) {
    try {
      await runner.runOnce();
    } finally {
      store.close();
    }
    return 0;
  }

  let api: ReturnType<typeof buildApi> | undefined;
  if (serveApi) {
    const actuator = new Actuator({
      config: { ...cfg.actions, dryRun: false }, // an operator's explicit request runs for real
      audit: (rec) => {
        store.recordAction(rec);
        runner.countAction(rec);
        log('info', 'api action', { action: rec.action, ok: rec.ok, by: rec.by, ...(rec.error ? { code: rec.error.code } : {}) });
      },
      outbox: store,
    });
    api = buildApi({
      store,
      tokens,
      actuator,
      policy: {
        unlocked: (a) => runner.pipeline.policy.unlocked(a),
        lockedByOperator: (a) => runner.pipeline.policy.lockedByOperator(a),
        isLocked: (a) => runner.pipeline.policy.isLocked(a),
      },
      metrics: () => renderMetrics(runner.metricFamilies()),
      inputs: () => runner.inputStatus(),
      uptime: () => (Date.now() - runner.startedAt) / 1000,
      onChange: () => runner.touch(),
      hold: { onLock: cfg.policy.holdOnLock, queuedMailOf: (a) => runner.queuedMailOf(a) },
    });
  }

  await runner.start();
  if (api) {
    try {
      const address = await api.listen({ host: listen.host, port: listen.port });
      log('info', 'api listening', { address, tokens: tokens.length });
    } catch (e) {
      await runner.stop();
      store.close();
      throw new FloodgateError('FG_USAGE', `cannot listen on ${listen.host}:${listen.port}: ${(e as Error).message}`);
    }
  }

  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        log('warn', 'second signal: exiting without waiting', { signal: sig });
        process.exit(1);
      }
      stopping = true;
      log('info', 'stopping', { signal: sig });
      void (async () => {
        try {
          await api?.close();
          await runner.stop();
        } catch (e) {
          log('error', 'final checkpoint failed', { error: (e as Error).message });
          process.exitCode = 1;
        } finally {
          store.close();
          resolveStop();
        }
      })();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
