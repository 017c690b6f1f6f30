/** What a join presents besides its name: the errors refusing it, its data profile, and the secret comparisons. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { FedgeError, dataProfileSchema, parseJsonField, type DataProfile } from '@fedge/proto';

export class AuthError extends FedgeError {
  constructor(message: string) {
    super('E_AUTH', message);
    this.name = 'AuthError';
  }
}

export class NameTakenError extends FedgeError {
  constructor(message: string) {
    super('E_NAME_TAKEN', message);
    this.name = 'NameTakenError';
  }
}

/** An agent's data profile from its join request; a malformed one refuses the join, naming the field. */
export function parseProfile(json: string | undefined): DataProfile | undefined {
  return json ? parseJsonField(dataProfileSchema, json, 'data_profile_json') : undefined;
}

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
