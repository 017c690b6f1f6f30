/**
 * Fuzz: a few thousand seeded malformed messages on gRPC (every method, raw HTTP/2, raw TCP) and MQTT (every request
 * type, bad frames, broker rule breaking) while a real 3-agent run on both transports completes. Nothing may crash the
 * coordinator, hang a call past its deadline, or be accepted. FEDGE_FUZZ_SEED=N repeats a run's messages;
 * FEDGE_FUZZ_LOG=FILE keeps the coordinator's log.
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from 'mqtt';
import { AdminClient } from '@fedge/coordinator';
import { MQTT_AGENT_USERNAME, decodeFrame, loadServices, mqttTopics, newAgentClientId, type JoinReplyMsg } from '@fedge/proto';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';
import { Counts, Gen } from './fuzz-gen.js';
import { METHODS, grpcCase, runGrpcCase, type GrpcOutcome, type GrpcTargets } from './fuzz-grpc.js';
import { H2Pool, rawTcpGarbage, runH2Case, type H2Outcome } from './fuzz-h2.js';
import { cleanClient, endClean, insiderClient, newMqttStats, violator, type MqttTargets } from './fuzz-mqtt.js';

const SEED = Number(process.env.FEDGE_FUZZ_SEED ?? 20261130);
const N_GRPC = 1800;
const N_H2 = 300;
const N_TCP = 20;
const MQTT_CLIENTS = 7;
const N_MQTT_PER_CLIENT = 200;
const N_VIOLATORS = 40;
const DEADLINE_MS = 8000;
const MAX_HUNG = 16;
const TOKEN = 'fz-join-token';
const ADMIN = 'fz-admin-token';
const REAL = ['fz-g0', 'fz-g1', 'fz-m2'];

interface RunJson {
  id: string;
  status: string;
  metrics: { round: number; status: string; completed: number; centralAccuracy?: number }[];
  roundsDetail: { round: number; participants: { name: string; outcome: string }[] }[];
}

afterAll(() => killAll());

/** Runs `n` tasks, `width` at a time. */
async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await task(next++);
  }));
}

describe('fuzz', () => {
  it(`seeded malformed traffic on gRPC and MQTT during a real run: no crash, no hang, nothing accepted (seed ${SEED})`, async () => {
    const t0 = performance.now();
    console.log(`fuzz seed ${SEED} (repeat with FEDGE_FUZZ_SEED=${SEED})`);
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0', '--join-token', TOKEN], { FEDGE_ADMIN_TOKEN: ADMIN });
    const agents = REAL.map((name, i) =>
      startAgent(name.includes('-m') ? coord.mqttUrl! : coord.address, ['--name', name, '--num-partitions', '3', '--partition-id', String(i), '--seed', '1', '--join-token', TOKEN,
        // Rounds long enough (sleeping, not computing) that the run is still going while the fuzzer sends.
        '--slowdown', '3']));
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const at = (): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    console.log(`agents joined at ${at()}`);
    const admin = new AdminClient(coord.address, ADMIN);
    const realAgentIds = (await admin.listAgents()).map((a) => a.id);
    expect(realAgentIds).toHaveLength(3);

    // The fuzzer's own session (joined with the real token, never a task stream): uploads and downloads with it get
    // past authentication into the run's checks.
    const agentSvc = new (loadServices().AgentService)(coord.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Join: (r: unknown, cb: (e: grpc.ServiceError | null, r: JoinReplyMsg) => void) => void };
    const insider = await new Promise<JoinReplyMsg>((resolve, reject) =>
      agentSvc.Join({ name: 'fz-insider', agentId: '', joinToken: TOKEN, backend: 'fuzz', agentVersion: 'fuzz', numExamples: 0, labels: {} }, (e, r) => (e ? reject(e) : resolve(r))));

    const started = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '4', '--min-agents', '3',
      '--epochs', '1', '--lr', '0.1', '--deadline', '60', '--format', 'json'], { FEDGE_ADMIN_TOKEN: ADMIN });
    expect(started.code, started.stderr).toBe(0);
    const runId = lastJson<{ id: string }>(started.stdout).id;
    console.log(`run ${runId} started at ${at()}`);
    let runEnded = 0;
    const watcher = (async () => {
      while ((await admin.getRun(runId)).status === 'running') await new Promise((r) => setTimeout(r, 300));
      runEnded = performance.now();
      console.log(`run ended at ${at()}`);
    })();

    // Every stream of messages has its own generator, so concurrency does not change what is sent.
    const g = (k: number): Gen => new Gen((SEED * 31 + k) >>> 0);
    const gt: GrpcTargets = { address: coord.address, realAgentIds, runId, insider: { agentId: insider.agentId, sessionToken: insider.sessionToken }, adminToken: ADMIN };
    const mt: MqttTargets = { url: coord.mqttUrl!, joinToken: TOKEN, realAgentIds, runId };
    const sentBeforeEnd = { n: 0 };
    const tick = (): void => void (runEnded ? 0 : sentBeforeEnd.n++);

    const grpcOut: GrpcOutcome[] = [];
    let skipped = 0;
    const client = new grpc.Client(coord.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 << 20 });
    const gg = g(1);
    const grpcCases = Array.from({ length: N_GRPC }, () => grpcCase(gg, gt));
    const h2Out: H2Outcome[] = [];
    const h2 = new H2Pool(coord.address);
    const gh = g(2);
    const tcp = new Counts();
    const gtcp = g(3);
    const mqtt = newMqttStats();
    const gv = g(4);

    const took: string[] = [];
    const timed = async (name: string, p: Promise<unknown>): Promise<void> => {
      const s0 = performance.now();
      await p;
      took.push(`${name} ${((performance.now() - s0) / 1000).toFixed(1)} s`);
      console.log(`${name} done at ${at()}`);
    };
    const fuzzStart = performance.now();
    await Promise.all([
      timed('grpc', pool(N_GRPC, 8, async (i) => {
        // Hanging calls would hold the pool for DEADLINE_MS each: after a few, the rest is skipped and the test fails
        // naming the methods, instead of timing out.
        if (grpcOut.filter((o) => o.code === grpc.status.DEADLINE_EXCEEDED).length >= MAX_HUNG) return void skipped++;
        tick();
        grpcOut.push(await runGrpcCase(client, grpcCases[i]!, DEADLINE_MS));
      })),
      timed('http2', pool(N_H2, 3, async () => {
        tick();
        h2Out.push(await runH2Case(h2, gh, DEADLINE_MS));
      })),
      timed('tcp', pool(N_TCP, 2, async () => {
        tick();
        tcp.add(await rawTcpGarbage(coord.address, gtcp, 5000));
      })),
      ...Array.from({ length: MQTT_CLIENTS }, (_, k) => timed(`mqtt${k}`, (async () => {
        // The last client joins with the real token first and fuzzes with its valid session.
        const c = await (k === MQTT_CLIENTS - 1 ? insiderClient : cleanClient)(mt, g(10 + k), N_MQTT_PER_CLIENT, mqtt, `k${k}-`, tick);
        // Answers still on their way; then the client leaves as an agent's last will would say.
        for (let w = 0; w < 100 && [...mqtt.pending.keys()].some((key) => key.startsWith(`${c.options.clientId}/`)); w++) await new Promise((r) => setTimeout(r, 100));
        await endClean(c);
      })())),
      timed('mqtt-violators', pool(N_VIOLATORS, 2, async () => {
        tick();
        await violator(mt, gv, mqtt);
      })),
    ]);
    const fuzzSeconds = (performance.now() - fuzzStart) / 1000;
    await watcher;
    const runSeconds = (runEnded - fuzzStart) / 1000;
    client.close();
    h2.close();

    // Counts, for the record (and for whoever reads a failure).
    const codes = new Counts();
    const hung = new Counts();
    for (const o of grpcOut) {
      codes.add(`${o.method}:${grpc.status[o.code]}`);
      if (o.code === grpc.status.DEADLINE_EXCEEDED) hung.add(`${o.method}/${o.label}`);
    }
    // Refusals by cause: a handler's own exception (a TypeError, say) would show up here as INTERNAL or 'internal'.
    const causes = new Counts();
    for (const o of grpcOut) if (o.code === grpc.status.INTERNAL || o.method === 'SubmitResult') causes.add(`${o.method === 'SubmitResult' ? 'SubmitResult' : grpc.status[o.code]}: ${o.details.replace(/"[^"]*"|\d+/g, '_').slice(0, 70)}`);
    const h2Results = new Counts();
    for (const o of h2Out) h2Results.add(`${o.label} -> ${o.result}`);
    const totalMqtt = mqtt.sent.total() + N_VIOLATORS;
    console.log(`gRPC calls ${grpcOut.length}: ${codes}`);
    console.log(`INTERNAL statuses and SubmitResult replies by cause: ${causes}`);
    console.log(`gRPC calls that hit the client deadline (${DEADLINE_MS} ms): ${hung.total()} ${hung}${skipped ? `; ${skipped} calls skipped after ${MAX_HUNG} hung` : ''}`);
    console.log(`raw HTTP/2 requests ${h2Out.length}: ${h2Results}`);
    console.log(`raw TCP garbage on the gRPC port ${N_TCP}: ${tcp}`);
    console.log(`MQTT frames ${mqtt.sent.total()}: ${mqtt.sent}`);
    console.log(`MQTT answers: ${mqtt.answers}; unanswered ${mqtt.pending.size}`);
    console.log(`MQTT rule-breaking connections ${N_VIOLATORS}: ${mqtt.violators}`);
    console.log(`messages sent while the run was going: ${sentBeforeEnd.n} of ${grpcOut.length + h2Out.length + N_TCP + totalMqtt}; fuzz phase ${fuzzSeconds.toFixed(1)} s (${took.join(', ')}), run ended ${runSeconds.toFixed(1)} s into it`);

    // Nothing crashed, nothing was accepted.
    expect(coord.child.exitCode).toBeNull();
    expect(grpcOut.filter((o) => o.accepted).map((o) => `${o.method}/${o.label}: ${grpc.status[o.code]} ${o.details}`)).toEqual([]);
    expect(mqtt.accepted).toEqual([]);
    expect([...mqtt.pending.values()]).toEqual([]);
    // Every call ended with a status before its deadline; the server ends a request it cannot finish itself.
    expect(hung.toString()).toBe('');
    expect(h2Out.filter((o) => o.result === 'client-deadline' || o.result.includes('ACCEPTED')).map((o) => `${o.label} -> ${o.result}`)).toEqual([]);
    expect(tcp.get('bad-preface:left-open')).toBe(0);
    // Refusals come from validation, authentication and the run's checks, never from a handler's own failure.
    expect(grpcOut.filter((o) => o.code === grpc.status.INTERNAL && !/^Error deserializing request/.test(o.details)).map((o) => `${o.method}: ${o.details}`)).toEqual([]);
    expect(grpcOut.filter((o) => o.method === 'SubmitResult' && /^internal:/.test(o.details)).map((o) => o.details)).toEqual([]);
    expect([...mqtt.answers.m.keys()].filter((k) => /E_INTERNAL|:internal/.test(k))).toEqual([]);
    // A result for the open round from an agent with no task in it is refused as unknown_task, not as a stale round.
    expect(grpcOut.filter((o) => /round: (\d+) is not open \(current: \1\)/.test(o.details)).map((o) => o.details)).toEqual([]);
    expect(mqtt.answers.get('insider-submit->reply:unknown_task')).toBeGreaterThan(0);
    const perMethod = new Counts();
    for (const o of grpcOut) perMethod.add(o.method);
    // Every method of both services (read from the .proto, so a new RPC such as SecAgg is fuzzed too).
    expect(perMethod.m.size).toBe(METHODS.length);
    for (const [m, n] of perMethod.m) expect(n, m).toBeGreaterThan(40);
    expect(mqtt.violators.get('wrong-token:connected') + mqtt.violators.get('not-agent-id:connected')).toBe(0);
    for (const k of ['other-topic', 'status-retained', 'retained-request', 'oversized']) expect(mqtt.violators.get(`${k}:left-open`), k).toBe(0);
    expect(sentBeforeEnd.n).toBeGreaterThan(2000);

    // The real run completed every round with exactly the real agents, and its model is finite.
    const show = await fedge(['run', 'show', runId, '--coordinator', coord.address, '--format', 'json'], { FEDGE_ADMIN_TOKEN: ADMIN });
    expect(show.code, show.stderr).toBe(0);
    const run = lastJson<RunJson>(show.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => [m.status, m.completed])).toEqual([['completed', 3], ['completed', 3], ['completed', 3], ['completed', 3]]);
    for (const r of run.roundsDetail) expect(r.participants.map((p) => `${p.name}:${p.outcome}`).sort()).toEqual(REAL.map((n) => `${n}:completed`));
    expect(run.metrics[3]!.centralAccuracy!).toBeGreaterThan(0.8);
    const model = await admin.fetchRunModel(runId);
    const w = model.weights;
    expect(w.length).toBeGreaterThan(100_000);
    expect(w.every(Number.isFinite)).toBe(true);
    // No agent but the real ones and the fuzzer's two sessions (one per transport) was registered.
    expect((await admin.listAgents()).map((a) => a.name).sort()).toEqual([...REAL, 'fz-insider', `fz-mqtt-insider-k${MQTT_CLIENTS - 1}-`].sort());
    // The coordinator's retained status was not overwritten by a forged one.
    const status = await new Promise<unknown>((resolve, reject) => {
      const c = connect(coord.mqttUrl!, { clientId: newAgentClientId(), username: MQTT_AGENT_USERNAME, password: TOKEN, reconnectPeriod: 0 });
      c.on('message', (_t, p) => {
        resolve(decodeFrame(p).env.online);
        c.end(true);
      });
      c.on('connect', () => c.subscribe(mqttTopics.status, { qos: 1 }));
      setTimeout(() => reject(new Error('no retained status')), 5000).unref();
    });
    expect(status).toBe(true);
    // The log has no uncaught exception and no handler failure.
    const log = coord.output();
    if (process.env.FEDGE_FUZZ_LOG) writeFileSync(process.env.FEDGE_FUZZ_LOG, log);
    expect(log).not.toMatch(/uncaught|unhandled|"level":60|handler failed|FATAL ERROR/i);
    expect(coord.child.exitCode).toBeNull();
    console.log(`fuzz test ${((performance.now() - t0) / 1000).toFixed(1)} s; final accuracy ${run.metrics[3]!.centralAccuracy!.toFixed(4)}; coordinator log: ${log.split('\n').filter((l) => l.includes('"level":40')).length} warnings, ${log.split('\n').filter((l) => l.includes('"level":50')).length} errors`);
  }, 240_000);
});
