/** The agent's root pino logger; modules take `moduleLogger(module)`. Secrets are redacted wherever they appear. */
import { destination, pino, type Logger as PinoLogger, type LoggerOptions } from 'pino';
import { LOG_REDACT_CENSOR, LOG_REDACT_PATHS } from '@fedge/proto';

/** The root logger's options; the redaction list is the coordinator's too (proto log-redact.ts). */
export const loggerOptions: LoggerOptions = {
  name: 'fedge-agent',
  // A simulated fleet (--simulate N) logs warnings only: thousands of agents logging every task would drown its own lines.
  level: process.env.FEDGE_LOG_LEVEL ?? (process.argv.some((a) => a === '--simulate' || a.startsWith('--simulate=')) ? 'warn' : 'info'),
  redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR },
};

/**
 * stdout unless it carries data: with `--format json` (fedge-agent serve's JSON lines) logs go to stderr, as they
 * do with FEDGE_LOG_FD=2. Decided here because the logger is created when this module loads, before the CLI parses.
 */
const jsonStdout = process.argv.some((a, i, all) => a === '--format=json' || (a === '--format' && all[i + 1] === 'json'));
const fd = Number(process.env.FEDGE_LOG_FD ?? (jsonStdout ? 2 : 1));
export const logger = fd === 1 ? pino(loggerOptions) : pino(loggerOptions, destination({ fd, sync: true }));

export type Logger = PinoLogger;
export const moduleLogger = (module: string): Logger => logger.child({ module });
