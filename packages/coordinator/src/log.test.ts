/** The coordinator's root logger censors every credential in proto's one list (the agent's uses the same), at the top level and one level down. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SECRET_LOG_KEYS } from '@fedge/proto';
import { loggerOptions } from './log.js';

describe('coordinator logger redaction', () => {
  it('censors each secret key, top level and nested', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => (lines.push(chunk.toString()), cb()) });
    const log = pino({ ...loggerOptions, level: 'info' }, sink);
    for (const k of SECRET_LOG_KEYS) log.info({ [k]: 'hunter2-top', req: { [k]: 'hunter2-nested' } }, k);
    expect(lines).toHaveLength(SECRET_LOG_KEYS.length);
    for (const l of lines) expect(l).not.toMatch(/hunter2/);
    expect(lines.join('')).toMatch(/\[redacted\]/);
  });
});
