/**
 * Scale (issue 16): 1,000 simulated agents (one `fedge-agent --simulate 1000 --echo` process, each agent its own MQTT
 * client, session and name) complete 3 sync rounds of 1,000 participants on a real coordinator with the embedded
 * broker. Echo agents download and verify every model and send a fixed delta, so the final model is known exactly.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FEDGE_AGENT, fedge, killAll, lastJson, startCoordinator, startProcess } from './harness.js';

const N = 1000;
const ROUNDS = 3;
const tmp = mkdtempSync(path.join(tmpdir(), 'fedge-scale-'));
afterAll(() => {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
});

/** EchoShared.deltaOf (packages/edge-agent/src/echo-executor.ts): what every echo agent sends. */
const echoDelta = (i: number): number => (((i * 7919) % 17) - 8) * 1.25e-4;

interface RunJson {
  id: string;
  status: string;
  modelPath: string;
  metrics: { status: string; completed: number }[];
  roundsDetail: { round: number; participants?: unknown[]; participantsNote?: string; summary: { participants: number; outcomes: Record<string, number> } }[];
}

interface ParticipantsPage { total: number; participants: { round: number; name: string; outcome: string }[]; nextOffset?: number }

describe('scale', () => {
  it(`${N} simulated agents over MQTT complete ${ROUNDS} rounds of ${N} participants, and the model moves by exactly their delta`, async () => {
    const t0 = Date.now();
    // A small model (784-8-10 MLP, 6,370 params): what is tested is the fleet, not the bandwidth.
    const ml = await import('@fedge/ml');
    const blob = ml.modelToBlob(ml.createMlp({ inputWidth: 784, hidden: [8], outputs: 10, activation: 'softmax', seed: 3 }));
    const modelFile = await ml.saveModelDir(blob, path.join(tmp, 'model'));
    // One loopback address joins all 1,000: the per-address join limits are for real networks. In memory: what is
    // tested is the fleet; the SQLite data dir takes ~1.8x as long (bench/scale.mjs measures it; README "Scale").
    const coord = await startCoordinator(['--in-memory', '--mqtt-listen', '127.0.0.1:0', '--max-token-agents', String(N + 10), '--join-rate', '2000', '--join-burst', '2000']);
    const fleet = startProcess(FEDGE_AGENT, ['--coordinator', coord.mqttUrl!, '--simulate', String(N), '--echo', '--name', 'sim', '--simulate-rate', '1000'], { FEDGE_LOG_LEVEL: 'warn' });
    await fleet.waitFor(new RegExp(`simulated fleet: ${N}/${N} joined`), 60_000);
    const joined = Date.now();
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', modelFile, '--rounds', String(ROUNDS), '--min-agents', String(N),
      '--deadline', '60', '--watch', '--format', 'json']);
    expect(res.code, res.stderr.slice(-2000)).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    const ran = Date.now();
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => [m.status, m.completed]), JSON.stringify(run.metrics)).toEqual(Array.from({ length: ROUNDS }, () => ['completed', N]));
    // A round of N participants is too large to list inline (issue 16): its record has their summary, and fedge run
    // participants pages the list; every round's N completed participants are N distinct agents.
    for (const r of run.roundsDetail) {
      expect(r.participants).toBeUndefined();
      expect(r.participantsNote).toMatch(new RegExp(`fedge run participants ${run.id} --round ${r.round}`));
      expect(r.summary).toMatchObject({ participants: N, outcomes: { completed: N } });
      const names = new Set<string>();
      for (let offset: number | undefined = 0; offset !== undefined;) {
        const page = await fedge(['run', 'participants', run.id, '--coordinator', coord.address, '--round', String(r.round), '--status', 'completed', '--limit', '400', '--offset', String(offset), '--format', 'json']);
        expect(page.code, page.stderr).toBe(0);
        const p = JSON.parse(page.stdout) as ParticipantsPage;
        expect(p.total).toBe(N);
        for (const x of p.participants) expect([x.round, x.outcome]).toEqual([r.round, 'completed']);
        p.participants.forEach((x) => names.add(x.name));
        offset = p.nextOffset;
      }
      expect(names.size).toBe(N);
    }
    // fedge run show's JSON no longer grows with participants per round: a few KB for the whole run.
    const shown = await fedge(['run', 'show', run.id, '--coordinator', coord.address, '--format', 'json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout.length).toBeLessThan(20_000);
    // FedAvg of N identical deltas is that delta: after ROUNDS rounds every weight moved by ROUNDS x delta.
    const final = new Float32Array(new Uint8Array(readFileSync(path.join(path.dirname(run.modelPath), 'weights.bin'))).buffer);
    expect(final.length).toBe(blob.weights.length);
    let worst = 0;
    for (let i = 0; i < final.length; i++) worst = Math.max(worst, Math.abs(final[i]! - (blob.weights[i]! + ROUNDS * Math.fround(echoDelta(i)))));
    expect(worst).toBeLessThan(1e-5);
    // The agent list of a fleet this size still comes back, all of them online (--all: past the default page of 500).
    const list = await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json', '--all']);
    expect(list.code, list.stderr).toBe(0);
    const agents = JSON.parse(list.stdout) as { name: string; status: string }[];
    expect(agents.filter((a) => a.name.startsWith('sim-') && a.status === 'online')).toHaveLength(N);
    process.stderr.write(`scale: ${N} agents joined in ${((joined - t0) / 1000).toFixed(1)} s, ${ROUNDS} rounds in ${((ran - joined) / 1000).toFixed(1)} s, all in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    fleet.child.kill('SIGTERM');
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  }, 240_000);
});
