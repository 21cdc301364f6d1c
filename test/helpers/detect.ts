/**
 * Test helper: run log text through envelope → parsers → correlator →
 * the given detectors, with a pinned year/zone, and collect findings.
 */
import type { Detector } from '../../detectors/types.js';
import type { Event } from '../../src/core/events.js';
import { Correlator } from '../../src/correlator/correlator.js';
import type { Message } from '../../src/correlator/message.js';
import type { DnsLookup } from '../../src/detect/dns.js';
import { DetectionEngine } from '../../src/detect/engine.js';
import { severityRank, type Finding } from '../../src/detect/finding.js';
import { SiteKnowledge, type SiteConfig } from '../../src/detect/site.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { LineParser, envelopeContext } from '../../src/pipeline/line-parser.js';

export interface DetectOptions {
  detectors: readonly Detector[];
  configs?: Record<string, unknown>;
  site?: Partial<SiteConfig>;
  dns?: DnsLookup;
  year?: number;
  /** Detection state to start from (a store snapshot, as `WindowStore.snapshot` writes it). */
  restore?: Record<string, unknown>;
  /** Let go of the messages still open at the end (default true): false shows what detection saw while they were. */
  flush?: boolean;
}

export function detectText(text: string | string[], opts: DetectOptions) {
  const findings: Finding[] = [];
  const messages: Message[] = [];
  const engine = new DetectionEngine({
    detectors: opts.detectors,
    configs: opts.configs,
    site: new SiteKnowledge(opts.site ?? {}),
    dns: opts.dns,
    onFinding: (f) => findings.push(f),
  });
  if (opts.restore !== undefined) engine.store.restore(opts.restore);
  const correlator = new Correlator(
    (m) => {
      messages.push(m);
      engine.onMessage(m);
    },
    { onSubmission: (m) => engine.onSubmission(m), onSettled: (m) => engine.onSettled(m) },
  );
  const lp = new LineParser();
  const ctx = envelopeContext({ file: 'scenario.log', zone: new ZoneClock('UTC'), year: opts.year ?? 2026, refTime: Date.UTC(2026, 11, 31) });
  const lines = Array.isArray(text) ? text : text.split('\n');
  const out: Event[] = [];
  let offset = 0;
  for (const line of lines) {
    if (line.length > 0) {
      out.length = 0;
      lp.parseLine(line, offset, ctx, out);
      for (const e of out) {
        correlator.push(e);
        engine.onEvent(e);
      }
    }
    offset += Buffer.byteLength(line) + 1;
  }
  if (opts.flush !== false) correlator.flush();
  return { findings, messages, engine, stats: lp.stats };
}

/** Syslog time prefix for second `s` after 2026-11-27 10:00:00 UTC (for generated scenario lines). */
export function at(s: number): string {
  const d = new Date(Date.UTC(2026, 10, 27, 10, 0, 0) + s * 1000);
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const day = String(d.getUTCDate()).padStart(2, ' ');
  const t = d.toISOString().slice(11, 19);
  return `${months[d.getUTCMonth()]} ${day} ${t}`;
}

/**
 * The re-alert rule of the volume detectors: two findings on one entity
 * closer than the cooldown are allowed only when the later one is more
 * severe (a growing flood is reported as it grows, a steady one once).
 */
export function expectCooldownRule(findings: readonly Finding[], cooldownMs = 30 * 60_000): void {
  const last = new Map<string, Finding>();
  for (const f of findings) {
    const prev = last.get(f.entity.id);
    if (prev && f.ts - prev.ts < cooldownMs && severityRank[f.severity] <= severityRank[prev.severity]) {
      throw new Error(`${f.detector} re-alerted on ${f.entity.id} after ${f.ts - prev.ts} ms without escalating (${prev.severity} → ${f.severity})`);
    }
    last.set(f.entity.id, f);
  }
}
