/**
 * One benchmark phase in its own process, so its peak RSS is its own:
 * `node dist/bench/phase.js <envelope-parse|parse-correlate> FILE`.
 * Prints one JSON object.
 */
import { ZoneClock } from '../src/envelope/zone.js';
import { parseFiles } from '../src/pipeline/parse-files.js';

async function main(): Promise<void> {
  const [phase, file] = process.argv.slice(2);
  if (!file || (phase !== 'envelope-parse' && phase !== 'parse-correlate')) {
    throw new Error('usage: phase.js envelope-parse|parse-correlate FILE');
  }
  const correlate = phase === 'parse-correlate';
  let peakEntries = 0;
  let messages = 0;
  const t0 = performance.now();
  const r = await parseFiles([file], {
    zone: new ZoneClock('UTC'),
    year: 2026,
    correlate,
    onMessage: correlate ? () => void messages++ : undefined,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.correlator) peakEntries = r.correlator.stats.peakOpen;
  const s = r.stats;
  process.stdout.write(
    JSON.stringify({
      phase,
      lines: s.lines,
      bytes: r.bytes,
      seconds: Number(seconds.toFixed(3)),
      linesPerSec: Math.round(s.lines / seconds),
      mbPerSec: Number((r.bytes / 1048576 / seconds).toFixed(1)),
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      events: s.events,
      unknown: s.unknown,
      malformed: s.malformed,
      unclaimed: s.unclaimed,
      ...(correlate ? { messages, correlatorPeakEntries: peakEntries, shed: r.correlator!.stats.shed, linked: r.correlator!.stats.linked } : {}),
    }) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(String((err as Error).stack ?? err) + '\n');
  process.exitCode = 1;
});
