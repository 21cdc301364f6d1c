/**
 * LogRecord: one log line with its envelope parsed. Everything downstream of
 * the envelope parsers works on these, and every record remembers where it
 * came from (file + byte offset) so a finding can always be traced back.
 */
export interface LogRecord {
  /** Epoch milliseconds, UTC. */
  ts: number;
  /** Syslog hostname, or the host configured for a Zimbra mailbox.log file. */
  host: string;
  /** Syslog tag without the pid, e.g. `postfix/submission/smtpd`, `amavis`, `zimbra-mailbox`. */
  program: string;
  /** Process id from the tag, or -1 when the line has none. */
  pid: number;
  /** The message after the tag. */
  message: string;
  /** Source file as given on the command line (`-` for stdin). */
  file: string;
  /** Byte offset of the first byte of this line in the (decompressed) source. */
  offset: number;
  /** Zimbra Java-log fields (mailbox.log / audit.log); absent for syslog lines. */
  zimbra?: ZimbraFields;
}

export interface ZimbraFields {
  level: string;
  /** Thread name, e.g. `ImapSSLServer-12` or `qtp123-45:https://host/service/soap/AuthRequest`. */
  thread: string;
  /** The `[name=...;oip=...;ua=...;]` context as raw text (parsed lazily by the parser). */
  context: string;
  /** Logger category, e.g. `security`, `imap`, `SoapEngine`. */
  category: string;
}

export interface Source {
  file: string;
  offset: number;
}
