/** The coordinator's ed25519 model signing key: loaded from (or created in) DATA_DIR/keys, or ephemeral in memory. */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  writeFileDurable,
  FedgeError,
  generateSigningKeyPair,
  publicKeyPem,
  signModel,
  signingKeyFingerprint,
  type SignedModelRef,
} from '@fedge/proto';

export const SIGNING_KEY_FILE = 'keys/model-signing.key';
export const SIGNING_PUB_FILE = 'keys/model-signing.pub';

/** Signs model refs for tasks and the registry. Holds the private key; never log or serialise this object. */
export class ModelSigner {
  readonly publicKeyPem: string;
  /** sha256 of the raw public key, first 16 hex: what agents log when they pin it. */
  readonly fingerprint: string;
  /** ed25519 is deterministic: a ref always gets the same signature, so each is computed once. */
  private readonly cache = new Map<string, Buffer>();

  private constructor(private readonly privateKey: KeyObject, readonly publicKey: KeyObject, readonly source: string) {
    this.publicKeyPem = publicKeyPem(publicKey);
    this.fingerprint = signingKeyFingerprint(publicKey);
  }

  /** A key that lives as long as the process (`--in-memory`, `fedge demo`, tests). */
  static ephemeral(): ModelSigner {
    const { privateKey, publicKey } = generateSigningKeyPair();
    return new ModelSigner(privateKey, publicKey, 'ephemeral');
  }

  /**
   * DATA_DIR/keys/model-signing.key (PKCS8 PEM, mode 0600), created on first start. The same key after every restart
   * keeps the signatures agents already pinned valid. The public key is (re)written next to it for operators.
   */
  static loadOrCreate(dataDir: string): { signer: ModelSigner; created: boolean } {
    const keyFile = path.resolve(dataDir, SIGNING_KEY_FILE);
    const pubFile = path.resolve(dataDir, SIGNING_PUB_FILE);
    let created = false;
    let privateKey: KeyObject;
    if (existsSync(keyFile)) {
      try {
        privateKey = createPrivateKey(readFileSync(keyFile));
      } catch (err) {
        // The message names the file only: never echo key material.
        throw new FedgeError('E_SIGNING_KEY', `${keyFile} is not a readable PEM private key (${(err as Error).message.split('\n')[0]}); restore it from a backup, or move it away to create a new key (agents pinning the old one must then be given the new one)`, { cause: err });
      }
      if (privateKey.asymmetricKeyType !== 'ed25519') throw new FedgeError('E_SIGNING_KEY', `${keyFile} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; the model signing key must be ed25519`);
    } else {
      mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
      privateKey = generateSigningKeyPair().privateKey;
      writeFileDurable(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
      created = true;
    }
    const publicKey = createPublicKey(privateKey);
    const pem = publicKeyPem(publicKey);
    if (!existsSync(pubFile) || readFileSync(pubFile, 'utf8') !== pem) writeFileDurable(pubFile, pem, 0o644);
    return { signer: new ModelSigner(privateKey, publicKey, keyFile), created };
  }

  sign(ref: SignedModelRef): Buffer {
    const k = `${ref.runId}\n${ref.version}\n${ref.sha256}`;
    let sig = this.cache.get(k);
    if (!sig) {
      sig = signModel(this.privateKey, ref);
      this.cache.set(k, sig);
    }
    return sig;
  }

  /** What a logger or JSON.stringify would see: the public half only. */
  toJSON(): { fingerprint: string; source: string } {
    return { fingerprint: this.fingerprint, source: this.source };
  }
}

/** Reads the public key PEM of a data dir (for `fedge model key`), from model-signing.pub or derived from the key. */
export function readPublicKeyPem(dataDir: string): string {
  const pubFile = path.resolve(dataDir, SIGNING_PUB_FILE);
  if (existsSync(pubFile)) return readFileSync(pubFile, 'utf8');
  const keyFile = path.resolve(dataDir, SIGNING_KEY_FILE);
  if (!existsSync(keyFile)) throw new FedgeError('E_NOT_FOUND', `no model signing key in ${path.resolve(dataDir)} (expected ${SIGNING_KEY_FILE}); fedge serve --data-dir ${dataDir} creates it on first start`);
  return publicKeyPem(createPublicKey(createPrivateKey(readFileSync(keyFile))));
}

