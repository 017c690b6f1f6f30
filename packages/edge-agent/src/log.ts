/** The agent's root pino logger; modules take `logger.child({ module })`. Tokens are redacted. */
import { pino, type Logger as PinoLogger } from 'pino';

export const logger = pino({
  name: 'fedge-agent',
  level: process.env.FEDGE_LOG_LEVEL ?? 'info',
  redact: { paths: ['joinToken', 'sessionToken', '*.joinToken', '*.sessionToken', 'token'], censor: '[redacted]' },
});

export type Logger = PinoLogger;
export const moduleLogger = (module: string): Logger => logger.child({ module });
