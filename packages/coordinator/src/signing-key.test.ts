import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSigningPublicKey, verifyModelSignature } from '@fedge/proto';
import { ModelSigner, SIGNING_KEY_FILE, SIGNING_PUB_FILE, readPublicKeyPem } from './signing-key.js';

const ref = { runId: 'run-1', version: 2, sha256: '0f'.repeat(32) };

describe('ModelSigner', () => {
  it('creates the key on first start (PKCS8 PEM, mode 0600, public key beside it) and reloads the same key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-key-'));
    const a = ModelSigner.loadOrCreate(dir);
    expect(a.created).toBe(true);
    const keyFile = path.join(dir, SIGNING_KEY_FILE);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(readFileSync(path.join(dir, SIGNING_PUB_FILE), 'utf8')).toBe(a.signer.publicKeyPem);
    const b = ModelSigner.loadOrCreate(dir);
    expect(b.created).toBe(false);
    expect(b.signer.fingerprint).toBe(a.signer.fingerprint);
    // a signature made before the restart verifies with the reloaded key
    expect(verifyModelSignature(b.signer.publicKey, ref, a.signer.sign(ref))).toBe(true);
    expect(readPublicKeyPem(dir)).toBe(a.signer.publicKeyPem);
  });

  it('signatures verify with the published public key; the object never serialises the private key', () => {
    const s = ModelSigner.ephemeral();
    expect(verifyModelSignature(parseSigningPublicKey(s.publicKeyPem, 'pub'), ref, s.sign(ref))).toBe(true);
    expect(JSON.stringify({ s })).not.toMatch(/PRIVATE/);
    expect(JSON.stringify({ s })).toContain(s.fingerprint);
  });

  it('refuses a damaged key file with E_SIGNING_KEY, naming the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-key-'));
    ModelSigner.loadOrCreate(dir);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, SIGNING_KEY_FILE), 'garbage');
    expect(() => ModelSigner.loadOrCreate(dir)).toThrow(expect.objectContaining({ code: 'E_SIGNING_KEY', message: expect.stringContaining('model-signing.key') }));
  });
});
