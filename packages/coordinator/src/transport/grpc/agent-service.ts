/** gRPC AgentService: maps Join, Tasks, FetchModel, SubmitResult, SecAgg and Report onto the transport-agnostic coordinator. */
import * as grpc from '@grpc/grpc-js';
import {
  RejectedUpdateError,
  agentReportSchema,
  type AgentReportMsg,
  type ReportReplyMsg,
  challengeRequestSchema,
  type ChallengeReplyMsg,
  type ChallengeRequestMsg,
  fetchModelRequestSchema,
  joinRequestSchema,
  parseOrThrow,
  resultHeaderSchema,
  secaggRequestSchema,
  tasksRequestSchema,
  type SecAggReplyMsg,
  type SecAggRequestMsg,
  type FetchModelRequestMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ResultPartMsg,
  type SubmitReplyMsg,
  type TaskMsg,
  type TasksRequestMsg,
  type ChunkMsg,
} from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import type { UploadSink } from '../../engine/upload.js';
import { refuse, toServiceError } from './errors.js';
import { writeModelStream } from './stream-write.js';
import { moduleLogger } from '../../log.js';
import { COORDINATOR_VERSION } from '../../version.js';

const log = moduleLogger('grpc-agent');

export function agentServiceHandlers(coord: Coordinator): grpc.UntypedServiceImplementation {
  return {
    Join(call: grpc.ServerUnaryCall<JoinRequestMsg, JoinReplyMsg>, cb: grpc.sendUnaryData<JoinReplyMsg>) {
      void (async () => {
        try {
          const req = parseOrThrow(joinRequestSchema, call.request, 'join');
          const r = await coord.join(req, peerHost(call.getPeer()));
          cb(null, { ...r, coordinatorVersion: COORDINATOR_VERSION });
        } catch (err) {
          log.warn({ peer: call.getPeer(), code: (err as { code?: string }).code, err: (err as Error).message }, 'join refused');
          cb(toServiceError(err));
        }
      })();
    },

    Challenge(call: grpc.ServerUnaryCall<ChallengeRequestMsg, ChallengeReplyMsg>, cb: grpc.sendUnaryData<ChallengeReplyMsg>) {
      try {
        const req = parseOrThrow(challengeRequestSchema, call.request, 'challenge');
        cb(null, coord.gate.challenge(req.name, peerHost(call.getPeer())));
      } catch (err) {
        log.warn({ peer: call.getPeer(), err: (err as Error).message }, 'challenge refused');
        cb(toServiceError(err));
      }
    },

    Tasks(call: grpc.ServerWritableStream<TasksRequestMsg, TaskMsg>) {
      let req;
      try {
        req = parseOrThrow(tasksRequestSchema, call.request, 'tasks');
      } catch (err) {
        refuse(call, err);
        return;
      }
      const { agentId } = req;
      let closed = false;
      const channel = {
        transport: 'grpc' as const,
        send: (task: TaskMsg) => {
          if (closed) throw new Error('channel closed');
          call.write(task);
        },
        close: (reason: string) => {
          if (closed) return;
          closed = true;
          log.debug({ agentId, reason }, 'closing task stream');
          call.end();
        },
      };
      const gone = (reason: string) => () => {
        if (!closed) closed = true;
        coord.closeTasks(agentId, channel, reason);
      };
      call.on('cancelled', gone('connection closed'));
      call.on('error', gone('stream error'));
      call.on('close', gone('stream closed'));
      try {
        coord.openTasks(agentId, req.sessionToken, channel);
      } catch (err) {
        closed = true;
        refuse(call, err);
        return;
      }
      // Headers now tell the agent its stream is open; it gives up on a stream that sends neither these nor a status.
      call.sendMetadata(new grpc.Metadata());
    },

    FetchModel(call: grpc.ServerWritableStream<FetchModelRequestMsg, ChunkMsg>) {
      void (async () => {
        try {
          const req = parseOrThrow(fetchModelRequestSchema, call.request, 'fetch_model');
          coord.registry.verify(req.agentId, req.sessionToken);
          const { model, engine } = await coord.fetchModel(req.runId, req.modelVersion, req.blobSha256);
          // compression.downlink: the deltas from the version the agent holds, when kept and smaller than the model.
          const chain = !req.blobSha256 && req.haveSha256 ? engine?.downlinkChain(req.haveVersion, req.haveSha256, model) : undefined;
          const sent = chain
            ? await writeModelStream(call, { ...model.header, totalBytes: chain.payload.byteLength, encoding: chain.encoding, baseVersion: req.haveVersion }, chain.payload, () => call.cancelled)
            : await writeModelStream(call, model.header, model.bytes, () => call.cancelled);
          engine?.noteModelSent(sent, chain && sent === chain.payload.byteLength ? model.bytes.byteLength : sent);
          call.end();
        } catch (err) {
          refuse(call, err);
        }
      })();
    },

    /** Held until the stage closes (the agent's deadline bounds it); refusals are replies with a reason, auth errors a status. */
    SecAgg(call: grpc.ServerUnaryCall<SecAggRequestMsg, SecAggReplyMsg>, cb: grpc.sendUnaryData<SecAggReplyMsg>) {
      void (async () => {
        try {
          const req = parseOrThrow(secaggRequestSchema, call.request, 'secagg');
          cb(null, await coord.secagg(req));
        } catch (err) {
          log.warn({ peer: call.getPeer(), code: (err as { code?: string }).code, err: (err as Error).message }, 'secagg stage refused');
          cb(toServiceError(err));
        }
      })();
    },

    /** Agent status (served version, drift, health); a refusal is a status (UNAUTHENTICATED, INVALID_ARGUMENT). */
    Report(call: grpc.ServerUnaryCall<AgentReportMsg, ReportReplyMsg>, cb: grpc.sendUnaryData<ReportReplyMsg>) {
      void (async () => {
        try {
          cb(null, await coord.report(parseOrThrow(agentReportSchema, call.request, 'report')));
        } catch (err) {
          log.warn({ peer: call.getPeer(), code: (err as { code?: string }).code, err: (err as Error).message }, 'report refused');
          cb(toServiceError(err));
        }
      })();
    },

    SubmitResult(call: grpc.ServerReadableStream<ResultPartMsg, SubmitReplyMsg>, cb: grpc.sendUnaryData<SubmitReplyMsg>) {
      let sink: UploadSink | undefined;
      let replied = false;
      let headerSeen = false;
      const reply = (r: SubmitReplyMsg): void => {
        if (replied) return;
        replied = true;
        if (!r.accepted) log.warn({ peer: call.getPeer(), reason: r.reason, message: r.message }, 'result rejected');
        cb(null, r);
      };
      const rejectWith = (err: unknown): void => {
        sink?.abort(err instanceof Error ? err.message : String(err));
        if (err instanceof RejectedUpdateError) reply({ accepted: false, reason: err.reason, message: err.message });
        else if ((err as { code?: string }).code === 'E_AUTH') reply({ accepted: false, reason: 'unknown_agent', message: (err as Error).message });
        else if ((err as { code?: string }).code === 'E_VALIDATION') reply({ accepted: false, reason: 'malformed', message: (err as Error).message });
        else reply({ accepted: false, reason: 'internal', message: (err as Error).message });
      };
      call.on('data', (part: ResultPartMsg) => {
        if (replied) return;
        try {
          if (!headerSeen) {
            if (!part.header) throw new RejectedUpdateError('malformed', 'the first message must be a header');
            headerSeen = true;
            let header;
            try {
              header = parseOrThrow(resultHeaderSchema, part.header, 'header');
            } catch (err) {
              coord.recordMalformed(part.header, 'malformed', (err as Error).message);
              throw err;
            }
            // Hold further chunks until the coordinator has a staging slot for this upload.
            call.pause();
            coord.beginUpload(header).then(
              (s) => {
                sink = s;
                if (replied) s.abort('client gone');
                else call.resume();
              },
              (err: unknown) => rejectWith(err),
            );
            return;
          }
          if (!part.chunk) throw new RejectedUpdateError('malformed', 'only one header is allowed per upload');
          if (!sink) throw new RejectedUpdateError('malformed', 'chunk before the upload was accepted');
          sink.write(part.chunk.offset, part.chunk.data);
        } catch (err) {
          rejectWith(err);
        }
      });
      call.on('end', () => {
        if (replied) return;
        if (!sink) return rejectWith(new RejectedUpdateError('truncated', 'the upload ended before its header was accepted'));
        sink.commit().then(reply, rejectWith);
      });
      const aborted = (): void => {
        if (!replied) {
          replied = true;
          sink?.abort('disconnected mid-upload');
        }
      };
      call.on('cancelled', aborted);
      call.on('error', aborted);
    },
  };
}

/** The address part of a grpc-js peer ("ipv4:10.0.0.5:53211", "ipv6:[::1]:53211"): the key of the join rate limit. */
function peerHost(peer: string): string {
  return peer.replace(/:\d+$/, '');
}
