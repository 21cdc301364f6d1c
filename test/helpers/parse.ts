/** Test helper: parse a text through envelope + parsers with a pinned year and zone. */
import type { Event } from '../../src/core/events.js';
import type { LogRecord } from '../../src/core/record.js';
import { ZoneClock } from '../../src/envelope/zone.js';
import { LineParser, envelopeContext } from '../../src/pipeline/line-parser.js';

export interface ParsedLine {
  line: string;
  offset: number;
  status: number;
  record: LogRecord | undefined;
  events: Event[];
}

export function parseText(text: string, opts: { file?: string; year?: number; zone?: string } = {}) {
  const lp = new LineParser();
  const ctx = envelopeContext({
    file: opts.file ?? 'fixture.log',
    zone: new ZoneClock(opts.zone ?? 'UTC'),
    year: opts.year ?? 2026,
    refTime: Date.UTC(2026, 11, 31),
  });
  const lines: ParsedLine[] = [];
  const events: Event[] = [];
  let offset = 0;
  for (const line of text.split('\n')) {
    const bytes = Buffer.byteLength(line) + 1;
    if (line.length > 0) {
      const out: Event[] = [];
      const status = lp.parseLine(line, offset, ctx, out);
      lines.push({ line, offset, status, record: lp.lastRecord, events: out });
      events.push(...out);
    }
    offset += bytes;
  }
  return { events, lines, stats: lp.stats };
}

/** Events of one line, for focused parser tests. */
export function eventsOf(line: string, opts?: { year?: number; zone?: string }): Event[] {
  return parseText(line, opts).events;
}
