/** gRPC AdminService: what the fedge CLI calls to start, list, watch and stop runs and to list agents. */
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { parseJsonField, type ChunkMsg, type FetchRunModelRequestMsg, type GetRunRequestMsg, type ListAgentsReplyMsg, type ListAgentsRequestMsg, type PromoteModelRequestMsg, type ListRunsReplyMsg, type RunReplyMsg, type StartRunRequestMsg } from '@fedge/proto';
import type { Coordinator, RunView } from '../../coordinator.js';
import { parseCanaryAuto } from '../../engine/canary.js';
import { parseKeepLast } from '../../config/retention.js';
import { AuthError } from '../../engine/join-credentials.js';
import { parseAgentQuery, queryAgents, summarizeAgents } from '../../engine/agent-query.js';
import { refuse, toServiceError } from './errors.js';
import { writeModelStream } from './stream-write.js';

/** How often WatchRun re-sends a run's state when nothing changed (the CLI's idle timeout is several times this). */
export const WATCH_HEARTBEAT_MS = 10_000;

/** Whether an `authorization` value ("Bearer TOKEN" or TOKEN) carries `adminToken`, compared in constant time. */
export function adminTokenMatches(authorization: string, adminToken: string): boolean {
  const a = Buffer.from(authorization.replace(/^Bearer /, ''));
  const b = Buffer.from(adminToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function checkAdmin(md: grpc.Metadata, adminToken: string | undefined): void {
  if (adminToken === undefined) return;
  if (!adminTokenMatches(String(md.get('authorization')[0] ?? ''), adminToken))
    throw new AuthError('admin token missing or wrong: set FEDGE_ADMIN_TOKEN to the coordinator\'s admin token');
}

/** ListParticipants (admin.proto): query_json is checked by participants-view.ts's schema. */
interface ListParticipantsRequestMsg { runId: string; queryJson: string }
interface ListParticipantsReplyMsg { pageJson: string }

/** GcModels (admin.proto): keep_last "" means each run's own retention setting. */
interface GcModelsRequestMsg { runId: string; keepLast: string; dryRun: boolean }
interface GcModelsReplyMsg { resultsJson: string }

/**
 * PromoteModel's request as promoteModel options (0 means unset, as proto3 sends it). The dashboard's promote and
 * canary actions go through here too, so both apply the same defaults and the same evaluation gate.
 */
export function promoteModelRequest(coord: Coordinator, req: PromoteModelRequestMsg): Promise<RunView> {
  const canary = Number(req.canary ?? 0);
  const margin = Number(req.margin ?? 0);
  const auto = req.autoJson ? parseCanaryAuto(req.autoJson) : undefined;
  return coord.promoteModel(req.runId, {
    version: Number(req.modelVersion ?? 0),
    ...(canary > 0 ? { canary } : {}),
    ...(margin !== 0 ? { margin } : {}),
    ...(req.force ? { force: true } : {}),
    ...(auto ? { auto } : {}),
  });
}

export function unary<Req, Res>(adminToken: string | undefined, fn: (req: Req) => Promise<Res> | Res) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    void (async () => {
      try {
        checkAdmin(call.metadata, adminToken);
        cb(null, await fn(call.request));
      } catch (err) {
        cb(toServiceError(err));
      }
    })();
  };
}

/** ListAgents: a page of agents (every agent for an empty request, as before paging), or with `summary` the counts. */
export function listAgentsReply(coord: Coordinator, req: Partial<ListAgentsRequestMsg>): ListAgentsReplyMsg {
  const { summary, ...raw } = req;
  const q = parseAgentQuery(raw);
  if (summary) {
    const s = summarizeAgents(coord.registry.records(), q);
    return { agentsJson: [], total: s.total, fleet: s.fleet, summaryJson: JSON.stringify(s) };
  }
  const page = queryAgents(coord.registry, q);
  return { agentsJson: page.agents.map((a) => JSON.stringify(a)), total: page.total, skipped: page.skipped, next: page.next ?? '', fleet: page.fleet };
}

export function adminServiceHandlers(coord: Coordinator, adminToken?: string): grpc.UntypedServiceImplementation {
  return {
    // The config and the query are checked by the coordinator (run-config, participants-view): here only their JSON.
    StartRun: unary<StartRunRequestMsg, RunReplyMsg>(adminToken, async (req) => ({
      runJson: JSON.stringify(await coord.startRun(parseJsonField(z.unknown(), req.configJson, 'config_json'))),
    })),
    ListRuns: unary<object, ListRunsReplyMsg>(adminToken, async () => ({
      runsJson: (await coord.listRuns()).map((r) => JSON.stringify(r)),
    })),
    GetRun: unary<GetRunRequestMsg, RunReplyMsg>(adminToken, async (req) => ({ runJson: JSON.stringify(await coord.showRun(req.runId)) })),
    ListParticipants: unary<ListParticipantsRequestMsg, ListParticipantsReplyMsg>(adminToken, async (req) => ({
      pageJson: JSON.stringify(await coord.listParticipants(req.runId, parseJsonField(z.unknown(), req.queryJson || '{}', 'query_json'))),
    })),
    StopRun: unary<GetRunRequestMsg, RunReplyMsg>(adminToken, async (req) => ({ runJson: JSON.stringify(await coord.stopRun(req.runId)) })),
    PromoteModel: unary<PromoteModelRequestMsg, RunReplyMsg>(adminToken, async (req) => ({ runJson: JSON.stringify(await promoteModelRequest(coord, req)) })),
    RollbackModel: unary<GetRunRequestMsg, RunReplyMsg>(adminToken, async (req) => ({ runJson: JSON.stringify(await coord.rollbackModel(req.runId)) })),
    GcModels: unary<GcModelsRequestMsg, GcModelsReplyMsg>(adminToken, async (req) => ({
      resultsJson: JSON.stringify(
        await coord.gcModels({ ...(req.runId ? { runId: req.runId } : {}), ...(req.keepLast ? { keepLast: parseKeepLast(req.keepLast, 'keep_last') } : {}), dryRun: req.dryRun }),
      ),
    })),
    ListAgents: unary<Partial<ListAgentsRequestMsg>, ListAgentsReplyMsg>(adminToken, (req) => listAgentsReply(coord, req)),
    WatchRun(call: grpc.ServerWritableStream<GetRunRequestMsg, RunReplyMsg>) {
      let off: (() => void) | undefined;
      let last = 0;
      let timer: NodeJS.Timeout | undefined;
      let beat: NodeJS.Timeout | undefined;
      let latest: (() => unknown) | undefined;
      let done = false;
      // At most ~10 messages a second, and no more than ~2% of a core: a round of 1,000 participants' live view took
      // ~4 ms to copy and serialize, 10 times a second for the whole run (5% of the coordinator's CPU in a profile).
      let gap = 100;
      const stop = (): void => {
        done = true;
        off?.();
        clearTimeout(timer);
        clearInterval(beat);
      };
      const write = (view: () => unknown): void => {
        if (done) return;
        const t0 = performance.now();
        last = Date.now();
        call.write({ runJson: JSON.stringify(view()) });
        gap = Math.min(2000, Math.max(100, (performance.now() - t0) * 50));
      };
      try {
        checkAdmin(call.metadata, adminToken);
        off = coord.watchRun(call.request.runId, (view, ended) => {
          latest = view;
          // Coalesce bursts of updates (see `gap`); each sends the state as of sending.
          const send = (): void => {
            timer = undefined;
            if (!ended) return write(view);
            // The final record as GetRun gives it (small rounds list their participants): `run start --watch --format json`.
            coord.showRun(call.request.runId).then((v) => write(() => v), () => write(view)).finally(() => {
              if (done) return;
              stop();
              call.end();
            });
          };
          if (ended || Date.now() - last > gap) {
            if (timer) clearTimeout(timer);
            send();
          } else if (!timer) timer = setTimeout(send, gap - (Date.now() - last));
        });
        // A quiet run (waiting for agents, a long round) still sends its state now and then: the CLI takes a watch
        // silent for longer than its idle timeout for a lost coordinator.
        beat = setInterval(() => {
          if (latest && !timer && Date.now() - last >= WATCH_HEARTBEAT_MS) write(latest);
        }, WATCH_HEARTBEAT_MS);
      } catch (err) {
        if (!(err instanceof Error && /not active/.test(err.message))) {
          refuse(call, err);
          return;
        }
        // A finished run: send its final record once.
        coord.showRun(call.request.runId).then(
          (run) => {
            write(() => run);
            call.end();
          },
          (e: unknown) => refuse(call, e),
        );
      }
      call.on('cancelled', stop);
      call.on('close', stop);
    },
    FetchRunModel(call: grpc.ServerWritableStream<FetchRunModelRequestMsg, ChunkMsg>) {
      void (async () => {
        try {
          checkAdmin(call.metadata, adminToken);
          const g = await coord.runModel(call.request.runId, Number(call.request.modelVersion ?? 0));
          await writeModelStream(call, g.header, g.bytes, () => call.cancelled);
          call.end();
        } catch (err) {
          refuse(call, err);
        }
      })();
    },
  };
}
