/**
 * The parse pipeline over files: read → envelope → parsers → (correlator).
 * `floodgate parse`, the conformance command and the benchmark all run
 * through this one function, so what is benchmarked is what users run.
 */
import { stat } from 'node:fs/promises';
import type { Event } from '../core/events.js';
import { Correlator, type CorrelatorOptions } from '../correlator/correlator.js';
import type { Message } from '../correlator/message.js';
import type { EnvelopeFormat } from '../envelope/envelope.js';
import type { ZoneClock } from '../envelope/zone.js';
import { InputError, openInput, readLines } from '../input/line-reader.js';
import { LineParser, envelopeContext } from './line-parser.js';
import { emptyStats, type ParseStats } from './stats.js';

export interface ParseFilesOptions {
  format?: EnvelopeFormat;
  zone: ZoneClock;
  year?: number;
  defaultHost?: string;
  maxLineBytes?: number;
  /** Correlate into messages (delivered to onMessage). */
  correlate?: boolean;
  correlator?: CorrelatorOptions;
  onEvent?: (e: Event) => void;
  onMessage?: (m: Message) => void;
  /** Called per line with its parse status (conformance uses it). */
  onLine?: (file: string, line: string, status: number, program: string | undefined) => void;
  onProgress?: (file: string, bytes: number, total: number) => void;
  /** Reported per input that failed; processing goes on with the next one. */
  onInputError?: (file: string, err: InputError) => void;
}

export interface ParseFilesResult {
  stats: ParseStats;
  inputErrors: number;
  bytes: number;
  correlator?: Correlator;
}

const OUT_RESET = 256;

export async function parseFiles(files: readonly string[], opts: ParseFilesOptions): Promise<ParseFilesResult> {
  const stats = emptyStats();
  const lp = new LineParser(stats);
  const onMessage = opts.onMessage;
  const correlator = opts.correlate
    ? new Correlator((m) => {
        stats.messages++;
        onMessage?.(m);
      }, opts.correlator)
    : undefined;
  const onEvent = opts.onEvent;
  const onLine = opts.onLine;
  const out: Event[] = [];
  let inputErrors = 0;
  let bytes = 0;

  for (const file of files) {
    let refTime = Date.now();
    let total = 0;
    if (file !== '-') {
      try {
        const st = await stat(file);
        refTime = st.mtimeMs;
        total = st.size;
      } catch {
        // openInput reports it with a proper message
      }
    }
    const ctx = envelopeContext({ file, format: opts.format ?? 'auto', zone: opts.zone, refTime, year: opts.year, defaultHost: opts.defaultHost });
    try {
      const stream = await openInput(file);
      const rs = await readLines(
        stream,
        (line, offset) => {
          // `out` is emptied only now and then: setting an array's length is a
          // runtime call, and most lines add one event.
          if (out.length >= OUT_RESET) out.length = 0;
          const first = out.length;
          const status = lp.parseLine(line, offset, ctx, out);
          if (onLine) onLine(file, line, status, lp.lastRecord?.program);
          for (let i = first; i < out.length; i++) {
            const e = out[i]!;
            if (correlator) correlator.push(e);
            if (onEvent) onEvent(e);
          }
        },
        {
          maxLineBytes: opts.maxLineBytes,
          onProgress: opts.onProgress ? (b) => opts.onProgress!(file, b, total) : undefined,
        },
      );
      stats.oversized += rs.oversized;
      bytes += rs.bytes;
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      inputErrors++;
      if (err.stats) {
        stats.oversized += err.stats.oversized;
        bytes += err.stats.bytes;
      }
      opts.onInputError?.(file, err);
    }
  }
  correlator?.flush();
  stats.parserErrors = lp.parserErrors;
  return { stats, inputErrors, bytes, correlator };
}
