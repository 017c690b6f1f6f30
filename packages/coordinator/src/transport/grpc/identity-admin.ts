/** gRPC AdminService handlers for per-device identities: `fedge agent enroll`, the identities of `fedge agent list`, `fedge agent revoke`. */
import type * as grpc from '@grpc/grpc-js';
import type { EnrollAgentReplyMsg, EnrollAgentRequestMsg, IdentityReplyMsg, ListIdentitiesReplyMsg, RevokeAgentRequestMsg } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { DEFAULT_ENROLL_TTL_MS } from '../../engine/identities.js';
import { unary } from './admin-service.js';

export function identityAdminHandlers(coord: Coordinator, adminToken?: string): grpc.UntypedServiceImplementation {
  const ids = coord.gate.identities;
  return {
    EnrollAgent: unary<EnrollAgentRequestMsg, EnrollAgentReplyMsg>(adminToken, async (req) => {
      const ttl = Number(req.ttlSeconds ?? 0);
      const e = await ids.enroll(req.name, ttl > 0 ? ttl * 1000 : DEFAULT_ENROLL_TTL_MS);
      return { name: e.name, code: e.code, expiresUnixMs: Date.parse(e.expiresAt) };
    }),
    ListIdentities: unary<object, ListIdentitiesReplyMsg>(adminToken, () => ({
      identitiesJson: [...ids.list(), ...ids.pending().map((p) => ({ name: p.name, status: 'pending', expiresAt: p.expiresAt }))].map((v) => JSON.stringify(v)),
    })),
    RevokeAgent: unary<RevokeAgentRequestMsg, IdentityReplyMsg>(adminToken, async (req) => ({ identityJson: JSON.stringify(await coord.gate.revoke(req.name)) })),
  };
}
