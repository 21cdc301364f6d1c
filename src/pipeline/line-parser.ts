/**
 * LineParser: raw line → envelope → parser → events, with counters. One per
 * input stream (its envelope context holds that stream's year and zone).
 */
import { parsers as defaultParsers } from '../../parsers/index.js';
import type { Parser } from '../../parsers/types.js';
import { Dispatcher, ParseStatus, programKey } from '../core/dispatch.js';
import type { Event } from '../core/events.js';
import type { LogRecord } from '../core/record.js';
import { EnvelopeMemo, parseEnvelope, type EnvelopeContext, type EnvelopeFormat } from '../envelope/envelope.js';
import { YearInferrer } from '../envelope/year.js';
import { ZoneClock } from '../envelope/zone.js';
import { bump, emptyStats, type ParseStats } from './stats.js';

export interface StreamOptions {
  file: string;
  format?: EnvelopeFormat;
  zone?: ZoneClock;
  /** Reference time for RFC 3164 year inference (file mtime). */
  refTime?: number;
  year?: number;
  defaultHost?: string;
}

export function envelopeContext(opts: StreamOptions): EnvelopeContext {
  return {
    format: opts.format ?? 'auto',
    zone: opts.zone ?? new ZoneClock('UTC'),
    years: new YearInferrer(opts.refTime ?? Date.now(), opts.year),
    defaultHost: opts.defaultHost ?? 'localhost',
    file: opts.file,
    memo: new EnvelopeMemo(),
  };
}

export class LineParser {
  readonly stats: ParseStats;
  private readonly dispatcher: Dispatcher;
  /** Last record parsed (for evidence/debugging); undefined after a malformed line. */
  lastRecord: LogRecord | undefined;

  constructor(stats: ParseStats = emptyStats(), parsers: readonly Parser[] = defaultParsers) {
    this.stats = stats;
    this.dispatcher = new Dispatcher(parsers);
  }

  /** Parser exceptions caught so far (should stay 0; reported in summaries). */
  get parserErrors(): number {
    return this.dispatcher.parserErrors;
  }

  /**
   * Parse one line (without its newline) at `offset`, appending events to
   * `out`. Returns the status, or -1 for a malformed line.
   */
  parseLine(line: string, offset: number, ctx: EnvelopeContext, out: Event[]): ParseStatus | -1 {
    const rec = this.envelope(line, offset, ctx);
    if (rec === undefined) return -1;
    return this.dispatchRecord(rec, out);
  }

  /** Envelope step alone (counts the line, and malformed ones). */
  envelope(line: string, offset: number, ctx: EnvelopeContext): LogRecord | undefined {
    this.stats.lines++;
    const rec = parseEnvelope(line, offset, ctx);
    this.lastRecord = rec;
    if (rec === undefined) this.stats.malformed++;
    return rec;
  }

  /** Parser step alone, for a record from envelope(). */
  dispatchRecord(rec: LogRecord, out: Event[]): ParseStatus {
    const st = this.stats;
    const before = out.length;
    const status = this.dispatcher.dispatch(rec, out);
    if (status === ParseStatus.Unknown) {
      st.unknown++;
      bump(st.unknownByProgram, programKey(rec.program));
    } else if (status === ParseStatus.Unclaimed) {
      st.unclaimed++;
      bump(st.unclaimedByProgram, programKey(rec.program));
    }
    st.events += out.length - before;
    return status;
  }
}
