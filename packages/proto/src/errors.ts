/** Error classes with stable codes shared by every fedge package. */
import type { RejectionReason } from './rejection-reasons.js';

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
