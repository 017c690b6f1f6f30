/** The one root pino logger; modules take `logger.child({ module })`. Secrets are redacted wherever they appear. */
import { pino, destination, type Logger as PinoLogger } from 'pino';

const REDACT = [
  'joinToken', 'sessionToken', 'adminToken', 'token', 'password', 'secret',
  '*.joinToken', '*.sessionToken', '*.adminToken', '*.token', '*.password', '*.secret',
];

/**
 * Logs go to stdout for `fedge serve` (what containers collect) and to stderr for commands whose stdout is
 * data (`--format json` must end with the JSON line): FEDGE_LOG_FD=2.
 */
export const logger = pino(
  {
    name: 'fedge',
    level: process.env.FEDGE_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { pid: process.pid },
  },
  destination({ fd: Number(process.env.FEDGE_LOG_FD ?? 1), sync: true }),
);

export type Logger = PinoLogger;

export function moduleLogger(module: string): Logger {
  return logger.child({ module });
}
