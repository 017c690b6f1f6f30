/**
 * Issue 15's observability on real processes: every metric the chart's alert rules (deploy/k3s/fedge/alerts/) and
 * Grafana dashboard (deploy/k3s/fedge/dashboards/) query is exposed, with a sample, by a real coordinator or agent
 * after a tiny run; and /healthz, /readyz answer on the coordinator's and the agent's metrics listeners and on the
 * agent's serving port, not ready (503, with the reason) until the agent joined and loaded a model.
 *
 * One coordinator, a serving agent with --metrics, and an attacker whose updates the coordinator rejects; a 2-round
 * run under a privacy budget whose promotion gate fails; a promotion, then a canary of the next version; a few
 * inference requests (one invalid).
 */
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = path.join(ROOT, 'deploy/k3s/fedge');

afterAll(() => killAll());

/** fedge_* names in the rule file (comments left out: they name families like fedge_agent_*). */
function ruleMetricNames(): Set<string> {
  const text = readFileSync(path.join(CHART, 'alerts/fedge-rules.yaml'), 'utf8').split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
  return new Set(text.match(/\bfedge_[a-z0-9_]*[a-z0-9]\b/g) ?? []);
}

/** fedge_* names in the dashboard's queries (panel targets and template variables). */
function dashboardMetricNames(): Set<string> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const d = JSON.parse(readFileSync(path.join(CHART, 'dashboards/fedge.json'), 'utf8')) as any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const exprs: string[] = [...d.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr)), ...d.templating.list.map((v: any) => v.definition ?? '')];
  return new Set(exprs.join('\n').match(/\bfedge_[a-z0-9_]*[a-z0-9]\b/g) ?? []);
}

/** Whether `text` has a sample of `name` (a histogram's base name counts through its _bucket/_sum/_count series). */
const hasSample = (text: string, name: string): boolean => new RegExp(`^${name}(_bucket|_sum|_count)?[{ ]`, 'm').test(text);

async function get(url: string): Promise<{ status: number; json: unknown }> {
  const r = await fetch(url);
  return { status: r.status, json: await r.json() };
}

let coordMetrics = '';
let agentMetrics = '';
const urls = { coord: '', agent: '', serve: '' };
const before: Record<string, { status: number; json: unknown }> = {};

beforeAll(async () => {
  const [cPort, aPort, sPort] = [await freePort(), await freePort(), await freePort()];
  urls.coord = `http://127.0.0.1:${cPort}`;
  urls.agent = `http://127.0.0.1:${aPort}`;
  urls.serve = `http://127.0.0.1:${sPort}`;
  const coord = await startCoordinator(['--metrics', `127.0.0.1:${cPort}`]);
  const serving = startAgent(coord.address, ['--name', 'obs-serve', '--num-partitions', '6', '--partition-id', '0', '--metrics', `127.0.0.1:${aPort}`, '--serve', `127.0.0.1:${sPort}`]);
  // Its updates are too large for float32 (Infinity): the coordinator rejects them, so rejection series exist.
  const attacker = startAgent(coord.address, ['--name', 'obs-attack', '--num-partitions', '6', '--partition-id', '1', '--attack', 'constant:1e39']);
  await serving.waitFor(/joined coordinator/, 120_000);
  await attacker.waitFor(/joined coordinator/, 120_000);
  // Joined, nothing served yet.
  before.agentReady = await get(`${urls.agent}/readyz`);
  before.serveReady = await get(`${urls.serve}/readyz`);
  before.coordReady = await get(`${urls.coord}/readyz`);

  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-obs-'));
  // A privacy budget, and a promotion gate no 2-round run passes (fedge_promotion_gate_failed 1).
  writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ privacy: { clipNorm: 1, noiseMultiplier: 0.5, maxEpsilon: 100 }, promotion: { auto: true, minMetric: 0.999 } }));
  const run = await fedge(['run', 'start', '--coordinator', coord.address, '--config', path.join(dir, 'run.json'), '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '2', '--epochs', '1', '--watch', '--format', 'json']);
  expect(run.code, run.stderr).toBe(0);
  const runId = lastJson<{ id: string; status: string }>(run.stdout).id;
  // The gate decides as the run ends: its verdict follows within moments.
  for (let deadline = Date.now() + 20_000; !/^fedge_promotion_gate_failed\{/m.test(await (await fetch(`${urls.coord}/metrics`)).text());) {
    if (Date.now() > deadline) throw new Error(`no promotion gate verdict on /metrics for ${runId}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const args of [['1'], ['2', '--canary', '0.5']]) {
    const p = await fedge(['model', 'promote', ...args, '--run', runId, '--force', '--coordinator', coord.address, '--format', 'json']);
    expect(p.code, `promote ${args.join(' ')}: ${p.stderr}`).toBe(0);
  }
  // Inference on the serving agent once it has a model: three answers and one bad request.
  const digit = Array.from({ length: 784 }, (_, i) => (i % 7) / 7);
  for (let deadline = Date.now() + 60_000; (await fetch(`${urls.serve}/readyz`)).status !== 200;) {
    if (Date.now() > deadline) throw new Error('the serving agent never loaded a model');
    await new Promise((r) => setTimeout(r, 250));
  }
  const infer = (body: unknown): Promise<Response> => fetch(`${urls.serve}/v2/models/fedge/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  for (let i = 0; i < 3; i++) expect((await infer({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: digit }] })).status).toBe(200);
  expect((await infer({ inputs: [{ name: 'input', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] })).status).toBe(400);
  coordMetrics = await (await fetch(`${urls.coord}/metrics`)).text();
  // Drift gauges are recomputed at most once a second after inference: wait for them.
  for (let deadline = Date.now() + 20_000; ;) {
    agentMetrics = await (await fetch(`${urls.agent}/metrics`)).text();
    if (/^fedge_agent_drift_psi\{/m.test(agentMetrics) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
}, 240_000);

describe('metrics the alert rules and the dashboard query', () => {
  it('all exist, with a sample, on a real coordinator or agent', () => {
    const names = new Set([...ruleMetricNames(), ...dashboardMetricNames()]);
    // The check can fail: a name nobody exposes is found missing.
    expect(hasSample(coordMetrics + agentMetrics, 'fedge_no_such_metric')).toBe(false);
    expect(names.size).toBeGreaterThan(15);
    const missing = [...names].filter((n) => !hasSample(coordMetrics, n) && !hasSample(agentMetrics, n));
    expect(missing, `not on the coordinator's or the agent's /metrics:\n${coordMetrics}\n${agentMetrics}`).toEqual([]);
    // Serving series carry the version that answered, and the bad request counts as invalid, not as an error.
    expect(agentMetrics).toMatch(/^fedge_serving_requests_total\{version="\d+",outcome="invalid"\} 1$/m);
    expect(coordMetrics).toMatch(/^fedge_epsilon_max\{run_id="run-[0-9a-f]+"\} 100$/m);
    expect(coordMetrics).toMatch(/^fedge_promoted_model_version\{run_id="run-[0-9a-f]+"\} 1$/m);
    expect(coordMetrics).toMatch(/^fedge_canary_active\{run="run-[0-9a-f]+",version="2"\} 1$/m);
    expect(coordMetrics).toMatch(/^fedge_promotion_gate_failed\{run="run-[0-9a-f]+"\} 1$/m);
  });
});

describe('health endpoints', () => {
  it('say not ready, and why, until the agent serves a model; then every listener is live and ready', async () => {
    expect(before.coordReady).toEqual({ status: 200, json: { ready: true } });
    expect(before.agentReady).toEqual({ status: 503, json: { ready: false, reason: 'serving: no model version loaded yet' } });
    expect(before.serveReady).toEqual({ status: 503, json: { ready: false, reason: 'no model version loaded yet' } });
    for (const base of [urls.coord, urls.agent, urls.serve]) {
      expect(await get(`${base}/healthz`), `${base}/healthz`).toEqual({ status: 200, json: { live: true } });
      expect(await get(`${base}/readyz`), `${base}/readyz`).toEqual({ status: 200, json: { ready: true } });
    }
  });
});
