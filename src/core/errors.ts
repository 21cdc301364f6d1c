/**
 * Every error floodgate reports to a user carries a stable code from this
 * list; docs/errors.md documents each, and test/errors.test.ts keeps the two
 * in sync.
 */
export const errorCodes = {
  FG_USAGE: 'The command line is wrong: unknown option, missing or invalid value.',
  FG_INPUT_UNREADABLE: 'An input file cannot be opened or read (missing, permission denied, a directory), or is not a log floodgate reads: compressed otherwise than with gzip (bzip2, xz, zstd), or an archive (tar, zip, 7-Zip).',
  FG_INPUT_CORRUPT: 'An input stream broke part-way (corrupt or truncated gzip); lines before the damage were processed.',
  FG_CONFIG_INVALID: 'The configuration file is not valid; the message names the key and what is expected.',
  FG_ACTION_INVALID_ACCOUNT: 'An account name was refused before any command ran: it is not a plausible mail account (the message says what is wrong).',
  FG_ACTION_INVALID_QUEUE_ID: 'A Postfix queue id was refused: queue ids are 5 to 24 letters and digits.',
  FG_ACTION_COMMAND_FAILED: 'An action command (zmprov, postqueue, postsuper) could not start, exited non-zero, timed out or printed too much.',
  FG_ACTION_SOAP_FAILED: 'The Zimbra admin SOAP API refused a request, returned a fault, or could not be reached.',
  FG_ACTION_REFUSED: 'An action was not carried out because the account is in a state floodgate must not change (e.g. unlocking a closed account).',
  FG_WEBHOOK_FAILED: 'A webhook could not be delivered: the receiver refused it (4xx) or every attempt failed; it stays in the outbox.',
  FG_STORE_FAILED: 'The embedded store (SQLite) cannot be opened or written, or was written by a newer floodgate.',
  FG_REDIS_UNAVAILABLE: 'Redis cannot be reached, did not answer in time, or refused the password; the command failed after a bounded wait.',
  FG_REDIS_FAILED: 'Redis refused a command (out of memory, read-only replica, wrong key type) or returned data floodgate cannot read.',
  FG_CLICKHOUSE_UNAVAILABLE: 'ClickHouse cannot be reached or refused the login; inserts stay buffered and are retried, reads fail.',
  FG_CLICKHOUSE_FAILED: 'ClickHouse refused a query or a row (the message carries its error code and text).',
  FG_API_UNAUTHORIZED: 'An API request came without a bearer token, or with one that is not configured.',
  FG_API_FORBIDDEN: 'An API token with the read role asked for an act route (lock, unlock).',
  FG_API_INVALID_REQUEST: 'An API request has an invalid parameter, query or body; the message names the field.',
  FG_API_NOT_FOUND: 'No such API route.',
  FG_WIRE_INVALID: 'A Kafka record is not in the format this floodgate writes (another producer, or a newer floodgate); it is dead-lettered and skipped.',
  FG_KAFKA_UNAVAILABLE: 'The Kafka brokers cannot be reached or refused a request; shipping and detection wait and retry.',
  FG_INTERNAL: 'A bug in floodgate; please report it with the command line and input that caused it.',
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class FloodgateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'FloodgateError';
  }
}
