/**
 * CommandRunner: how actions start external programs (zmprov, postqueue,
 * postsuper). Always an argument vector, never a shell string: `spawn` with
 * `shell: false`, so no character of an account name is ever interpreted.
 * Each run has a timeout and a cap on what it may print, and the child gets
 * a small allow-listed environment rather than floodgate's own (which may
 * hold the SOAP admin password or webhook secrets).
 *
 * Tests inject a recording runner, or point the real one at stand-in
 * scripts (test/fixtures/bin/).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { FloodgateError } from '../core/errors.js';

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. Without it stdin is closed at once. */
  input?: string;
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit status; a child killed by a signal reports 128 + the signal number, as a shell would. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

export interface ExecRunnerOptions {
  /** Used when a run gives no timeout. Default 60 s (zmprov starts a JVM: seconds, not milliseconds). */
  defaultTimeoutMs?: number;
  /** Cap on stdout (and, separately, stderr) bytes; past it the child is killed. Default 64 MiB (`postqueue -j` on a big queue). */
  maxOutputBytes?: number;
  /** Variables added to the allow-listed environment (e.g. `ZIMBRA_HOME`); never put secrets here. */
  env?: Record<string, string>;
  /** Where the allow-listed variables are read from. Default `process.env`. */
  baseEnv?: NodeJS.ProcessEnv;
  /** Grace between SIGTERM and SIGKILL on timeout. Default 2 s. */
  killGraceMs?: number;
}

/**
 * Variables a child may inherit. PATH/HOME/locale for the programs
 * themselves, SSH_AUTH_SOCK so an `ssh host` prefix can use an agent.
 * Everything else (FLOODGATE_*, tokens, passwords) stays in this process.
 */
const inheritedEnv = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'SSH_AUTH_SOCK'];

export function childEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of inheritedEnv) {
    const v = base[k];
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Checks an argv before it reaches spawn: non-empty, strings, no NUL. */
export function assertArgv(argv: readonly string[]): void {
  if (argv.length === 0) throw new FloodgateError('FG_INTERNAL', 'empty command line');
  for (const a of argv) {
    if (typeof a !== 'string' || a.includes('\0')) throw new FloodgateError('FG_INTERNAL', 'command line argument is not a string without NUL');
  }
  if (argv[0] === '') throw new FloodgateError('FG_INTERNAL', 'empty program name');
}

function signalCode(signal: NodeJS.Signals | null): number {
  if (signal === null) return 1;
  const n = (constants.signals as Record<string, number | undefined>)[signal];
  return 128 + (n ?? 0);
}

/** The production runner. Rejects with FG_ACTION_COMMAND_FAILED when the program cannot start, times out or prints too much; a non-zero exit is a result, not a rejection. */
export function execRunner(options: ExecRunnerOptions = {}): CommandRunner {
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 60_000;
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024 * 1024;
  const killGraceMs = options.killGraceMs ?? 2_000;
  const env = childEnv(options.baseEnv ?? process.env, options.env);

  return {
    run(argv, opts = {}) {
      assertArgv(argv);
      const [file, ...args] = argv as [string, ...string[]];
      const timeoutMs = opts.timeoutMs ?? defaultTimeoutMs;
      return new Promise<RunResult>((resolve, reject) => {
        const child = spawn(file, args, { shell: false, env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let outBytes = 0;
        let errBytes = 0;
        let failure: FloodgateError | undefined;
        let killTimer: NodeJS.Timeout | undefined;

        const kill = (why: FloodgateError) => {
          if (failure) return;
          failure = why;
          child.kill('SIGTERM');
          killTimer = setTimeout(() => child.kill('SIGKILL'), killGraceMs);
          killTimer.unref();
        };
        const timer = setTimeout(() => kill(new FloodgateError('FG_ACTION_COMMAND_FAILED', `${file} timed out after ${timeoutMs} ms`)), timeoutMs);

        child.stdout.on('data', (b: Buffer) => {
          outBytes += b.length;
          if (outBytes > maxOutputBytes) kill(new FloodgateError('FG_ACTION_COMMAND_FAILED', `${file} printed more than ${maxOutputBytes} bytes`));
          else out.push(b);
        });
        child.stderr.on('data', (b: Buffer) => {
          errBytes += b.length;
          if (errBytes <= maxOutputBytes) err.push(b);
        });
        // A child that exits without reading its stdin makes our write fail with EPIPE: not our error to report.
        child.stdin.on('error', () => {});
        child.stdin.end(opts.input ?? '');

        child.on('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          if (killTimer) clearTimeout(killTimer);
          const what = e.code === 'ENOENT' ? 'not found' : e.code === 'EACCES' ? 'permission denied' : e.message;
          reject(new FloodgateError('FG_ACTION_COMMAND_FAILED', `cannot run ${file}: ${what}`, { cause: e }));
        });
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (killTimer) clearTimeout(killTimer);
          if (failure) return reject(failure);
          resolve({
            code: code ?? signalCode(signal),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        });
      });
    },
  };
}
