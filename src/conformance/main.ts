/**
 * `npm run conformance -- ../shared/corpus`: runs every real public log
 * sample through the envelope and parsers and reports, per source file,
 * lines / recognised / unknown / unclaimed / malformed, listing every line
 * of a supported program that was not recognised. Exits 1 when such a line
 * is not in conformance/out-of-scope.yaml (with its reason).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ParseStatus, programKey } from '../core/dispatch.js';
import type { Event } from '../core/events.js';
import { ZoneClock } from '../envelope/zone.js';
import { LineParser, envelopeContext } from '../pipeline/line-parser.js';
import { allows, loadAllowlist } from './allowlist.js';
import { corpusFiles } from './corpus.js';

const defaultAllowlist = fileURLToPath(new URL('../../../conformance/out-of-scope.yaml', import.meta.url));

interface Row {
  file: string;
  lines: number;
  recognised: number;
  unknown: number;
  allowed: number;
  unclaimed: number;
  malformed: number;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, allowlist: { type: 'string' }, 'show-unclaimed': { type: 'boolean', default: false } },
  });
  const dir = positionals[0] ?? '../shared/corpus';
  if (!existsSync(dir)) {
    process.stderr.write(`conformance: corpus folder ${dir} not found\n`);
    return 2;
  }
  const allow = loadAllowlist(values.allowlist ?? defaultAllowlist);
  const used = new Set<number>();
  const rows: Row[] = [];
  const failures: { file: string; line: string; why: string }[] = [];
  const unclaimedPrograms = new Map<string, number>();
  const out: Event[] = [];
  for (const f of corpusFiles(dir)) {
    const lp = new LineParser();
    const ctx = envelopeContext({ file: f.rel, zone: new ZoneClock('UTC'), year: 2020 });
    const row: Row = { file: f.rel, lines: f.lines.length, recognised: 0, unknown: 0, allowed: 0, unclaimed: 0, malformed: 0 };
    let offset = 0;
    for (const line of f.lines) {
      out.length = 0;
      const status = lp.parseLine(line, offset, ctx, out);
      offset += Buffer.byteLength(line) + 1;
      if (status === ParseStatus.Recognised) {
        row.recognised++;
        continue;
      }
      if (status === ParseStatus.Unclaimed) {
        row.unclaimed++;
        const p = programKey(lp.lastRecord?.program ?? '?');
        unclaimedPrograms.set(p, (unclaimedPrograms.get(p) ?? 0) + 1);
        continue;
      }
      const a = allow.findIndex((e) => allows(e, f.rel, line));
      if (a >= 0) {
        used.add(a);
        row.allowed++;
        continue;
      }
      if (status === ParseStatus.Unknown) row.unknown++;
      else row.malformed++;
      failures.push({ file: f.rel, line, why: status === ParseStatus.Unknown ? `unknown ${programKey(lp.lastRecord?.program ?? '')} line` : 'malformed envelope' });
    }
    rows.push(row);
  }
  const total = rows.reduce(
    (t, r) => ({ lines: t.lines + r.lines, recognised: t.recognised + r.recognised, unknown: t.unknown + r.unknown, allowed: t.allowed + r.allowed, unclaimed: t.unclaimed + r.unclaimed, malformed: t.malformed + r.malformed }),
    { lines: 0, recognised: 0, unknown: 0, allowed: 0, unclaimed: 0, malformed: 0 },
  );
  const stale = allow.filter((_, i) => !used.has(i));
  const supported = total.lines - total.unclaimed;
  const pct = supported > 0 ? (((total.recognised + total.allowed) / supported) * 100).toFixed(2) : '100.00';
  if (values.json) {
    process.stdout.write(JSON.stringify({ type: 'conformance', corpus: dir, files: rows, total, supportedRecognisedPct: Number(pct), failures, staleAllowlist: stale, unclaimedPrograms: Object.fromEntries(unclaimedPrograms) }) + '\n');
  } else {
    const w = Math.min(90, Math.max(...rows.map((r) => r.file.length)));
    const head = `${'file'.padEnd(w)} ${'lines'.padStart(6)} ${'recog'.padStart(6)} ${'unkn'.padStart(5)} ${'allow'.padStart(5)} ${'other'.padStart(6)} ${'malf'.padStart(5)}`;
    const lines = [head, '-'.repeat(head.length)];
    for (const r of rows) {
      lines.push(`${r.file.padEnd(w)} ${String(r.lines).padStart(6)} ${String(r.recognised).padStart(6)} ${String(r.unknown).padStart(5)} ${String(r.allowed).padStart(5)} ${String(r.unclaimed).padStart(6)} ${String(r.malformed).padStart(5)}`);
    }
    lines.push('-'.repeat(head.length));
    lines.push(`${'total'.padEnd(w)} ${String(total.lines).padStart(6)} ${String(total.recognised).padStart(6)} ${String(total.unknown).padStart(5)} ${String(total.allowed).padStart(5)} ${String(total.unclaimed).padStart(6)} ${String(total.malformed).padStart(5)}`);
    lines.push('');
    lines.push(`supported-program lines recognised: ${pct}% (${total.recognised} recognised + ${total.allowed} allow-listed of ${supported}); 'other' = programs floodgate does not parse`);
    if (values['show-unclaimed'] || unclaimedPrograms.size > 0) {
      const top = [...unclaimedPrograms.entries()].sort((a, b) => b[1] - a[1]);
      lines.push(`programs not parsed: ${top.map(([p, n]) => `${p} (${n})`).join(', ')}`);
    }
    for (const s of stale) lines.push(`warning: allowlist entry matches no line: ${JSON.stringify(s.file ?? s.match)}`);
    if (failures.length > 0) {
      lines.push('');
      lines.push(`${failures.length} unrecognised line(s) of supported programs:`);
      for (const f of failures) lines.push(`  ${f.file}: [${f.why}] ${f.line.length > 300 ? f.line.slice(0, 300) + '…' : f.line}`);
    }
    process.stdout.write(lines.join('\n') + '\n');
  }
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`conformance: ${(err as Error).message}\n`);
    process.exitCode = 2;
  },
);
