// What the real-service suites connect to, and a handle on scripts/services.sh
// for the fault tests that stop and start a service. The addresses default to
// the loopback services that `bash scripts/services.sh up` starts; the
// FLOODGATE_TEST_* variables point a run at other servers.
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parsePostqueueJson, type PostqueueListing } from '../../../src/actions/index.js';

export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');
export const SERVICES_SCRIPT = join(REPO_ROOT, 'scripts', 'services.sh');

/** FLOODGATE_TEST_KAFKA: comma-separated host:port list. */
export const KAFKA_BROKERS: string[] = (process.env.FLOODGATE_TEST_KAFKA ?? '127.0.0.1:9092')
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b !== '');
export const CLICKHOUSE_URL = process.env.FLOODGATE_TEST_CLICKHOUSE ?? 'http://127.0.0.1:8123';
export const REDIS_URL = process.env.FLOODGATE_TEST_REDIS ?? 'redis://127.0.0.1:6379';

export type ServiceName = 'kafka' | 'clickhouse' | 'redis' | 'postfix';
export type ServiceAction = 'up' | 'down' | 'status';

export interface ServiceCtlResult {
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Run `scripts/services.sh <action> [names]` and wait for it. Rejects with the
 * script's stderr (which names the service and its log file) when it fails.
 * Starting a cold broker can take a while on a loaded 2-core machine, hence
 * the long default timeout.
 */
export function serviceCtl(action: ServiceAction, name?: ServiceName | ServiceName[], timeoutMs = 300_000, env?: NodeJS.ProcessEnv): Promise<ServiceCtlResult> {
  const names = name === undefined ? [] : Array.isArray(name) ? name : [name];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile('bash', [SERVICES_SCRIPT, action, ...names], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, ...(env ? { env: { ...process.env, ...env } } : {}) }, (err, stdout, stderr) => {
      const ms = performance.now() - started;
      if (err) {
        reject(new Error(`services.sh ${[action, ...names].join(' ')} failed after ${Math.round(ms)} ms: ${err.message}\n${stderr}`));
        return;
      }
      resolve({ stdout, stderr, ms });
    });
  });
}

export interface ServiceStatus {
  name: string;
  state: 'up' | 'down' | 'starting';
  /** Where it listens (ClickHouse started here adds `data:memory` or `data:disk`). */
  address: string;
  version: string;
  /** 'services.sh' when this script started it, 'external' when it was already running. */
  startedBy: 'services.sh' | 'external' | '-';
  pid: number | undefined;
}

/** One record per line of `services.sh status` (columns are separated by two or more spaces). */
export function parseStatus(stdout: string): Map<string, ServiceStatus> {
  const out = new Map<string, ServiceStatus>();
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s{2,}/);
    if (cols.length !== 5) continue;
    const [name, state, address, version, who] = cols as [string, string, string, string, string];
    if (state !== 'up' && state !== 'down' && state !== 'starting') continue;
    const pid = /^services\.sh \(pid (\d+)\)$/.exec(who)?.[1];
    out.set(name, {
      name,
      state,
      address,
      version,
      startedBy: pid !== undefined ? 'services.sh' : who === 'external' ? 'external' : '-',
      pid: pid === undefined ? undefined : Number(pid),
    });
  }
  return out;
}

/** The private Postfix instance `scripts/services.sh up postfix` runs: its config dir, for MAIL_CONFIG / -C. */
export const POSTFIX_CONFIG_DIR = join(process.env.FLOODGATE_SERVICES_DIR ?? join(REPO_ROOT, '.services'), 'postfix');
/** Its SASL submission listener (FLOODGATE_POSTFIX_SMTP_PORT, as for services.sh), and the test accounts services.sh gives Dovecot. */
export const POSTFIX_SMTP_PORT = Number(process.env.FLOODGATE_POSTFIX_SMTP_PORT ?? 10587);
export const POSTFIX_ACCOUNTS = { alice: { user: 'alice@example.com', password: 'alice-test-password' }, bob: { user: 'bob@example.com', password: 'bob-test-password' } } as const;

/** The test Postfix's queue as the real `postqueue -j` lists it. */
export function postfixQueue(): PostqueueListing {
  return parsePostqueueJson(execFileSync('/usr/sbin/postqueue', ['-j'], { env: { ...process.env, MAIL_CONFIG: POSTFIX_CONFIG_DIR }, encoding: 'utf8' }));
}
