/**
 * Routes a LogRecord to the parser that claims its program. Lookups are
 * cached per raw program string, so the hot path is one Map.get.
 */
import type { Parser } from '../../parsers/types.js';
import type { Event } from './events.js';
import type { LogRecord } from './record.js';

export const enum ParseStatus {
  /** A claimed program's line the parser recognised (with or without events). */
  Recognised = 0,
  /** A claimed program's line the parser did not know. */
  Unknown = 1,
  /** No parser claims this program. */
  Unclaimed = 2,
}

/**
 * Normalised program key: Postfix tags of any instance and service
 * (`postfix-out/smtpd`, `postfix/submission/smtpd`) become `postfix/<daemon>`;
 * a dovecot-style process context (`auth-worker(123)`) is cut off.
 */
export function programKey(program: string): string {
  // Zimbra's zmpostfix runs postfix-script by path with an empty instance name.
  if (program === '/postfix-script') return 'postfix/postfix-script';
  if (program.startsWith('postfix')) {
    const slash = program.lastIndexOf('/');
    if (slash > 0) return 'postfix/' + program.slice(slash + 1);
    return program;
  }
  const paren = program.indexOf('(');
  return paren > 0 ? program.slice(0, paren) : program;
}

export class Dispatcher {
  private readonly byKey = new Map<string, Parser>();
  private readonly cache = new Map<string, Parser | null>();
  /** Exceptions thrown by parsers (each one a bug: parsers must not throw). */
  parserErrors = 0;

  constructor(parsers: readonly Parser[]) {
    for (const p of parsers) {
      for (const prog of p.programs) {
        const other = this.byKey.get(prog);
        if (other) throw new Error(`program '${prog}' is claimed by both ${other.id} and ${p.id}`);
        this.byKey.set(prog, p);
      }
    }
  }

  parserFor(program: string): Parser | null {
    let p = this.cache.get(program);
    if (p === undefined) {
      p = this.byKey.get(programKey(program)) ?? null;
      // Bounded: hostile input could invent endless program names.
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(program, p);
    }
    return p;
  }

  /** Parse one record into `out`. A parser that throws is a bug, but never kills the stream. */
  dispatch(rec: LogRecord, out: Event[]): ParseStatus {
    const p = this.parserFor(rec.program);
    if (p === null) return ParseStatus.Unclaimed;
    const before = out.length;
    try {
      return p.parse(rec, out) ? ParseStatus.Recognised : ParseStatus.Unknown;
    } catch {
      this.parserErrors++;
      out.length = before;
      return ParseStatus.Unknown;
    }
  }
}
