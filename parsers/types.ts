/**
 * Parser contract. A parser is a pure function from one LogRecord to zero or
 * more events: no I/O, no clock, no state between calls. It claims the
 * program names it understands so the registry can dispatch with one map
 * lookup instead of asking every parser.
 */
import type { Event } from '../src/core/events.js';
import type { LogRecord } from '../src/core/record.js';

export interface Parser {
  /** Folder name under parsers/, e.g. `postfix-smtpd`. */
  readonly id: string;
  /**
   * Program keys this parser claims. Postfix daemons are claimed as
   * `postfix/<daemon>` and match every instance and service name
   * (`postfix-out/smtpd`, `postfix/submission/smtpd`, ...); others are
   * matched exactly (`amavis`, `policyd-spf`, `zimbra-mailbox`, ...).
   */
  readonly programs: readonly string[];
  /**
   * Append this record's events to `out`. Returns true when the line was
   * recognised (even if it yields no event, e.g. a statistics line), false
   * when it is a well-formed line of a claimed program that the parser does
   * not know: those are counted as `unknown`. Must never throw.
   */
  parse(rec: LogRecord, out: Event[]): boolean;
}
