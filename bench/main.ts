/**
 * `npm run bench`: builds a deterministic synthetic Zimbra/Postfix log
 * (bench/generate.ts; cached in the temp folder) and measures each phase in
 * a fresh process (best of N runs). Prints one JSON document with the machine
 * it ran on, with two readings of its speed (bench/machine-probe.ts). Options: --lines N (default 2,000,000), --runs N (default 3),
 * --seed N, --phases a,b (default the four that need nothing but Node).
 *
 * Phase `kafka` (only when named in --phases: it needs Kafka, ClickHouse and
 * Redis from `bash scripts/services.sh up`, and fails saying so when they do
 * not answer) measures the distributed path once (bench/kafka-phase.ts):
 * throughput of the generated log through ship → Kafka → detect →
 * ClickHouse, and latency at a steady rate. Its options: --kafka-rate N
 * (lines/s, default 10,000), --kafka-seconds N (default 40), --kafka-markers N
 * (marker lines per second, default 25), --kafka-runs throughput,latency,
 * --kafka-profile DIR (CPU profiles of ship and detect, summarised),
 * --kafka-hops (split the latency by hop, with two more consumers that cost
 * CPU of their own),
 * --kafka-keep (leave the deployments in place), --kafka-settings JSON
 * (change deployment settings in both runs, e.g. '{"compression":"none"}').
 *
 * Phase `kafka-floor` (only when named; the same services) sends the log
 * through Kafka into ClickHouse with nothing parsed (bench/kafka-floor.ts):
 * the CPU per line the hops alone take. With `pipeline` in the same run the
 * output adds `kafkaCeiling`: the lines/s the machine's cores could carry if
 * the Kafka path cost no more than those hops plus the pipeline's own work.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeLog } from './generate.js';
import { kafkaCeiling } from './ceiling.js';
import { kafkaFloorPhase } from './kafka-floor.js';
import { kafkaPhase, parseKafkaSettings } from './kafka-phase.js';
import { probeMachine } from './machine-probe.js';
import { withSpread, type RunResult } from './spread.js';

type PhaseResult = RunResult;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      lines: { type: 'string', default: '2000000' },
      runs: { type: 'string', default: '3' },
      seed: { type: 'string', default: '42' },
      phases: { type: 'string', default: 'envelope-parse,parse-correlate,pipeline,state-memory' },
      'kafka-rate': { type: 'string', default: '10000' },
      'kafka-seconds': { type: 'string', default: '40' },
      'kafka-markers': { type: 'string', default: '25' },
      'kafka-runs': { type: 'string', default: 'throughput,latency' },
      'kafka-profile': { type: 'string' },
      'kafka-keep': { type: 'boolean', default: false },
      'kafka-hops': { type: 'boolean', default: false },
      'kafka-settings': { type: 'string' },
    },
  });
  const lines = Number(values.lines);
  const runs = Number(values.runs);
  const seed = Number(values.seed);
  if (!Number.isInteger(lines) || lines < 1000 || !Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
    throw new Error('--lines must be ≥ 1000, --runs ≥ 1, --seed an integer');
  }
  const phases = values.phases.split(',');
  const known = ['envelope-parse', 'parse-correlate', 'pipeline', 'state-memory', 'kafka', 'kafka-floor'];
  for (const p of phases) if (!known.includes(p)) throw new Error(`--phases: unknown phase '${p}' (${known.join(', ')})`);
  const kafkaOpts = {
    rate: Number(values['kafka-rate']),
    seconds: Number(values['kafka-seconds']),
    markersPerSec: Number(values['kafka-markers']),
    runs: { throughput: values['kafka-runs'].split(',').includes('throughput'), latency: values['kafka-runs'].split(',').includes('latency') },
  };
  if (!(kafkaOpts.rate >= 1 && kafkaOpts.seconds >= 1 && kafkaOpts.markersPerSec > 0 && kafkaOpts.markersPerSec <= kafkaOpts.rate)) {
    throw new Error('--kafka-rate and --kafka-seconds must be ≥ 1, --kafka-markers between 0 and the rate');
  }
  // Checked before the log is generated and any phase runs: a bad setting should not cost a bench run.
  const kafkaOverrides = values['kafka-settings'] !== undefined ? parseKafkaSettings(values['kafka-settings']) : undefined;
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
  // Before the phases, with the machine as quiet as the bench leaves it.
  process.stderr.write('bench: probing the machine\n');
  const machine = probeMachine();
  const phaseJs = fileURLToPath(new URL('./phase.js', import.meta.url));
  const results: Record<string, PhaseResult> = {};
  for (const phase of phases) {
    if (phase === 'kafka') {
      // One run: it takes minutes, and its latency half is a distribution already.
      process.stderr.write('bench: kafka (needs Kafka, ClickHouse and Redis)\n');
      results.kafka = (await kafkaPhase({
        file,
        seed,
        ...kafkaOpts,
        ...(values['kafka-profile'] !== undefined ? { profileDir: values['kafka-profile'] } : {}),
        keep: values['kafka-keep'],
        hops: values['kafka-hops'],
        ...(kafkaOverrides !== undefined ? { overrides: kafkaOverrides } : {}),
      })) as PhaseResult;
      continue;
    }
    if (phase === 'kafka-floor') {
      process.stderr.write('bench: kafka-floor (needs Kafka and ClickHouse)\n');
      results['kafka-floor'] = (await kafkaFloorPhase({ file, lines })) as PhaseResult;
      continue;
    }
    const all: PhaseResult[] = [];
    for (let i = 0; i < runs; i++) {
      process.stderr.write(`bench: ${phase} run ${i + 1}/${runs}\n`);
      const out = execFileSync(process.execPath, [phaseJs, phase, file], { encoding: 'utf8', maxBuffer: 1 << 20 });
      all.push(JSON.parse(out) as PhaseResult);
      if (phase === 'state-memory') break; // one run: it measures memory, not speed
    }
    results[phase] = withSpread(all);
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
        machine,
        input: { file, lines, bytes: statSync(file).size, seed, generatedNow: generated, generateSeconds: Number(genSeconds.toFixed(1)) },
        runsPerPhase: runs,
        note: 'best of runs (`runs` lists them all, with their median); each phase in a fresh single-threaded process; peakRssMb is that process\'s max RSS; kafka: one run over several processes (see its notes)',
        envelopeParse: results['envelope-parse'],
        parseCorrelate: results['parse-correlate'],
        pipeline: results['pipeline'],
        stateMemory: results['state-memory'],
        kafka: results['kafka'],
        kafkaFloor: results['kafka-floor'],
        kafkaCeiling: kafkaCeiling(results['kafka-floor'], results['pipeline'], cpus().length),
        targets: {
          parseCorrelateLinesPerSec: 1_000_000,
          parseCorrelatePeakRssMb: 250,
          pipelineLinesPerSec: 500_000,
          stateMemoryPeakRssMb: 500,
          kafkaLinesPerSec: 200_000,
          kafkaFindingLatencyP99Ms: 500,
        },
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
