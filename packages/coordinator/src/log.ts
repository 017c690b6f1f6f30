/** The one root pino logger; modules take `logger.child({ module })`. Secrets are redacted wherever they appear. */
import { pino, destination, type Logger as PinoLogger, type LoggerOptions } from 'pino';
import { LOG_REDACT_CENSOR, LOG_REDACT_PATHS } from '@fedge/proto';

/** The root logger's options; the redaction list is the one the agent's logger uses too (proto log-redact.ts). */
export const loggerOptions: LoggerOptions = {
  name: 'fedge',
  level: process.env.FEDGE_LOG_LEVEL ?? 'info',
  redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR },
  base: { pid: process.pid },
};

/**
 * Logs go to stdout for `fedge serve` (what containers collect) and to stderr for commands whose stdout is
 * data (`--format json` must end with the JSON line): FEDGE_LOG_FD=2.
 */
export const logger = pino(loggerOptions, destination({ fd: Number(process.env.FEDGE_LOG_FD ?? 1), sync: true }));

export type Logger = PinoLogger;

export function moduleLogger(module: string): Logger {
  return logger.child({ module });
}
