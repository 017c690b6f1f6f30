/** Error classes with stable codes shared by every fedge package. */
import type { RejectionReason } from './rejection-reasons.js';

/**
 * Every error code fedge raises, with what it means: the one list (a test checks that every `E_...` code in the
 * sources is here). Codes are stable across releases; scripts may match on them (`--format json` errors, exit paths).
 */
export const ERROR_CODES = {
  E_VALIDATION: 'a value from a user, a file or the network failed validation (the message names the field and the fix)',
  E_CONFIG: 'a server option cannot be used as given (e.g. an MQTT listen address)',
  E_CLI: 'the command line cannot be carried out as given',
  E_NOT_FOUND: 'a run, model version, agent or identity does not exist',
  E_REJECTED: 'an update or model payload was refused (the reason is one of REJECTION_REASONS)',
  E_DATA_STEP: "a run's statistics step could not set it up (no target, a model that does not fit the data...)",
  E_AUTH: 'a join token, session token, agent secret or signed challenge was missing or wrong',
  E_NAME_TAKEN: 'another live agent already uses this name',
  E_ENROLLED: 'the name is already enrolled with another key (revoke it first)',
  E_REVOKED: 'this device identity was revoked (fedge agent revoke)',
  E_RATE_LIMITED: 'too many joins from one source or identity; retry later',
  E_REGISTRY_FULL: "the registry's cap of agents for this credential is reached",
  E_SIGNATURE: 'a model or update signature does not verify',
  E_SIGNING_KEY: "the coordinator's model signing key cannot be read or is not ed25519",
  E_TLS: 'TLS options are incomplete or the TLS handshake failed',
  E_CONNECTION: 'the coordinator or broker cannot be reached, or the connection was lost',
  E_UNAVAILABLE: 'the coordinator (or the agents a command waits for) did not answer in time',
  E_COORDINATOR: 'the coordinator refused a request for a reason without a more specific code',
  E_INTERNAL: 'an unexpected failure inside fedge (a bug: please report it with the log)',
  E_BACKEND: 'the requested TensorFlow.js backend cannot be loaded (the message says why and how to install it)',
  E_STORAGE: 'the data directory cannot be written (no space, read-only, I/O error): new work is refused, runs stay resumable',
  E_DATA_DIR_LOCKED: 'another fedge serve process uses this data directory',
  E_STORE_OPEN: 'the store database cannot be opened',
  E_STORE_CORRUPT: 'the store database failed its integrity check',
  E_STORE_FOREIGN: 'the file is not a fedge store',
  E_STORE_SCHEMA_NEWER: 'the store was written by a newer fedge',
  E_STORE_MIGRATION: 'a store schema migration failed (nothing was changed)',
  E_STORE_CLOSED: 'the store was used after it was closed',
  E_MODEL_CORRUPT: 'a stored model file is missing or unreadable',
  E_MODEL_DIGEST: "a model's bytes do not match the sha256 that names it",
  E_SECAGG: 'a secure-aggregation step was called out of order or would break its privacy rule (e.g. reveal both masks of one agent)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Whether `code` is one of ERROR_CODES (for codes that arrive from a peer). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** Base class: `code` is stable across releases and safe to match on; `message` names the field and the fix. */
export class FedgeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FedgeError';
    this.code = code;
  }
}

/** A value from a user, a file or the network failed validation. */
export class ValidationError extends FedgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_VALIDATION', message, options);
    this.name = 'ValidationError';
  }
}

/** An update or model payload that cannot be accepted (shape, dtype, size, NaN, stale version...). */
export class RejectedUpdateError extends FedgeError {
  readonly reason: RejectionReason;
  constructor(reason: RejectionReason, message: string) {
    super('E_REJECTED', message);
    this.name = 'RejectedUpdateError';
    this.reason = reason;
  }
}

export class NotFoundError extends FedgeError {
  constructor(message: string) {
    super('E_NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

/** A run's statistics step could not set it up (no target, a model that does not fit the task...): the run fails with it. */
export class DataStepError extends FedgeError {
  constructor(message: string) {
    super('E_DATA_STEP', message);
    this.name = 'DataStepError';
  }
}

/** A per-device identity that was revoked (`fedge agent revoke`): its joins, tasks and uploads are refused. */
export class RevokedError extends FedgeError {
  constructor(message: string) {
    super('E_REVOKED', message);
    this.name = 'RevokedError';
  }
}

/** Too many joins from one source or identity (E_RATE_LIMITED), or the registry's cap for a credential (E_REGISTRY_FULL). */
export class LimitError extends FedgeError {
  constructor(code: 'E_RATE_LIMITED' | 'E_REGISTRY_FULL', message: string) {
    super(code, message);
    this.name = 'LimitError';
  }
}

/**
 * The coordinator's data directory cannot be written (out of space, read-only, I/O error). Nothing stored is lost:
 * new work is refused and active runs stay resumable until the coordinator restarts with a writable directory.
 */
export class StorageError extends FedgeError {
  /** The file or directory whose write failed, and the bytes free on its file system when that was known. */
  readonly path: string;
  readonly freeBytes: number | undefined;
  constructor(path: string, freeBytes: number | undefined, message: string, options?: { cause?: unknown }) {
    super('E_STORAGE', message, options);
    this.name = 'StorageError';
    this.path = path;
    this.freeBytes = freeBytes;
  }
}

/**
 * A secure-aggregation state machine refused a call: a stage out of order, or a request that would break privacy
 * (revealing both the self-mask and the masking key of one agent). Input from the network that fails validation is a
 * ValidationError instead; a round that cannot complete (too few survivors) is data, not an error.
 */
export class SecAggError extends FedgeError {
  /**
   * What went wrong, for transports mapping it to a refusal: a call before or after its stage (out_of_order), a
   * second message of one stage (duplicate), an agent the round no longer sums (dropped: no shares sent in time, or
   * reported for a box that did not open), one not in the round's roster (not_in_round), or the privacy rule (privacy).
   */
  readonly kind: 'out_of_order' | 'duplicate' | 'dropped' | 'not_in_round' | 'privacy';
  constructor(message: string, kind: SecAggError['kind'] = 'out_of_order') {
    super('E_SECAGG', message);
    this.name = 'SecAggError';
    this.kind = kind;
  }
}
