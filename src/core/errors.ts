/**
 * Every error floodgate reports to a user carries a stable code from this
 * list; docs/errors.md documents each, and test/errors.test.ts keeps the two
 * in sync.
 */
export const errorCodes = {
  FG_USAGE: 'The command line is wrong: unknown option, missing or invalid value.',
  FG_INPUT_UNREADABLE: 'An input file cannot be opened or read (missing, permission denied, a directory).',
  FG_INPUT_CORRUPT: 'An input stream broke part-way (corrupt or truncated gzip); lines before the damage were processed.',
  FG_CONFIG_INVALID: 'The configuration file is not valid; the message names the key and what is expected.',
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
