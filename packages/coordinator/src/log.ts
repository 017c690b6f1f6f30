/** The one root pino logger; modules take `logger.child({ module })`. Secrets are redacted wherever they appear. */
import { pino, type Logger as PinoLogger } from 'pino';

const REDACT = [
  'joinToken', 'sessionToken', 'adminToken', 'token', 'password', 'secret',
  '*.joinToken', '*.sessionToken', '*.adminToken', '*.token', '*.password', '*.secret',
];

export const logger = pino({
  name: 'fedge',
  level: process.env.FEDGE_LOG_LEVEL ?? 'info',
  redact: { paths: REDACT, censor: '[redacted]' },
  base: { pid: process.pid },
});

export type Logger = PinoLogger;

export function moduleLogger(module: string): Logger {
  return logger.child({ module });
}
