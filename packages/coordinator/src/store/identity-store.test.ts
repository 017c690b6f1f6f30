import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite-store.js';

describe('SqliteStore identities and enrollments', () => {
  it('keep identities (updated in place) and pending codes across a reopen; a deleted code is gone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-idstore-'));
    let s = SqliteStore.open(dir);
    const id = { name: 'cam-1', publicKey: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n', fingerprint: '0123456789abcdef', enrolledAt: '2026-01-01T00:00:00.000Z' };
    await s.saveIdentity(id);
    await s.saveIdentity({ ...id, lastSeen: '2026-01-02T00:00:00.000Z', revokedAt: '2026-01-03T00:00:00.000Z' });
    await s.saveEnrollment({ codeSha256: 'a'.repeat(64), name: 'cam-2', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-02T00:00:00.000Z' });
    await s.saveEnrollment({ codeSha256: 'b'.repeat(64), name: 'cam-3', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-02T00:00:00.000Z' });
    await s.deleteEnrollment('b'.repeat(64));
    s.close();
    s = SqliteStore.open(dir);
    expect(await s.listIdentities()).toEqual([{ ...id, lastSeen: '2026-01-02T00:00:00.000Z', revokedAt: '2026-01-03T00:00:00.000Z' }]);
    expect((await s.listEnrollments()).map((e) => e.name)).toEqual(['cam-2']);
    expect(s.migrations().map((m) => m.name)).toContain('identities, enrollments');
    s.close();
  });
});
