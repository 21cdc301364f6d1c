// Shared by the actions tests: stand-in paths, their log, a recording audit sink.
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Actuator, execRunner, type ActionRecord, type ActuatorOptions } from '../../src/actions/index.js';

export const binDir = join(import.meta.dirname, '..', 'fixtures', 'bin');
export const bin = (name: string) => join(binDir, name);

export interface StandinRun {
  prog: string;
  argv: string[];
  stdin?: string;
  leakedEnv: string[];
}

/** A fresh log file for the stand-ins, and how to read it. */
export function standinLog() {
  const dir = mkdtempSync(join(tmpdir(), 'fg-actions-'));
  const path = join(dir, 'standin.jsonl');
  return {
    path,
    dir,
    runs(): StandinRun[] {
      if (!existsSync(path)) return [];
      return readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as StandinRun);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function recordingSink() {
  const records: ActionRecord[] = [];
  return { records, audit: (r: ActionRecord) => void records.push(r) };
}

/** An Actuator whose runner is the real execRunner, pointed at the stand-ins. */
export function standinActuator(log: { path: string }, config: ActuatorOptions['config'], extraEnv: Record<string, string> = {}, more: Partial<ActuatorOptions> = {}) {
  const sink = recordingSink();
  let t = 1_700_000_000_000;
  const actuator = new Actuator({
    config: {
      ...config,
      zmprov: { path: bin('zmprov'), ...config?.zmprov },
      queue: { postqueuePath: bin('postqueue'), postsuperPath: bin('postsuper'), ...config?.queue },
    },
    audit: sink.audit,
    runner: execRunner({ env: { FG_STANDIN_LOG: log.path, ...extraEnv }, baseEnv: { ...process.env, FLOODGATE_ZIMBRA_ADMIN_PASSWORD: 'never-pass-me-on' } }),
    now: () => (t += 1000),
    ...more,
  });
  return { actuator, records: sink.records };
}
