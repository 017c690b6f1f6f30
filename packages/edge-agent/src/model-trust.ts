/** Which coordinator key the agent trusts for model signatures: --coordinator-key, else the first one it is sent (TOFU). */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FedgeError, parseSigningPublicKey, signingKeyFingerprint, verifyModelSignature, type TaskMsg } from '@fedge/proto';
import { moduleLogger } from './log.js';

const log = moduleLogger('trust');

/** A model whose signature does not verify with the trusted key; the agent neither trains on nor serves it. */
export class ModelSignatureError extends FedgeError {
  constructor(message: string) {
    super('E_SIGNATURE', message);
    this.name = 'ModelSignatureError';
  }
}

/** Reads `--coordinator-key FILE` (SPKI PEM, as `fedge model key` prints it). */
export function loadCoordinatorKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FedgeError('E_SIGNING_KEY', `--coordinator-key ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseSigningPublicKey(pem, `--coordinator-key ${file}`);
}

/**
 * The key every model must be signed with. Configured (`--coordinator-key`): that key only, whatever the coordinator
 * says. Otherwise trust on first use: the key of the first join reply is pinned for the life of the process, and a
 * join reply with another key is refused (a restarted coordinator keeps its key in its data dir, so it never changes
 * legitimately; if it does, restart the agent or give it --coordinator-key).
 */
export class ModelTrust {
  private pinned: { key: KeyObject; pem: string; fingerprint: string } | undefined;
  private warnedUnsigned = false;
  private warnedMismatch = false;

  constructor(private readonly configured?: KeyObject) {
    if (configured) log.info({ fingerprint: signingKeyFingerprint(configured), source: '--coordinator-key' }, `model signing key ${signingKeyFingerprint(configured)} (configured)`);
  }

  /** The trusted key's fingerprint, if the agent has one yet. */
  get fingerprint(): string | undefined {
    const k = this.key();
    return k ? signingKeyFingerprint(k) : undefined;
  }

  /** Checks the key a join reply announces (empty: a coordinator that does not sign); throws to refuse the session. */
  onJoin(announcedPem: string | undefined): void {
    const pem = announcedPem?.trim() ? announcedPem : undefined;
    if (this.configured) {
      if (pem && !this.warnedMismatch) {
        const fp = signingKeyFingerprint(parseSigningPublicKey(pem, 'the join reply\'s model signing key'));
        if (fp !== signingKeyFingerprint(this.configured)) {
          this.warnedMismatch = true;
          log.warn({ announced: fp, configured: signingKeyFingerprint(this.configured) }, `the coordinator announces model signing key ${fp}, not the --coordinator-key one; its models will be refused`);
        }
      }
      return;
    }
    if (!pem) {
      if (this.pinned) throw new ModelSignatureError(`the coordinator sent no model signing key, but this agent pinned ${this.pinned.fingerprint}; refusing the session`);
      if (!this.warnedUnsigned) log.warn('the coordinator sent no model signing key: models are checked by sha256 only (use --coordinator-key to require signatures)');
      this.warnedUnsigned = true;
      return;
    }
    if (this.pinned) {
      if (pem === this.pinned.pem) return;
      const key = parseSigningPublicKey(pem, 'the join reply\'s model signing key');
      const fp = signingKeyFingerprint(key);
      if (fp === this.pinned.fingerprint) return; // same key, other PEM formatting
      throw new ModelSignatureError(`the coordinator's model signing key changed from ${this.pinned.fingerprint} (pinned at first join) to ${fp}; refusing the session (restart the agent, or pass --coordinator-key, to trust a new key)`);
    }
    const key = parseSigningPublicKey(pem, 'the join reply\'s model signing key');
    this.pinned = { key, pem, fingerprint: signingKeyFingerprint(key) };
    log.info({ fingerprint: this.pinned.fingerprint, source: 'trust on first use' }, `pinned the coordinator's model signing key ${this.pinned.fingerprint}`);
  }

  /** Throws ModelSignatureError unless the task's model is signed by the trusted key (no key at all: no check). */
  check(task: TaskMsg): void {
    const key = this.key();
    if (!key) return;
    const ref = { runId: task.runId, version: task.modelVersion, sha256: task.modelSha256 };
    if (verifyModelSignature(key, ref, task.modelSignature)) return;
    const what = task.modelSignature && task.modelSignature.byteLength > 0 ? 'signature does not verify' : 'model is not signed';
    throw new ModelSignatureError(`refusing model of run ${task.runId} version ${task.modelVersion} (sha256 ${task.modelSha256.slice(0, 12)}): ${what} with coordinator key ${signingKeyFingerprint(key)}`);
  }

  private key(): KeyObject | undefined {
    return this.configured ?? this.pinned?.key;
  }
}
