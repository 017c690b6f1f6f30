/** The agent's side of a secure-aggregation round: SecAggClient's stages over the connection, alongside training. */
import {
  FedgeError,
  SECAGG_ENCODING,
  SecAggClient,
  UPDATE_ENCODING,
  bytesToFloat32,
  maskedToBytes,
  parseOrThrow,
  secaggTaskSchema,
  secaggToJson,
  type ResultHeaderMsg,
  type SecAggParams,
  type SecAggReplyMsg,
  type SecAggRoutedShares,
  type SecAggShareKeysRequest,
  type SecAggStage,
  type SecAggTask,
  type SecAggUnmaskRequest,
  type TaskMsg,
} from '@fedge/proto';
import type { CoordinatorConnection } from './transport/connection.js';
import type { Session } from './executor.js';
import { moduleLogger } from './log.js';

const log = moduleLogger('secagg');

/**
 * Beyond a stage's own deadline, how long a stage call waits for its reply: the coordinator answers when the stage
 * closes (at its deadline at the latest) and clocks of the two machines may differ by a little.
 */
const REPLY_MARGIN_MS = 15_000;

/** Simulations for tests and demos (fedge-agent --secagg-tamper). */
export interface SecAggSimulation {
  /** Corrupt the share ciphertext sent to the first neighbor (its MAC check fails; this agent is dropped). */
  tamperShare?: boolean | undefined;
}

/** The coordinator refused a stage message, or the round failed: the agent is out of this round. */
export class SecAggStageError extends FedgeError {
  constructor(readonly stage: SecAggStage, readonly reason: string, message: string) {
    super('E_SECAGG', `secure aggregation ${stage} stage refused (${reason}): ${message}`);
    this.name = 'SecAggStageError';
  }
}

/**
 * One task's protocol run. start() advertises and shares keys while the model trains (both stages close on the
 * coordinator when every agent answered); mask() turns the trained delta into the masked input to submit; unmask()
 * sends the shares the coordinator asks for once the masked inputs are in. Keys are fresh per task: a round that is
 * restarted (a new task) never reuses a mask.
 */
export class SecAggSession {
  private readonly client: SecAggClient;
  private keys: Promise<void> | undefined;

  private constructor(
    private readonly task: TaskMsg,
    private readonly t: SecAggTask,
    private readonly conn: CoordinatorConnection,
    private readonly s: Session,
    private readonly sim: SecAggSimulation,
  ) {
    const params: SecAggParams = { nAgents: t.nAgents, threshold: t.threshold, neighbors: t.neighbors, bits: t.bits, maxWeight: t.maxWeight, clipRange: t.clipRange, levels: t.levels };
    this.client = new SecAggClient(s.agentId, params);
  }

  /** The session of a secagg training task; undefined for every other task. */
  static of(task: TaskMsg, conn: CoordinatorConnection, s: Session, sim: SecAggSimulation = {}): SecAggSession | undefined {
    // Optional chaining: a task without a config (older coordinators' cancel/announce forms, test fakes) has no secagg.
    const json = task.kind === 'train' ? task.config?.secaggJson : undefined;
    if (!json) return undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch (err) {
      throw new FedgeError('E_VALIDATION', `task config secagg_json: not JSON (${(err as Error).message})`);
    }
    return new SecAggSession(task, parseOrThrow(secaggTaskSchema, raw, 'secagg_json'), conn, s, sim);
  }

  /** Advertise, then share keys, in the background; mask() waits for them. */
  start(): void {
    this.keys = (async () => {
      const req = await this.call('advertise', secaggToJson(this.client.advertise()), this.t.advertiseBy);
      const shares = this.client.shareKeys(JSON.parse(req.payloadJson) as SecAggShareKeysRequest);
      if (this.sim.tamperShare && shares.shares[0]) {
        // Simulated attacker: one bit of the first neighbor's box flipped after sealing, as a broker or a modified
        // client could; the recipient's nacl.box MAC check must catch it.
        const box = shares.shares[0];
        box.ciphertext = Uint8Array.from(box.ciphertext);
        box.ciphertext[box.ciphertext.length - 1]! ^= 1;
        log.warn({ round: this.task.round, to: box.to }, 'simulated secagg tamper: one share ciphertext corrupted');
      }
      const routed = await this.call('share', secaggToJson(shares), this.t.shareBy);
      const receipt = this.client.receiveShares(JSON.parse(routed.payloadJson) as SecAggRoutedShares);
      if (receipt.rejected.length) {
        log.warn({ round: this.task.round, rejected: receipt.rejected }, 'secagg: share boxes that did not open (tampered or forged); their senders are reported');
        // Now, not only with the masked input: a sender whose input arrived first would stay in the sum.
        await this.call('report', secaggToJson({ rejected: receipt.rejected }), this.t.maskedInputBy).catch((err: Error) => log.warn({ round: this.task.round, err: err.message }, 'secagg: rejection report not taken (the masked input repeats it)'));
      }
    })();
    // Awaited by mask(); a failure while training is reported there, not as an unhandled rejection.
    this.keys.catch(() => undefined);
  }

  /**
   * The masked input for the result the executor built: weight × delta and the weight, quantized and masked. The
   * header says so (encoding secagg-masked, no example count: the weight travels masked).
   */
  async mask(header: ResultHeaderMsg, payload: Uint8Array): Promise<{ header: ResultHeaderMsg; payload: Uint8Array }> {
    if (header.encoding !== UPDATE_ENCODING) throw new FedgeError('E_VALIDATION', `secure aggregation masks float32 deltas; the update came as ${header.encoding}`);
    if (!this.keys) this.start();
    await this.keys;
    const delta = bytesToFloat32(payload);
    // Mask generation on worker threads: the agent's event loop (keepalives, its inference server) keeps running.
    const m = await this.client.maskedInputAsync(delta, header.numExamples);
    const bytes = maskedToBytes(m.y, this.t.bits);
    return {
      header: { ...header, numExamples: 0, encoding: SECAGG_ENCODING, totalBytes: bytes.byteLength, secaggRejected: m.rejected },
      payload: bytes,
    };
  }

  /** After the masked input was accepted: waits for the survivors, then sends the shares asked of this agent. */
  async unmask(): Promise<void> {
    const asked = await this.call('survivors', '', this.t.maskedInputBy + this.t.unmaskSeconds * 1000);
    const shares = this.client.unmask(JSON.parse(asked.payloadJson) as SecAggUnmaskRequest);
    await this.call('unmask', secaggToJson(shares), Date.now());
    log.info({ round: this.task.round, bShares: shares.bShares.length, sShares: shares.sShares.length }, 'secagg: unmask shares sent');
  }

  private async call(stage: SecAggStage, payloadJson: string, stageBy: number): Promise<SecAggReplyMsg> {
    const { task, s } = this;
    const r = await this.conn.secagg(
      { agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, taskId: task.taskId, round: task.round, stage, payloadJson },
      Math.max(stageBy, Date.now()) + REPLY_MARGIN_MS,
    );
    if (!r.accepted) throw new SecAggStageError(stage, r.reason, r.message);
    return r;
  }
}
