/** writeFileDurable: whole content or none, the mode asked for even over a stale temp file. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFileDurable } from './durable-file.js';

describe('writeFileDurable', () => {
  it('writes text and bytes with the mode, replaces the old content and leaves no temp file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-durable-'));
    const file = path.join(dir, 'key.pem');
    writeFileDurable(file, 'first\n', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('first\n');
    // A temp file left by a crashed write, world-readable: the new file must still be 0600.
    writeFileSync(`${file}.tmp-${process.pid}`, 'stale', { mode: 0o644 });
    const bytes = new Uint8Array(Float32Array.from([1, 2, 3]).buffer);
    writeFileDurable(file, bytes, 0o600);
    expect(new Uint8Array(readFileSync(file))).toEqual(bytes);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['key.pem']);
  });
});
