/** Maps fedge errors to gRPC status codes so clients can tell auth, validation and missing-resource failures apart. */
import * as grpc from '@grpc/grpc-js';
import { FedgeError } from '@fedge/proto';

/** The trailer that carries a refusal's fedge error code (ERROR_CODES). */
export const FEDGE_CODE_TRAILER = 'fedge-code';

export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const code =
    err instanceof FedgeError
      ? ({ E_AUTH: grpc.status.UNAUTHENTICATED, E_VALIDATION: grpc.status.INVALID_ARGUMENT, E_NOT_FOUND: grpc.status.NOT_FOUND, E_REJECTED: grpc.status.FAILED_PRECONDITION, E_NAME_TAKEN: grpc.status.ALREADY_EXISTS, E_ENROLLED: grpc.status.ALREADY_EXISTS, E_REVOKED: grpc.status.PERMISSION_DENIED, E_RATE_LIMITED: grpc.status.RESOURCE_EXHAUSTED, E_REGISTRY_FULL: grpc.status.RESOURCE_EXHAUSTED, E_SIGNING_KEY: grpc.status.INVALID_ARGUMENT, E_STORAGE: grpc.status.RESOURCE_EXHAUSTED } as Record<string, grpc.status>)[err.code] ?? grpc.status.INTERNAL
      : grpc.status.INTERNAL;
  const details = err instanceof Error ? err.message : String(err);
  // The fedge code travels in the trailers, so a client reports E_STORAGE, E_REVOKED... and not only the gRPC status.
  const metadata = new grpc.Metadata();
  if (err instanceof FedgeError) metadata.set(FEDGE_CODE_TRAILER, err.code);
  return { code, details, message: details, name: 'Error', metadata };
}

/**
 * Ends a server-streaming call with `err`'s status. In grpc-js 1.14 `call.destroy(err)` sends no status at all, so
 * the client waited until its own deadline (forever without one); an 'error' event makes grpc-js send the status
 * and end the stream.
 */
export function refuse(call: grpc.ServerWritableStream<unknown, unknown>, err: unknown): void {
  if (call.cancelled || call.writableFinished) return;
  call.emit('error', toServiceError(err) as grpc.ServiceError);
}
