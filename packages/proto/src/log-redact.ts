/** The one list of what every fedge logger (coordinator, CLI, agent) censors: credentials, by field name. */

/** Field names that hold a credential wherever they appear in a log object. */
export const SECRET_LOG_KEYS = [
  'joinToken', 'sessionToken', 'adminToken', 'agentSecret', 'enrollCode', 'privateKey', 'authorization', 'token', 'password', 'secret', 'mqttPassword',
] as const;

/** pino `redact.paths`: each key at the top level and one level down (a pino wildcard matches one level). */
export const LOG_REDACT_PATHS: readonly string[] = SECRET_LOG_KEYS.flatMap((k) => [k, `*.${k}`]);

export const LOG_REDACT_CENSOR = '[redacted]';
