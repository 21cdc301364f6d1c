/**
 * `npm run bench`: builds a deterministic synthetic Zimbra/Postfix log
 * (bench/generate.ts; cached in the temp folder) and measures each phase in
 * a fresh process (best of N runs). Prints one JSON document with the machine
 * it ran on. Options: --lines N (default 2,000,000), --runs N (default 3),
 * --seed N, --phases a,b (default all four).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeLog } from './generate.js';

interface PhaseResult {
  phase: string;
  linesPerSec: number;
  [k: string]: unknown;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      lines: { type: 'string', default: '2000000' },
      runs: { type: 'string', default: '3' },
      seed: { type: 'string', default: '42' },
      phases: { type: 'string', default: 'envelope-parse,parse-correlate,pipeline,state-memory' },
    },
  });
  const lines = Number(values.lines);
  const runs = Number(values.runs);
  const seed = Number(values.seed);
  if (!Number.isInteger(lines) || lines < 1000 || !Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
    throw new Error('--lines must be ≥ 1000, --runs ≥ 1, --seed an integer');
  }
  const file = join(tmpdir(), `floodgate-bench-${lines}-${seed}.log`);
  const g0 = performance.now();
  let generated = false;
  if (!existsSync(file)) {
    process.stderr.write(`bench: generating ${lines} lines into ${file}\n`);
    await writeLog(file + '.tmp', { lines, seed });
    execFileSync('mv', [file + '.tmp', file]);
    generated = true;
  }
  const genSeconds = (performance.now() - g0) / 1000;
  const phaseJs = fileURLToPath(new URL('./phase.js', import.meta.url));
  const results: Record<string, PhaseResult> = {};
  const phases = values.phases.split(',');
  for (const phase of phases) {
    let best: PhaseResult | undefined;
    for (let i = 0; i < runs; i++) {
      process.stderr.write(`bench: ${phase} run ${i + 1}/${runs}\n`);
      const out = execFileSync(process.execPath, [phaseJs, phase, file], { encoding: 'utf8', maxBuffer: 1 << 20 });
      const r = JSON.parse(out) as PhaseResult;
      if (!best || r.linesPerSec > best.linesPerSec) best = r;
      if (phase === 'state-memory') break; // one run: it measures memory, not speed
    }
    results[phase] = best!;
  }
  const cpu = cpus()[0];
  process.stdout.write(
    JSON.stringify(
      {
        type: 'bench',
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpu?.model ?? 'unknown',
        cores: cpus().length,
        memGb: Math.round(totalmem() / 2 ** 30),
        input: { file, lines, bytes: statSync(file).size, seed, generatedNow: generated, generateSeconds: Number(genSeconds.toFixed(1)) },
        runsPerPhase: runs,
        note: 'best of runs; each phase in a fresh single-threaded process; peakRssMb is that process\'s max RSS',
        envelopeParse: results['envelope-parse'],
        parseCorrelate: results['parse-correlate'],
        pipeline: results['pipeline'],
        stateMemory: results['state-memory'],
        targets: { parseCorrelateLinesPerSec: 1_000_000, parseCorrelatePeakRssMb: 250, pipelineLinesPerSec: 500_000, stateMemoryPeakRssMb: 500 },
      },
      null,
      2,
    ) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
