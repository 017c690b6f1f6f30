/** The agent's root pino logger; modules take `moduleLogger(module)`. Secrets are redacted wherever they appear. */
import { pino, type Logger as PinoLogger, type LoggerOptions } from 'pino';
import { LOG_REDACT_CENSOR, LOG_REDACT_PATHS } from '@fedge/proto';

/** The root logger's options; the redaction list is the coordinator's too (proto log-redact.ts). */
export const loggerOptions: LoggerOptions = {
  name: 'fedge-agent',
  level: process.env.FEDGE_LOG_LEVEL ?? 'info',
  redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR },
};

export const logger = pino(loggerOptions);

export type Logger = PinoLogger;
export const moduleLogger = (module: string): Logger => logger.child({ module });
