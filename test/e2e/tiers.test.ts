/**
 * Aggregator tiers over real processes: a root with 2 sites (fedge serve --upstream) of 3 agents each trains, with
 * the same seeds, the same model as a flat federation of the same 6 agents.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator, type Proc } from './harness.js';

interface RunJson {
  id: string;
  status: string;
  modelPath?: string;
  metrics: { round: number; status: string; completed: number }[];
  roundsDetail: { round: number; participants: { name: string; outcome: string; numExamples?: number; metrics?: Record<string, number>; reason?: string }[] }[];
}

afterAll(() => killAll());

const AGENTS = 6;
const ROUNDS = 2;

/** Agent i: the same name, partition and data seed whichever coordinator it joins (its training seed follows its name). */
function agent(address: string, i: number): Proc {
  return startAgent(address, ['--name', `t-${i}`, '--partition', 'iid', '--num-partitions', String(AGENTS), '--partition-id', String(i), '--seed', '5']);
}

function config(minAgents: number, extra: Record<string, unknown> = {}): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-tiers-')), 'run.json');
  writeFileSync(file, JSON.stringify({
    model: 'mnist-mlp', rounds: ROUNDS, epochs: 1, batchSize: 32, learningRate: 0.1, seed: 11, taskSeeds: 'agent',
    agentsPerRound: { fraction: 1, min: minAgents }, centralEvaluation: false, roundDeadlineSeconds: 120, ...extra,
  }));
  return file;
}

async function runTo(address: string, minAgents: number, extra: Record<string, unknown> = {}): Promise<{ run: RunJson; weights: Float32Array }> {
  const res = await fedge(['run', 'start', '--coordinator', address, '--config', config(minAgents, extra), '--watch', '--format', 'json']);
  expect(res.code, res.stderr).toBe(0);
  const run = lastJson<RunJson>(res.stdout);
  expect(run.status).toBe('completed');
  const show = lastJson<RunJson>((await fedge(['run', 'show', run.id, '--coordinator', address, '--format', 'json'])).stdout);
  const dir = show.modelPath!.endsWith('.json') ? path.dirname(show.modelPath!) : show.modelPath!;
  const bin = readdirSync(dir).find((f) => f.endsWith('.bin'))!;
  const buf = readFileSync(path.join(dir, bin));
  return { run: show, weights: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) };
}

describe('aggregator tiers', () => {
  it('root + 2 sites x 3 agents trains the same model as the 6 agents flat (max abs diff <= 1e-6)', async () => {
    const t0 = Date.now();
    const flatCoord = await startCoordinator();
    const flatAgents = Array.from({ length: AGENTS }, (_, i) => agent(flatCoord.address, i));
    await Promise.all(flatAgents.map((a) => a.waitFor(/joined coordinator/)));
    const flat = await runTo(flatCoord.address, AGENTS);
    for (const p of [...flatAgents, flatCoord]) p.child.kill('SIGTERM');
    const tFlat = Date.now();

    const root = await startCoordinator();
    const sites = await Promise.all(['site-a', 'site-b'].map((name) =>
      startCoordinator(['--upstream', `grpc://${root.address}`, '--name', name, '--site-min-agents', '3'])));
    const treeAgents = Array.from({ length: AGENTS }, (_, i) => agent(sites[i < 3 ? 0 : 1]!.address, i));
    await Promise.all(sites.map((s) => s.waitFor(/joined coordinator/)));
    const listed = JSON.parse((await fedge(['agent', 'list', '--coordinator', root.address, '--format', 'json'])).stdout) as { name: string; numExamples: number; labels: Record<string, string> }[];
    expect(listed.map((a) => a.name).sort()).toEqual(['site-a', 'site-b']);
    for (const s of listed) expect(s.labels['fedge.site-agents']).toBe('3');
    const tree = await runTo(root.address, 2);
    const tTree = Date.now();

    // The root's participants are the sites, each carrying its 3 agents' examples.
    const flatExamples = flat.run.roundsDetail[0]!.participants.reduce((s, p) => s + (p.numExamples ?? 0), 0);
    for (const r of tree.run.roundsDetail.filter((d) => d.participants.some((p) => p.name.startsWith('site-')))) {
      const parts = r.participants.filter((p) => p.outcome === 'completed');
      expect(parts.map((p) => p.name).sort()).toEqual(['site-a', 'site-b']);
      for (const p of parts) expect(p.metrics?.site_participants).toBe(3);
      expect(parts.reduce((s, p) => s + (p.numExamples ?? 0), 0)).toBe(flatExamples);
    }
    // Federated evaluation agrees too: version 1 from the agents' held-out rows reported with round 2's tasks, version 2
    // from the final evaluation (at the root: an evaluation round at each site).
    const fed = (r: RunJson, round: number): number | undefined => (r.metrics.find((m) => m.round === round) as { federatedAccuracy?: number } | undefined)?.federatedAccuracy;
    for (const round of [1, 2]) {
      expect(fed(tree.run, round), `federated accuracy of version ${round}`).toBeDefined();
      expect(Math.abs(fed(tree.run, round)! - fed(flat.run, round)!)).toBeLessThan(1e-9);
    }
    expect(tree.weights.length).toBe(flat.weights.length);
    let maxDiff = 0;
    let maxStep = 0;
    for (let i = 0; i < flat.weights.length; i++) maxDiff = Math.max(maxDiff, Math.abs(flat.weights[i]! - tree.weights[i]!));
    for (const w of flat.weights) maxStep = Math.max(maxStep, Math.abs(w));
    console.log(`tiers: max |tree - flat| = ${maxDiff.toExponential(3)} over ${flat.weights.length} weights (max |w| ${maxStep.toFixed(3)}); flat ${((tFlat - t0) / 1000).toFixed(1)} s, tree ${((tTree - tFlat) / 1000).toFixed(1)} s`);
    expect(maxDiff).toBeLessThanOrEqual(1e-6);
    // Not vacuous: the model moved from its initial weights in both federations.
    expect(flat.run.metrics.every((m) => m.status === 'completed')).toBe(true);
  }, 180_000);

  it('a site whose own round fails answers with an error result and the root round goes on with the other site', async () => {
    const root = await startCoordinator();
    // site-b's only agent trains 30x slower than site-b's 3 s deadline allows: its sub-round fails.
    const [a, b] = await Promise.all([
      startCoordinator(['--upstream', `grpc://${root.address}`, '--name', 'site-a']),
      startCoordinator(['--upstream', `grpc://${root.address}`, '--name', 'site-b', '--site-deadline', '3']),
    ]);
    agent(a.address, 0);
    startAgent(b.address, ['--name', 't-slow', '--partition', 'iid', '--num-partitions', String(AGENTS), '--partition-id', '1', '--seed', '5', '--slowdown', '30']);
    await Promise.all([a, b].map((s) => s.waitFor(/joined coordinator/)));
    const t0 = Date.now();
    const { run } = await runTo(root.address, 2, { rounds: 1, minResults: 1 });
    const seconds = (Date.now() - t0) / 1000;
    const r1 = run.roundsDetail[0]!;
    const byName = Object.fromEntries(r1.participants.map((p) => [p.name, p]));
    expect(run.metrics[0]!.status).toBe('completed');
    expect(byName['site-a']!.outcome).toBe('completed');
    expect(byName['site-a']!.metrics?.site_participants).toBe(1);
    // An agent's error result is recorded as rejected (reason agent_failed), with the site's message.
    expect(byName['site-b']!.outcome).toBe('rejected');
    expect(byName['site-b']!.reason).toMatch(/site site-b: sub-run run-\w+/);
    // The failure arrived as a result, not by the root's 120 s deadline.
    expect(seconds).toBeLessThan(60);
    const show = await fedge(['run', 'show', run.id, '--coordinator', root.address]);
    expect(show.stdout).toMatch(/site-a\s+completed\s+1\/1/);
    expect(show.stdout).toMatch(/site-b\s+rejected\s+.*sub-run/);
  }, 120_000);

  it('an async root (FedBuff) runs on sync sites, one linked over gRPC and one over MQTT: each buffered update is one site round', async () => {
    const root = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    expect(root.mqttUrl).toBeDefined();
    const sites = await Promise.all([['site-a', `grpc://${root.address}`], ['site-b', root.mqttUrl!]].map(([name, url]) => startCoordinator(['--upstream', url!, '--name', name!])));
    sites.forEach((s, i) => agent(s.address, i));
    await Promise.all(sites.map((s) => s.waitFor(/joined coordinator/)));
    const { run } = await runTo(root.address, 2, { mode: 'async', rounds: 3, strategy: { name: 'fedavg' }, async: { bufferSize: 2 } });
    expect(run.metrics.filter((m) => m.status === 'completed')).toHaveLength(3);
    const parts = run.roundsDetail.flatMap((r) => r.participants.filter((p) => p.outcome === 'completed'));
    expect(parts.length).toBeGreaterThanOrEqual(6);
    for (const p of parts) {
      expect(['site-a', 'site-b']).toContain(p.name);
      expect(p.metrics?.site_participants).toBe(1);
      expect(p.numExamples).toBeGreaterThan(1000);
    }
    // A second agent at site-a: the site's report brings the root's agent list up to date (the join said 1).
    agent(sites[0]!.address, 2);
    let seen: string | undefined;
    for (let i = 0; i < 100 && seen !== '2'; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const listed = JSON.parse((await fedge(['agent', 'list', '--coordinator', root.address, '--format', 'json'])).stdout) as { name: string; labels: Record<string, string> }[];
      seen = listed.find((a) => a.name === 'site-a')?.labels['fedge.site-agents'];
    }
    expect(seen).toBe('2');
  }, 150_000);

  it('central and local DP at the root and compression on both legs go through sites', async () => {
    const root = await startCoordinator();
    const sites = await Promise.all(['site-a', 'site-b'].map((name) => startCoordinator(['--upstream', `grpc://${root.address}`, '--name', name])));
    sites.forEach((s, i) => agent(s.address, i));
    await Promise.all(sites.map((s) => s.waitFor(/joined coordinator/)));

    // Central DP: the sites' agents clip to 0.5, each site forwards its mean (norm <= 0.5), the root noises the sum.
    const dp = (await runTo(root.address, 2, { rounds: 1, privacy: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 0.3 } })).run;
    expect((dp.metrics[0] as { epsilon?: number }).epsilon).toBeGreaterThan(0);
    const dpParts = dp.roundsDetail[0]!.participants;
    expect(dpParts.map((p) => [p.name, p.outcome]).sort()).toEqual([['site-a', 'completed'], ['site-b', 'completed']]);
    expect((await subRunOf(sites[0]!.address, dp.id)).config.upstream?.clipNorm).toBe(0.5);

    // Local DP: the sites' agents clip and noise (std 0.5 x 0.02), the sites forward the mean as it is.
    const ldp = (await runTo(root.address, 2, { rounds: 1, privacy: { mode: 'local', clipNorm: 0.5, noiseMultiplier: 0.02 } })).run;
    expect(ldp.roundsDetail[0]!.participants.map((p) => [p.name, p.outcome]).sort()).toEqual([['site-a', 'completed'], ['site-b', 'completed']]);
    expect((await subRunOf(sites[1]!.address, ldp.id)).config.upstream).toMatchObject({ clipNorm: 0.5, noiseStd: 0.01 });

    // Compression: agents -> site and site -> root both send top-k 10% + q8.
    const cmp = (await runTo(root.address, 2, { rounds: 1, compression: { uplink: 'topk:0.1+q8' } })).run;
    const cmpParts = cmp.roundsDetail[0]!.participants;
    expect(cmpParts.map((p) => [p.name, p.outcome]).sort()).toEqual([['site-a', 'completed'], ['site-b', 'completed']]);
    for (const p of cmpParts) expect(p.metrics!.compression_ratio!).toBeLessThan(0.2);
    const siteRun = await subRunOf(sites[0]!.address, cmp.id);
    expect(siteRun.config.compression).toMatchObject({ uplink: 'topk:0.1+q8', errorFeedback: false });
    for (const p of siteRun.roundsDetail[0]!.participants) expect(p.metrics!.compression_ratio!).toBeLessThan(0.2);
  }, 150_000);
});

/** The site's sub-run for the root run `rootRunId` (its first round), as `fedge run show` prints it. */
async function subRunOf(site: string, rootRunId: string): Promise<RunJson & { config: { upstream?: { clipNorm?: number; noiseStd?: number }; compression?: Record<string, unknown> } }> {
  const list = await fedge(['run', 'list', '--coordinator', site, '--format', 'json']);
  expect(list.code, list.stderr).toBe(0);
  const sub = (JSON.parse(list.stdout) as { id: string; name?: string; config?: { name?: string } }[]).find((r) => (r.name ?? r.config?.name ?? '').includes(rootRunId));
  expect(sub, `a sub-run for ${rootRunId} in ${list.stdout.slice(0, 500)}`).toBeDefined();
  const show = await fedge(['run', 'show', sub!.id, '--coordinator', site, '--format', 'json']);
  expect(show.code, show.stderr).toBe(0);
  return lastJson(show.stdout);
}

