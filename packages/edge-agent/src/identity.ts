/** The agent's per-device identity: an ed25519 key pair in its state directory, signed join proofs and signed updates. */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  writeFileDurable,
  FedgeError,
  generateSigningKeyPair,
  mqttDevicePassword,
  mqttDeviceUsername,
  mqttEnrollPassword,
  mqttIdentityPassword,
  payloadSha256,
  publicKeyPem,
  signJoin,
  signUpdate,
  signedUpdateRef,
  signingKeyFingerprint,
  type ResultHeaderMsg,
} from '@fedge/proto';
import { moduleLogger } from './log.js';

const log = moduleLogger('identity');

export const AGENT_KEY_FILE = 'agent.key';
/** Written after the coordinator accepted the enrollment: from then on the agent joins with its key alone. */
export const ENROLLED_FILE = 'enrolled.json';
/** The broker login of a device on a dynamic-security Mosquitto (fedge serve --mqtt-dynsec), kept from the code. */
export const MQTT_LOGIN_FILE = 'mqtt-login.json';

/** A JSON object the agent kept in its state dir, or undefined when it is missing or unreadable (as if never written). */
function readKept(file: string): Record<string, unknown> | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Holds the private key: never log or serialise this object (toJSON shows the public half only). */
export class AgentIdentity {
  readonly publicKeyPem: string;
  readonly fingerprint: string;

  private constructor(private readonly privateKey: KeyObject, readonly stateDir: string, private enrolledAs: string | undefined) {
    const pub = createPublicKey(privateKey);
    this.publicKeyPem = publicKeyPem(pub);
    this.fingerprint = signingKeyFingerprint(pub);
  }

  /** The identity in `stateDir` (created 0700, key 0600, on first start), or undefined when it has none and `create` is false. */
  static load(stateDir: string, create: boolean): AgentIdentity | undefined {
    const dir = path.resolve(stateDir);
    const keyFile = path.join(dir, AGENT_KEY_FILE);
    if (!existsSync(keyFile)) {
      if (!create) return undefined;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { privateKey } = generateSigningKeyPair();
      writeFileDurable(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
      const id = new AgentIdentity(privateKey, dir, undefined);
      log.info({ stateDir: dir, fingerprint: id.fingerprint }, `created the agent key ${id.fingerprint}`);
      return id;
    }
    // A key others can read is no longer this device's alone: say so, and tighten it.
    if ((statSync(keyFile).mode & 0o077) !== 0) {
      log.warn({ keyFile }, 'agent key was readable by others; set to mode 0600');
      chmodSync(keyFile, 0o600);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(readFileSync(keyFile));
    } catch (err) {
      throw new FedgeError('E_SIGNING_KEY', `${keyFile} is not a readable PEM private key (${(err as Error).message.split('\n')[0]}); move it away and enroll the device again`, { cause: err });
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new FedgeError('E_SIGNING_KEY', `${keyFile} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; agent keys are ed25519`);
    const enrolled = readKept(path.join(dir, ENROLLED_FILE));
    return new AgentIdentity(privateKey, dir, typeof enrolled?.name === 'string' ? enrolled.name : undefined);
  }

  /** The name the coordinator enrolled this key under, if it did. */
  get enrolledName(): string | undefined {
    return this.enrolledAs;
  }

  markEnrolled(name: string): void {
    if (this.enrolledAs === name) return;
    this.enrolledAs = name;
    writeFileDurable(path.join(this.stateDir, ENROLLED_FILE), `${JSON.stringify({ name, fingerprint: this.fingerprint, enrolledAt: new Date().toISOString() })}\n`, 0o600);
    log.info({ name, fingerprint: this.fingerprint }, 'enrolled with the coordinator');
  }

  /**
   * The MQTT password for a broker that wants the join token from others: before enrollment the code (checked, not
   * spent, by the broker), afterwards a signature over this connection's client id and the time.
   */
  mqttPassword(clientId: string, name: string, enrollCode: string | undefined): string {
    if (this.enrolledAs !== name && enrollCode) return mqttEnrollPassword(name, enrollCode);
    return mqttIdentityPassword(this.privateKey, clientId, name);
  }

  /**
   * The broker login for a Mosquitto whose dynamic security plugin holds one per device (`--mqtt-dynsec`): with the
   * enrollment code, derived from it and kept in the state dir (0600) for later starts, which have no code; without
   * it, the kept one. Undefined when neither `dynsec` is asked for nor a login is kept for `name`.
   */
  brokerLogin(name: string, enrollCode: string | undefined, dynsec: boolean): { username: string; password: string } | undefined {
    const file = path.join(this.stateDir, MQTT_LOGIN_FILE);
    const username = mqttDeviceUsername(name);
    if (dynsec && enrollCode) {
      const login = { username, password: mqttDevicePassword(name, enrollCode) };
      writeFileDurable(file, `${JSON.stringify(login)}\n`, 0o600);
      return login;
    }
    const kept = readKept(file);
    if (kept && kept.username === username && typeof kept.password === 'string') return { username, password: kept.password };
    if (dynsec) throw new FedgeError('E_CLI', `--mqtt-dynsec: no broker login for "${name}" in ${this.stateDir} and no --enroll-code to derive it from; enroll the device again (fedge agent revoke ${name}; fedge agent enroll ${name}) and start it with the new code`);
    return undefined;
  }

  /** Signs a join answering `nonce` now (identity.ts joinSigningMessage). */
  proveJoin(name: string, agentId: string, nonce: string): { timeMs: number; signature: Buffer } {
    const timeMs = Date.now();
    return { timeMs, signature: signJoin(this.privateKey, { name, agentId, nonce, timeMs, keyFingerprint: this.fingerprint }) };
  }

  /** The header with its signature over the header's fields and the payload's sha256 (identity.ts updateSigningMessage). */
  signResult(header: ResultHeaderMsg, payload: Uint8Array): ResultHeaderMsg {
    return { ...header, signature: signUpdate(this.privateKey, signedUpdateRef(header, payloadSha256(payload))) };
  }

  toJSON(): { fingerprint: string; stateDir: string } {
    return { fingerprint: this.fingerprint, stateDir: this.stateDir };
  }
}

