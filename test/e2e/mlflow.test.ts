/**
 * End to end against a real MLflow tracking server (scripts/install-mlflow.sh, ~/.cache/fedge/venv-mlflow), started
 * here on a loopback port with a SQLite backend and the artifact proxy, stopped by its PID: `fedge serve
 * --mlflow-tracking-uri` logs a run live (params, per-round metrics while it runs, final model and ONNX artifacts),
 * a run whose tracking server is down finishes on time with one warning, and `fedge run export --format mlflow` is
 * read by MLflow 3's own client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

const VENV = join(process.env.FEDGE_CACHE_DIR ?? join(homedir(), '.cache', 'fedge'), 'venv-mlflow');
const ROUNDS = 4;
let server: { url: string; child: ChildProcess; dir: string } | undefined;
let liveSeconds = 0;
let liveRun: { id: string; metrics: { round: number; centralAccuracy?: number }[] } | undefined;
let coordAddress = '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server!.url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface MlflowRun { info: { run_id: string; status: string; run_name: string; artifact_uri: string; end_time?: number }; data: { params?: { key: string; value: string }[]; tags?: { key: string; value: string }[]; metrics?: { key: string; value: number; step: number }[] } }

async function findRun(experiment: string, fedgeRunId: string): Promise<MlflowRun | undefined> {
  const exp = await api<{ experiment: { experiment_id: string } }>(`/api/2.0/mlflow/experiments/get-by-name?experiment_name=${experiment}`).catch(() => undefined);
  if (!exp) return undefined;
  const r = await api<{ runs?: MlflowRun[] }>('/api/2.0/mlflow/runs/search', { experiment_ids: [exp.experiment.experiment_id], filter: `tags.\`fedge.run_id\` = '${fedgeRunId}'` });
  return r.runs?.[0];
}

const history = async (runId: string, key: string) =>
  (await api<{ metrics?: { value: number; step: number }[] }>(`/api/2.0/mlflow/metrics/get-history?run_id=${runId}&metric_key=${key}`)).metrics ?? [];

beforeAll(async () => {
  // Development only: reuse a running server (its startup takes 30 s to minutes on a loaded machine). CI starts its own.
  const reuse = process.env.FEDGE_TEST_MLFLOW_URL;
  if (reuse) return void (server = { url: reuse, child: spawn('true'), dir: '' });
  if (!existsSync(join(VENV, 'bin', 'mlflow'))) throw new Error(`${VENV}/bin/mlflow is missing: run bash scripts/install-mlflow.sh (npm test's pretest does)`);
  const dir = await mkdtemp(join(tmpdir(), 'fedge-mlflow-'));
  const port = await freePort();
  // Its own process group, so stopping it by PID also stops the uvicorn worker it starts.
  const child = spawn(join(VENV, 'bin', 'mlflow'), ['server', '--host', '127.0.0.1', '--port', String(port), '--backend-store-uri', `sqlite:///${dir}/mlflow.db`, '--artifacts-destination', join(dir, 'artifacts'), '--workers', '1'], {
    detached: true,
    stdio: 'ignore',
    // The job runner (huey consumers for UI features) is not needed to track runs.
    env: { ...process.env, MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false' },
  });
  server = { url: `http://127.0.0.1:${port}`, child, dir };
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mlflow server exited with ${child.exitCode}`);
    if (await fetch(`${server.url}/health`).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) throw new Error('mlflow server did not answer /health within 300 s');
    await sleep(500);
  }
}, 320_000);

afterAll(async () => {
  killAll();
  const c = server?.child;
  if (c?.pid && c.exitCode === null) {
    const exited = new Promise((r) => c.once('exit', r));
    process.kill(-c.pid, 'SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (c.exitCode === null) process.kill(-c.pid, 'SIGKILL');
  }
}, 30_000);

async function federate(coordArgs: string[], configFile: string): Promise<{ coord: Awaited<ReturnType<typeof startCoordinator>>; run: Promise<{ run: NonNullable<typeof liveRun>; seconds: number }> }> {
  const coord = await startCoordinator(coordArgs);
  const agents = [0, 1].map((i) => startAgent(coord.address, ['--name', `m-${i}`, '--partition', 'iid', '--num-partitions', '2', '--partition-id', String(i), '--seed', '4']));
  // Generous: an agent loads tfjs and MNIST first, which took over a minute on a 2-core machine at load average 55.
  await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/, 240_000)));
  const t0 = performance.now();
  const run = fedge(['run', 'start', '--coordinator', coord.address, '--config', configFile, '--model', 'mnist-mlp', '--rounds', String(ROUNDS), '--min-agents', '2', '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']).then((res) => {
    expect(res.code, res.stderr).toBe(0);
    const r = lastJson<NonNullable<typeof liveRun> & { status: string }>(res.stdout);
    expect(r.status).toBe('completed');
    return { run: r, seconds: (performance.now() - t0) / 1000 };
  });
  return { coord, run };
}

describe('MLflow tracking against a real mlflow server', () => {
  it('fedge serve --mlflow-tracking-uri logs params, per-round metrics as they happen, tags and the final model + ONNX', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedge-mlflow-run-'));
    const config = join(dir, 'run.json');
    await writeFile(config, JSON.stringify({ name: 'e2e-live', tracking: { experiment: 'fedge-e2e' } }));
    const { coord, run } = await federate(['--mlflow-tracking-uri', server!.url], config);
    coordAddress = coord.address;
    // While the run goes on: a round's metrics are in MLflow before the run has ended there.
    let sawLive = false;
    let done = false;
    const finished = run.finally(() => (done = true));
    const idLine = await coord.waitFor(/MLflow tracking: logging this run/, 120_000);
    const fedgeRunId = /"runId":"(run-[0-9a-f]+)"/.exec(idLine)![1]!;
    while (!done && !sawLive) {
      const r = await findRun('fedge-e2e', fedgeRunId).catch(() => undefined);
      if (r && r.info.status === 'RUNNING' && (await history(r.info.run_id, 'participants')).length > 0) sawLive = true;
      else await sleep(200);
    }
    const { run: record, seconds } = await finished;
    liveRun = record;
    liveSeconds = seconds;
    expect(record.id).toBe(fedgeRunId);
    expect(sawLive, 'a round\'s metrics reached MLflow while the run was RUNNING').toBe(true);

    // The end (status, artifacts) is logged after the run ends, without the run waiting for it.
    let r: MlflowRun | undefined;
    for (let i = 0; i < 300 && r?.info.status !== 'FINISHED'; i++) {
      r = await findRun('fedge-e2e', record.id);
      if (r?.info.status !== 'FINISHED') await sleep(200);
    }
    expect(r?.info.status).toBe('FINISHED');
    const run2 = (await api<{ run: MlflowRun }>(`/api/2.0/mlflow/runs/get?run_id=${r!.info.run_id}`)).run;
    expect(run2.info.run_name).toBe('e2e-live');
    const params = Object.fromEntries((run2.data.params ?? []).map((p) => [p.key, p.value]));
    expect(params).toMatchObject({ model: 'mnist-mlp', rounds: String(ROUNDS), epochs: '1', learningRate: '0.1', 'strategy.name': 'fedavg', 'tracking.experiment': 'fedge-e2e' });
    const tags = Object.fromEntries((run2.data.tags ?? []).map((t) => [t.key, t.value]));
    expect(tags).toMatchObject({ 'fedge.run_id': record.id, 'fedge.status': 'completed', 'fedge.model_version': String(ROUNDS), 'mlflow.user': 'fedge' });

    // Every round, with fedge's own numbers.
    const central = await history(r!.info.run_id, 'central_accuracy');
    expect(central.map((m) => m.step).sort()).toEqual([1, 2, 3, 4]);
    for (const m of central) expect(m.value).toBeCloseTo(record.metrics.find((x) => x.round === m.step)!.centralAccuracy!, 6);
    expect((await history(r!.info.run_id, 'participants')).map((m) => [m.step, m.value]).sort()).toEqual([[1, 2], [2, 2], [3, 2], [4, 2]]);
    for (const m of await history(r!.info.run_id, 'bytes_sent')) expect(m.value).toBeGreaterThan(100_000);
    expect((await history(r!.info.run_id, 'train_loss')).length).toBe(ROUNDS);

    // Artifacts: the saved model and its ONNX export, which loads and predicts.
    const listed = await api<{ files?: { path: string; is_dir: boolean }[] }>(`/api/2.0/mlflow/artifacts/list?run_id=${r!.info.run_id}`);
    expect(listed.files?.map((f) => f.path).sort()).toEqual(expect.arrayContaining(['model', 'model.onnx']));
    const inModel = await api<{ files?: { path: string }[] }>(`/api/2.0/mlflow/artifacts/list?run_id=${r!.info.run_id}&path=model`);
    expect(inModel.files?.map((f) => f.path)).toEqual(expect.arrayContaining(['model/model.json']));
    const where = r!.info.artifact_uri.replace(/^mlflow-artifacts:\//, '');
    const onnx = await fetch(`${server!.url}/api/2.0/mlflow-artifacts/artifacts/${where}/model.onnx`);
    expect(onnx.status).toBe(200);
    const session = await ort.InferenceSession.create(new Uint8Array(await onnx.arrayBuffer()));
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(784), [1, 784]) });
    expect(out[session.outputNames[0]!]!.dims).toEqual([1, 10]);
    await session.release();
    expect(coord.output().split('\n').filter((l) => /"level":(40|50)/.test(l) && /MLflow/.test(l))).toEqual([]);
  }, 400_000);

  it('a tracking server that is down delays nothing: the run finishes on time with one warning', async () => {
    expect(liveSeconds).toBeGreaterThan(0);
    const dir = await mkdtemp(join(tmpdir(), 'fedge-mlflow-down-'));
    const config = join(dir, 'run.json');
    await writeFile(config, JSON.stringify({ name: 'e2e-down' }));
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const { coord, run } = await federate(['--mlflow-tracking-uri', nobody], config);
    const { seconds } = await run;
    console.log(`mlflow e2e: ${ROUNDS}-round run ${liveSeconds.toFixed(1)} s with the tracking server up, ${seconds.toFixed(1)} s with it down`);
    // Retries back off 1 s, 2 s, 4 s... up to 30 s: a run that waited on them would be far slower than the live one.
    expect(seconds, `run took ${seconds.toFixed(1)} s with the server down vs ${liveSeconds.toFixed(1)} s with it up`).toBeLessThan(liveSeconds * 1.5 + 10);
    const warnings = coord.output().split('\n').filter((l) => /"level":40/.test(l) && /MLflow/.test(l));
    expect(warnings.length, warnings.join('\n')).toBe(1);
    expect(warnings[0]).toMatch(/MLflow tracking server unreachable.*ECONNREFUSED|ECONNREFUSED.*MLflow tracking server unreachable/);
    // Stopping the coordinator gives the buffer a bounded grace period, not a hang.
    const t0 = performance.now();
    coord.child.kill('SIGTERM');
    await coord.exited;
    expect(performance.now() - t0).toBeLessThan(15_000);
  }, 300_000);

  it('fedge run export --format mlflow writes a file store that MLflow 3 reads with MLFLOW_ALLOW_FILE_STORE=true', async () => {
    expect(liveRun).toBeDefined();
    const dir = await mkdtemp(join(tmpdir(), 'fedge-mlflow-export-'));
    const res = await fedge(['run', 'export', liveRun!.id, '--coordinator', coordAddress, '--format', 'mlflow', '-o', dir]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri/);
    const script = `
import json, mlflow
from mlflow.tracking import MlflowClient
c = MlflowClient("file://${dir}/mlruns")
r = c.search_runs(["0"])[0]
print(json.dumps({"name": r.info.run_name, "status": r.info.status, "rounds": r.data.params.get("rounds"),
  "central": [[m.step, m.value] for m in c.get_metric_history(r.info.run_id, "central_accuracy")]}))`;
    const { stdout } = await promisify(execFile)(join(VENV, 'bin', 'python'), ['-c', script], { env: { ...process.env, MLFLOW_ALLOW_FILE_STORE: 'true' }, timeout: 240_000 });
    const got = JSON.parse(stdout.trim().split('\n').pop()!) as { name: string; status: string; rounds: string; central: [number, number][] };
    expect(got).toMatchObject({ name: liveRun!.id, status: 'FINISHED', rounds: String(ROUNDS) });
    expect(got.central.map(([s]) => s).sort()).toEqual([1, 2, 3, 4]);
  }, 300_000);
});
