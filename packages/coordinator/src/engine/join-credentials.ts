/** What a join presents besides its name: the errors refusing it, its data profile, and the secret comparisons. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { FedgeError, ValidationError, dataProfileSchema, formatZodError, type DataProfile } from '@fedge/proto';

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
  if (!json) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ValidationError(`data_profile_json: not valid JSON (${(err as Error).message})`);
  }
  const r = dataProfileSchema.safeParse(raw);
  if (!r.success) throw new ValidationError(`data_profile_json: ${formatZodError(r.error)}`);
  return r.data;
}

export const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
