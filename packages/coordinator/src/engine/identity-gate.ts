/** The join and upload gate of the coordinator: identity or shared token, rate limits, the token's cap, signed updates. */
import { createHash } from 'node:crypto';
import { FedgeError, LimitError, RejectedUpdateError, signedUpdateRef, type JoinRequestMsg, type ResultHeaderMsg, type SubmitReplyMsg } from '@fedge/proto';
import type { AgentRegistry } from './agent-registry.js';
import { AuthError } from './join-credentials.js';
import { IdentityRegistry, type IdentityView, type JoinCredentials } from './identities.js';
import { DEFAULT_JOIN_LIMITS, RateLimiter, type JoinLimits } from './join-limits.js';
import type { UploadSink } from './upload.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('identity-gate');

export class IdentityGate {
  private readonly bySource: RateLimiter;
  private readonly byIdentity: RateLimiter;

  constructor(
    readonly identities: IdentityRegistry,
    private readonly registry: AgentRegistry,
    readonly limits: JoinLimits = DEFAULT_JOIN_LIMITS,
  ) {
    this.bySource = new RateLimiter(limits.sourceRate, limits.sourceBurst, 'source');
    this.byIdentity = new RateLimiter(limits.identityRate, limits.identityBurst, 'identity');
  }

  /** A challenge for an identity join; counts against the source's join rate like a join does. */
  challenge(name: string, source: string): { nonce: string; expiresUnixMs: number } {
    this.bySource.take(source);
    return this.identities.challenge(name);
  }

  /**
   * Admits a join: a signed one through the identity registry, otherwise with the shared token (refused for a name
   * that belongs to an enrolled device). `source` is the peer's address (gRPC) or the transport (MQTT).
   */
  async join(req: JoinRequestMsg & JoinCredentials, source: string): Promise<ReturnType<AgentRegistry['join']>> {
    this.bySource.take(source);
    if (IdentityRegistry.isIdentityJoin(req)) {
      const id = await this.identities.authenticate(req);
      // Counted once proven: joins forged under a device's name must not use up that device's allowance.
      this.byIdentity.take(id.name);
      return this.registry.join(req, id.fingerprint);
    }
    if (this.identities.isEnrolled(req.name) || this.identities.isRevoked(req.name))
      throw new AuthError(`name: "${req.name}" belongs to an enrolled device; it joins with its own key, not the shared token`);
    // Only a join that would add a record counts: reconnecting agents always get back in.
    // Without list(): it copies every record, and two copies of 10,000 records per join made a fleet's joins quadratic.
    const known = this.registry.knowsTokenAgent(req.agentId, req.name);
    if (!known && this.registry.tokenAgents() >= this.limits.maxTokenAgents)
      throw new LimitError('E_REGISTRY_FULL', `the shared join token has registered ${this.limits.maxTokenAgents} agents, its cap (fedge serve --max-token-agents); enroll devices (fedge agent enroll) or raise the cap`);
    return this.registry.join(req);
  }

  /** Revokes `name`, closes its open sessions at once and, with --mqtt-dynsec, deletes its broker login. */
  async revoke(name: string): Promise<IdentityView & { sessionsClosed: number; brokerLoginRemoved?: boolean }> {
    const v = await this.identities.revoke(name).catch(async (err: unknown) => {
      // Nothing left in fedge (a pending code revoked before, whose broker delete failed): the login may still be there.
      if ((err as FedgeError).code === 'E_NOT_FOUND') await this.identities.removeBrokerLogin(name).catch(() => undefined);
      throw err;
    });
    const sessionsClosed = this.registry.cutOff(name, 'identity revoked');
    // After the cut: fedge refuses the device already, whatever the broker still allows if this fails.
    const removed = await this.identities.removeBrokerLogin(name).catch((err: unknown) => {
      throw new FedgeError((err as FedgeError).code ?? 'E_CONNECTION', `"${name}" is revoked in fedge (${sessionsClosed} session(s) closed), but its broker login could not be deleted: ${(err as Error).message}; run fedge agent revoke ${name} again (the coordinator also removes it when it reconnects to the broker)`);
    });
    return { ...v, sessionsClosed, ...(removed ? { brokerLoginRemoved: true } : {}) };
  }

  /**
   * Enrolled agents' uploads must carry their signature over the header and the payload digest; the check runs when
   * the last byte is in and before anything is folded. Shared-token agents have no key: their uploads pass as before.
   */
  guardUpload(h: ResultHeaderMsg, agentName: string, sink: UploadSink): UploadSink {
    if (this.registry.identityOf(h.agentId) === undefined) return sink;
    const hash = createHash('sha256');
    const identities = this.identities;
    return {
      write(offset, data) {
        sink.write(offset, data);
        hash.update(data);
      },
      async commit(): Promise<SubmitReplyMsg> {
        const ref = signedUpdateRef(h, hash.digest('hex'));
        let refusal: FedgeError | undefined;
        if (identities.isRevoked(agentName)) refusal = new RejectedUpdateError('revoked', `identity "${agentName}" was revoked; its uploads are refused`);
        else if (!identities.verifyUpdate(agentName, ref, h.signature instanceof Uint8Array ? h.signature : undefined))
          refusal = new RejectedUpdateError('bad_signature', `signature: missing, or does not verify with "${agentName}"'s enrolled key over this header and payload`);
        if (refusal) {
          log.warn({ agentId: h.agentId, name: agentName, runId: h.runId, round: h.round, code: refusal.code, err: refusal.message }, 'update refused before folding');
          sink.abort(refusal.message);
          return { accepted: false, reason: (refusal as RejectedUpdateError).reason, message: refusal.message };
        }
        return sink.commit();
      },
      abort(reason) {
        sink.abort(reason);
      },
    };
  }
}
