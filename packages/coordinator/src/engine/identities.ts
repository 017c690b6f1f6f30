/** Per-device identities: one-time enrollment codes, join challenges, signature checks, revocation; persisted in the store. */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import {
  CHALLENGE_TTL_MS,
  ENROLL_CODE,
  FedgeError,
  JOIN_CLOCK_SKEW_MS,
  LimitError,
  RevokedError,
  ValidationError,
  parseSigningPublicKey,
  publicKeyPem,
  signingKeyFingerprint,
  parseMqttIdentityPassword,
  mqttDevicePassword,
  verifyJoin,
  verifyMqttIdentity,
  verifyUpdate,
  type SignedUpdateRef,
} from '@fedge/proto';
import type { EnrollmentRecord, IdentityRecord, Store } from '../store/store.js';
import { AuthError } from './join-credentials.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('identities');

/** Enrollment codes live this long unless `fedge agent enroll --ttl` says otherwise; never longer than MAX. */
export const DEFAULT_ENROLL_TTL_MS = 24 * 3600_000;
export const MAX_ENROLL_TTL_MS = 30 * 24 * 3600_000;
/** Outstanding challenges at once: a flood of Challenge calls cannot grow memory without bound. */
const MAX_OPEN_CHALLENGES = 10_000;

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

/** The identity fields of a join request (schemas.ts joinRequestSchema). */
export interface JoinCredentials {
  name: string;
  agentId: string;
  enrollCode: string;
  publicKey: string;
  challengeNonce: string;
  challengeTimeUnixMs: number;
  signature: Buffer | undefined;
}

/** Broker logins per device (transport/mqtt/dynsec.ts): made when a code is issued, deleted when the device is revoked. */
export interface DeviceBrokerLogins {
  /** Creates (or replaces) device `name`'s broker login with this password. */
  issue(name: string, password: string): Promise<void>;
  /** Deletes it: the broker refuses its logins from now on and drops its connection. */
  remove(name: string): Promise<void>;
}

/** What `fedge agent list` shows of an identity. */
export type IdentityView = Omit<IdentityRecord, 'publicKey'> & { status: 'enrolled' | 'revoked' };

export class IdentityRegistry {
  private readonly identities = new Map<string, IdentityRecord>();
  /** Parsed public keys, so the hot path (one verify per upload) does not parse PEM each time. */
  private readonly keys = new Map<string, KeyObject>();
  private readonly enrollments = new Map<string, EnrollmentRecord>();
  private readonly challenges = new Map<string, { name: string; expires: number }>();
  private brokerLogins: DeviceBrokerLogins | undefined;

  constructor(private readonly store: Store) {}

  /** Loads the identities and pending enrollments a previous process persisted. */
  async restore(): Promise<number> {
    for (const r of await this.store.listIdentities()) this.identities.set(r.name, r);
    for (const e of await this.store.listEnrollments()) this.enrollments.set(e.codeSha256, e);
    return this.identities.size;
  }

  /**
   * A one-time code for `name`. Any earlier unused code for the name stops working. An enrolled, unrevoked name is
   * refused: re-keying a device is revoke, then enroll.
   */
  async enroll(name: string, ttlMs = DEFAULT_ENROLL_TTL_MS): Promise<{ name: string; code: string; expiresAt: string }> {
    if (!name || name.length > 128 || name.includes('\n')) throw new ValidationError('name: 1-128 characters, no newline');
    if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_ENROLL_TTL_MS) throw new ValidationError(`ttl: must be more than 0 and at most ${MAX_ENROLL_TTL_MS / 3600_000} h`);
    const current = this.identities.get(name);
    if (current && !current.revokedAt)
      throw new FedgeError('E_ENROLLED', `name: "${name}" is already enrolled (key ${current.fingerprint}); revoke it first (fedge agent revoke ${name}) to enroll a new key`);
    for (const [h, e] of this.enrollments) if (e.name === name) await this.dropEnrollment(h);
    const code = `fe1-${randomBytes(24).toString('base64url')}`;
    const now = Date.now();
    const e: EnrollmentRecord = { codeSha256: sha256(code), name, createdAt: new Date(now).toISOString(), expiresAt: new Date(now + ttlMs).toISOString() };
    await this.store.saveEnrollment(e);
    this.enrollments.set(e.codeSha256, e);
    // The device's broker password derives from the code (mqtt-device-login.ts): no second secret to hand over.
    if (this.brokerLogins)
      await this.brokerLogins.issue(name, mqttDevicePassword(name, code)).catch(async (err: unknown) => {
        await this.dropEnrollment(e.codeSha256); // a code whose device cannot reach the broker is no use
        throw err;
      });
    log.info({ name, expiresAt: e.expiresAt }, 'enrollment code issued');
    return { name, code, expiresAt: e.expiresAt };
  }

  /** A fresh nonce for `name`'s next join; used once, within CHALLENGE_TTL_MS. */
  challenge(name: string): { nonce: string; expiresUnixMs: number } {
    const now = Date.now();
    if (this.challenges.size >= MAX_OPEN_CHALLENGES) for (const [n, c] of this.challenges) if (c.expires <= now) this.challenges.delete(n);
    if (this.challenges.size >= MAX_OPEN_CHALLENGES) throw new LimitError('E_RATE_LIMITED', `challenge: ${MAX_OPEN_CHALLENGES} challenges are open; try again in a minute`);
    const nonce = randomBytes(24).toString('base64url');
    const expires = now + CHALLENGE_TTL_MS;
    this.challenges.set(nonce, { name, expires });
    return { nonce, expiresUnixMs: expires };
  }

  /** True when the join carries identity fields (otherwise it is a shared-token join). */
  static isIdentityJoin(c: JoinCredentials): boolean {
    return !!(c.publicKey || c.signature || c.challengeNonce || c.enrollCode);
  }

  /** An enrolled, unrevoked name: shared-token joins under it are refused (the token must not impersonate a device). */
  isEnrolled(name: string): boolean {
    const r = this.identities.get(name);
    return !!r && !r.revokedAt;
  }

  /**
   * Checks a signed join: the nonce was issued for this name and is used now (a replay finds it gone), the clock is
   * near ours, and the signature verifies with the enrolled key, or, with a valid enrollment code, with the key the
   * request carries, which is then enrolled. Returns the identity; throws AuthError / RevokedError naming why.
   */
  async authenticate(c: JoinCredentials): Promise<IdentityRecord> {
    const ch = c.challengeNonce ? this.challenges.get(c.challengeNonce) : undefined;
    if (ch) this.challenges.delete(c.challengeNonce);
    const now = Date.now();
    if (!ch || ch.expires < now) throw new AuthError('challenge_nonce: unknown, already used or expired; ask for a new challenge and sign it');
    if (ch.name !== c.name) throw new AuthError(`challenge_nonce: issued for "${ch.name}", not "${c.name}"`);
    if (Math.abs(now - c.challengeTimeUnixMs) > JOIN_CLOCK_SKEW_MS)
      throw new AuthError(`challenge_time_unix_ms: the agent's clock is ${Math.round((c.challengeTimeUnixMs - now) / 1000)} s off the coordinator's (at most ${JOIN_CLOCK_SKEW_MS / 1000} s); fix the device clock`);
    const key = parseSigningPublicKey(c.publicKey, 'public_key');
    const fingerprint = signingKeyFingerprint(key);
    const proof = { name: c.name, agentId: c.agentId, nonce: c.challengeNonce, timeMs: c.challengeTimeUnixMs, keyFingerprint: fingerprint };
    const current = this.identities.get(c.name);
    if (current?.revokedAt && !c.enrollCode) throw new RevokedError(`identity "${c.name}" was revoked at ${current.revokedAt}; enroll the device again (fedge agent enroll ${c.name})`);
    if (current && !current.revokedAt) {
      // A lost enrollment reply makes the agent send its code again with the same key: that is a normal join.
      if (current.fingerprint !== fingerprint) throw new AuthError(`public_key: "${c.name}" is enrolled with key ${current.fingerprint}, not ${fingerprint}`);
      if (!verifyJoin(this.keyOf(current), proof, c.signature)) throw new AuthError('signature: does not verify with the enrolled key');
      return this.touch(current);
    }
    if (!c.enrollCode) throw new AuthError(`name: "${c.name}" is not enrolled; enroll it (fedge agent enroll ${c.name}) and start the agent with --enroll-code`);
    if (!ENROLL_CODE.test(c.enrollCode)) throw new AuthError('enroll_code: not an enrollment code (fe1-...)');
    const h = sha256(c.enrollCode);
    const e = this.enrollments.get(h);
    if ((!e || e.name !== c.name) && current?.revokedAt) throw new RevokedError(`identity "${c.name}" was revoked at ${current.revokedAt}; enroll the device again (fedge agent enroll ${c.name})`);
    if (!e || e.name !== c.name) throw new AuthError(`enroll_code: unknown or already used for "${c.name}"; issue a new one with fedge agent enroll ${c.name}`);
    if (Date.parse(e.expiresAt) < now) {
      await this.dropEnrollment(h);
      throw new AuthError(`enroll_code: expired at ${e.expiresAt}; issue a new one with fedge agent enroll ${c.name}`);
    }
    // Proof of possession before the code is spent: a code intercepted without the key is worth nothing.
    if (!verifyJoin(key, proof, c.signature)) throw new AuthError('signature: does not verify with public_key');
    await this.dropEnrollment(h);
    const rec: IdentityRecord = { name: c.name, publicKey: publicKeyPem(key), fingerprint, enrolledAt: new Date(now).toISOString(), lastSeen: new Date(now).toISOString() };
    await this.store.saveIdentity(rec);
    this.identities.set(rec.name, rec);
    this.keys.set(rec.name, key);
    log.info({ name: rec.name, fingerprint }, 'agent enrolled');
    return rec;
  }

  /** Marks `name` revoked (persisted before it returns); the caller cuts its sessions. */
  async revoke(name: string): Promise<IdentityView> {
    const r = this.identities.get(name);
    let pending = false;
    for (const [h, e] of this.enrollments)
      if (e.name === name) {
        await this.dropEnrollment(h);
        pending = true;
      }
    if (!r) {
      if (pending) return { name, fingerprint: '', enrolledAt: '', status: 'revoked', revokedAt: new Date().toISOString() };
      throw new FedgeError('E_NOT_FOUND', `name: no enrolled identity "${name}"; see fedge agent list`);
    }
    if (!r.revokedAt) {
      r.revokedAt = new Date().toISOString();
      await this.store.saveIdentity(r);
      log.warn({ name, fingerprint: r.fingerprint }, 'identity revoked');
    }
    return view(r);
  }

  /**
   * Whether the embedded MQTT broker admits a client whose password is an identity credential (identity.ts): a
   * signature of an enrolled, unrevoked key over this client id and a recent time, or an unused, unexpired enrollment
   * code (checked, not spent: the join spends it). The join itself is still authenticated by its challenge.
   */
  admitMqtt(clientId: string, password: string): boolean {
    const c = parseMqttIdentityPassword(password);
    if (!c) return false;
    if (c.kind === 'enroll') {
      const e = this.enrollments.get(sha256(c.code));
      return !!e && e.name === c.name && Date.parse(e.expiresAt) >= Date.now();
    }
    const r = this.identities.get(c.name);
    if (!r || Math.abs(Date.now() - c.timeMs) > JOIN_CLOCK_SKEW_MS || !verifyMqttIdentity(this.keyOf(r), clientId, c)) return false;
    if (r.revokedAt) log.warn({ clientId, name: c.name }, `MQTT client refused: identity "${c.name}" was revoked at ${r.revokedAt}`);
    return !r.revokedAt;
  }

  /** With an external broker's dynamic security (fedge serve --mqtt-dynsec): enroll makes logins, revoke deletes them. */
  useBrokerLogins(logins: DeviceBrokerLogins): void {
    this.brokerLogins = logins;
  }

  /** Whether device `name` may hold a broker login: enrolled and unrevoked, or with an unused, unexpired code. */
  mayLogIn(name: string): boolean {
    const now = Date.now();
    return this.isEnrolled(name) || [...this.enrollments.values()].some((e) => e.name === name && Date.parse(e.expiresAt) >= now);
  }

  /** Names enrolled and not revoked. */
  enrolledNames(): string[] {
    return [...this.identities.values()].filter((r) => !r.revokedAt).map((r) => r.name);
  }

  /** Deletes `name`'s broker login, if logins are kept (after a revoke; idempotent). */
  async removeBrokerLogin(name: string): Promise<boolean> {
    if (!this.brokerLogins) return false;
    await this.brokerLogins.remove(name);
    return true;
  }

  isRevoked(name: string): boolean {
    return !!this.identities.get(name)?.revokedAt;
  }

  /**
   * Checks an update's signature with `name`'s key. False for a revoked identity, a missing or forged signature, or
   * one over other fields or another payload.
   */
  verifyUpdate(name: string, ref: SignedUpdateRef, signature: Uint8Array | undefined): boolean {
    const r = this.identities.get(name);
    if (!r || r.revokedAt) return false;
    return verifyUpdate(this.keyOf(r), ref, signature);
  }

  list(): IdentityView[] {
    return [...this.identities.values()].map(view).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Names with an unused, unexpired enrollment code (shown by `fedge agent list` as pending). */
  pending(): { name: string; expiresAt: string }[] {
    const now = Date.now();
    return [...this.enrollments.values()].filter((e) => Date.parse(e.expiresAt) >= now).map((e) => ({ name: e.name, expiresAt: e.expiresAt }));
  }

  private keyOf(r: IdentityRecord): KeyObject {
    let k = this.keys.get(r.name);
    if (!k) this.keys.set(r.name, (k = parseSigningPublicKey(r.publicKey, `identity "${r.name}"`)));
    return k;
  }

  private touch(r: IdentityRecord): IdentityRecord {
    r.lastSeen = new Date().toISOString();
    void this.store.saveIdentity(r).catch((err: unknown) => log.error({ err }, 'saving identity failed'));
    return r;
  }

  private async dropEnrollment(h: string): Promise<void> {
    this.enrollments.delete(h);
    await this.store.deleteEnrollment(h);
  }
}

function view(r: IdentityRecord): IdentityView {
  const { publicKey: _k, ...rest } = r;
  return { ...rest, status: r.revokedAt ? 'revoked' : 'enrolled' };
}
