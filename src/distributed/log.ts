/**
 * Structured logs for the distributed commands (pino, JSON lines on stderr).
 * Secrets never reach a log: the redaction list covers every config field
 * that can hold one, and kafkajs' own logs go through the same logger.
 */
import { pino, type Logger } from 'pino';
import { logLevel, type logCreator } from 'kafkajs';

export type { Logger };

export function createLogger(name: string, level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: ['password', '*.password', 'token', '*.token', 'sasl', '*.sasl', 'authorization', '*.authorization'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** kafkajs → pino. kafkajs is chatty at info (every join/commit), so its info becomes debug. */
export function kafkaLogCreator(log: Logger): logCreator {
  return () =>
    ({ level, log: entry }) => {
      const { message, ...rest } = entry as { message: string } & Record<string, unknown>;
      const fields = { component: 'kafkajs', ...rest };
      if (level === logLevel.ERROR) log.error(fields, message);
      else if (level === logLevel.WARN) log.warn(fields, message);
      else log.debug(fields, message);
    };
}
