/** One result upload over MQTT (submit, chunk, end): admission of its header, writes paced by acks, its one reply. */
import { AckSchedule, RejectedUpdateError, parseOrThrow, resultHeaderSchema, type MqttEnvelope, type SubmitReplyMsg } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import type { UploadSink } from '../../engine/upload.js';
import { moduleLogger } from '../../log.js';

const log = moduleLogger('mqtt-agent');

export interface Upload {
  sink?: UploadSink;
  acks?: AckSchedule;
  received: number;
  replied: boolean;
  idle?: NodeJS.Timeout;
  chunk?: (offset: number | undefined, body: Uint8Array) => void;
  end?: () => void;
}

/** What an upload needs of its MQTT client's peer. */
export interface UploadPeer {
  clientId: string;
  agentId?: string;
  uploads: Map<string, Upload>;
}

/** The bridge's pieces an upload uses. */
export interface UploadContext<P extends UploadPeer> {
  coord: Pick<Coordinator, 'beginUpload' | 'recordMalformed'>;
  reply: (peer: P, env: MqttEnvelope) => void;
  /** Throws E_AUTH unless this client joined as `agentId`. */
  boundAgent: (peer: P, agentId: string) => void;
  /** An upload that sends nothing for this long (once admitted) is rejected as truncated. */
  idleMs: number;
}

/** Stops the upload's timer; with `abortReason`, drops what it staged unless it was already answered. */
export function finishUpload(u: Upload, abortReason?: string): void {
  clearTimeout(u.idle);
  if (!u.replied && abortReason) u.sink?.abort(abortReason);
  u.replied = true;
}

/** Starts upload `id` from its submit envelope; its chunk and end frames go to its Upload, kept in peer.uploads until answered. */
export function receiveUpload<P extends UploadPeer>(peer: P, id: string, env: MqttEnvelope, ctx: UploadContext<P>): void {
  const { coord, reply, boundAgent, idleMs } = ctx;
  const u: Upload = { received: 0, replied: false };
  peer.uploads.set(id, u);
  const done = (r: SubmitReplyMsg): void => {
    if (u.replied) return;
    finishUpload(u);
    peer.uploads.delete(id);
    if (!r.accepted) log.warn({ clientId: peer.clientId, agentId: peer.agentId, reason: r.reason, message: r.message }, 'result rejected');
    reply(peer, { t: 'reply', id, msg: r });
  };
  const rejectWith = (err: unknown): void => {
    if (u.replied) return;
    u.sink?.abort(err instanceof Error ? err.message : String(err));
    const code = (err as { code?: string }).code;
    if (err instanceof RejectedUpdateError) done({ accepted: false, reason: err.reason, message: err.message });
    else if (code === 'E_AUTH') done({ accepted: false, reason: 'unknown_agent', message: (err as Error).message });
    else if (code === 'E_VALIDATION') done({ accepted: false, reason: 'malformed', message: (err as Error).message });
    else done({ accepted: false, reason: 'internal', message: (err as Error).message });
  };
  const armIdle = (): void => {
    clearTimeout(u.idle);
    u.idle = setTimeout(() => rejectWith(new RejectedUpdateError('truncated', `upload stalled: nothing for ${idleMs / 1000} s`)), idleMs);
  };
  u.chunk = (offset, body) => {
    armIdle();
    try {
      if (offset === undefined) throw new RejectedUpdateError('malformed', 'chunk.offset is required');
      if (!u.sink) throw new RejectedUpdateError('malformed', 'chunk before the upload was accepted');
      u.sink.write(offset, body);
      u.received += body.byteLength;
      if (u.acks!.due(u.received)) reply(peer, { t: 'ack', id, offset: u.received });
    } catch (err) {
      rejectWith(err);
    }
  };
  u.end = () => {
    clearTimeout(u.idle);
    if (!u.sink) return rejectWith(new RejectedUpdateError('truncated', 'the upload ended before its header was accepted'));
    u.sink.commit().then(done, rejectWith);
  };
  let header;
  try {
    try {
      header = parseOrThrow(resultHeaderSchema, env.msg, 'header');
      boundAgent(peer, header.agentId);
    } catch (err) {
      coord.recordMalformed(env.msg, 'malformed', (err as Error).message);
      throw err;
    }
  } catch (err) {
    return rejectWith(err);
  }
  // No idle timer while beginUpload waits for a staging slot: with many agents that wait is legitimately long, and
  // the agent sends nothing until the first ack (a client that goes away is detached by its last will).
  coord.beginUpload(header).then(
    (s) => {
      if (u.replied) return s.abort('client gone');
      u.sink = s;
      u.acks = new AckSchedule(header.totalBytes);
      // The first ack opens the sender's window: until a staging slot is free the agent holds its chunks.
      reply(peer, { t: 'ack', id, offset: 0 });
      armIdle();
    },
    rejectWith,
  );
}
