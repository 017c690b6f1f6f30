/**
 * End to end with real processes on the bundled examples: a regression and a binary federation reach the metric their
 * run.json states, and a run started by hand (fedge serve + 3 fedge-agent on one CSV) records the fleet statistics of
 * the union of the agents' training rows and their data fingerprints, and exports an ONNX model that takes raw columns.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FEDGE_AGENT, fedge, freePort, killAll, lastJson, startCoordinator, startProcess } from './harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const example = (...p: string[]): string => path.join(root, 'examples', ...p);

afterAll(() => killAll());

interface DemoJson {
  status: string;
  reached: boolean | null;
  stopAt?: { metric: string; value: number };
  task: string;
  rounds: number;
  finalMetrics: Record<string, number> | null;
  finalAccuracy: number | null;
  modelPath: string | null;
}

interface RunConfigFile { rounds: number; stopAt: { metric: string; value: number } }

/** `fedge demo --config examples/NAME/run.json ... --format json`, 4 agents, its own data dir. */
async function demo(name: string, data: string, extra: string[]): Promise<{ result: DemoJson; config: RunConfigFile }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), `fedge-e2e-${name}-`));
  const res = await fedge(['demo', '--config', example(name, 'run.json'), '--data', data, ...extra, '--agents', '4', '--data-dir', dataDir, '--format', 'json']);
  expect(res.code, res.stderr.slice(-3000)).toBe(0);
  return { result: lastJson<DemoJson>(res.stdout), config: JSON.parse(readFileSync(example(name, 'run.json'), 'utf8')) as RunConfigFile };
}

describe('tasks end to end', () => {
  it('regression: examples/auto-mpg reaches its stopAt (RMSE) through fedge demo', async () => {
    const { result, config } = await demo('auto-mpg', `csv:${example('auto-mpg', 'auto-mpg.csv')}`, ['--target', 'mpg', '--missing', 'mean']);
    expect(config.stopAt.metric).toBe('rmse');
    expect(result.status).toBe('completed');
    expect(result.task).toBe('regression');
    expect(result.stopAt).toEqual(config.stopAt);
    expect(result.reached).toBe(true);
    expect(result.rounds).toBeLessThanOrEqual(config.rounds);
    const m = result.finalMetrics!;
    expect(Object.keys(m).sort()).toEqual(['mae', 'r2', 'rmse']);
    expect(m['rmse']!).toBeLessThanOrEqual(config.stopAt.value);
    expect(m['mae']!).toBeLessThanOrEqual(m['rmse']!);
    expect(m['r2']!).toBeGreaterThan(0.5);
    expect(result.finalAccuracy).toBeNull(); // no accuracy for a regression
    expect(existsSync(result.modelPath!)).toBe(true);
  }, 120_000);

  it('binary: examples/breast-cancer reaches its stopAt (accuracy) and reports AUC', async () => {
    const { result, config } = await demo('breast-cancer', `csv:${example('breast-cancer', 'breast-cancer.csv')}`, ['--target', 'diagnosis']);
    expect(config.stopAt.metric).toBe('accuracy');
    expect(result.status).toBe('completed');
    expect(result.task).toBe('binary');
    expect(result.reached).toBe(true);
    const m = result.finalMetrics!;
    expect(m['accuracy']!).toBeGreaterThanOrEqual(config.stopAt.value);
    expect(result.finalAccuracy).toBe(m['accuracy']);
    expect(m['auc']!).toBeGreaterThan(0.9);
    expect(m['auc']!).toBeLessThanOrEqual(1);
    expect(m['f1']!).toBeGreaterThan(0.8);
  }, 120_000);

  it('a run started by hand: fleet statistics of the union, fingerprints per agent and participant, ONNX export on raw columns', async () => {
    const csv = example('auto-mpg', 'auto-mpg.csv');
    const SEED = 5, N = 3;
    const coord = await startCoordinator();
    const agents = Array.from({ length: N }, (_, i) =>
      startProcess(FEDGE_AGENT, ['--coordinator', `grpc://${coord.address}`, '--name', `mpg-${i}`, '--data', `csv:${csv}`, '--target', 'mpg', '--missing', 'mean',
        '--partition', 'iid', '--num-partitions', String(N), '--partition-id', String(i), '--seed', String(SEED)]),
    );

    // What the agents hold, derived here the way fedge-agent derives it (partition, then its 10% local holdout).
    const ml = await import('@fedge/ml');
    const table = await ml.loadTable(`csv:${csv}`, { target: ['mpg'], missing: 'mean' });
    const trains = Array.from({ length: N }, (_, i) =>
      ml.splitTable(ml.partitionTable(table, { kind: 'iid', numPartitions: N, partitionId: i, seed: SEED }), 0.1, SEED + i).train);

    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const start = await fedge(['run', 'start', '--coordinator', coord.address, '--config', example('auto-mpg', 'run.json'), '--rounds', '3', '--min-agents', String(N), '--format', 'json']);
    expect(start.code, start.stderr).toBe(0);
    const id = lastJson<{ id: string }>(start.stdout).id;

    type Stat = { name: string; type: string; count: number; missing: number; sum?: number; sumSq?: number; min?: number; max?: number; values?: Record<string, number> };
    interface Shown {
      status: string;
      statusMessage?: string;
      modelPath?: string;
      data: { n: number; statistics: Stat[]; agents: { agentId: string; name: string; n: number; fingerprint: string }[]; refused: unknown[] };
      roundsDetail: { round: number; participants: { agentId: string; name: string; outcome: string; fingerprint?: string }[] }[];
    }
    let run: Shown | undefined;
    for (let i = 0; i < 240; i++) {
      const show = await fedge(['run', 'show', id, '--coordinator', coord.address, '--format', 'json']);
      expect(show.code, show.stderr).toBe(0);
      run = lastJson<Shown>(show.stdout);
      if (['completed', 'failed', 'stopped'].includes(run.status)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(run!.status, run!.statusMessage).toBe('completed');
    const data = run!.data;
    expect(data.refused).toEqual([]);

    // Counts: every training row of every agent, once.
    expect(data.agents.map((a) => a.n).reduce((a, b) => a + b, 0)).toBe(data.n);
    expect(data.n).toBe(trains.reduce((a, t) => a + t.n, 0));
    for (const s of data.statistics) expect(s.count + s.missing, s.name).toBe(data.n);

    // The statistics equal one pass over the union of the agents' training rows (plain loops, not profileTable).
    const close = (got: number, want: number, what: string) => expect(Math.abs(got - want), `${what}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want)));
    expect(data.statistics.map((s) => s.name)).toEqual(table.columns.map((c) => c.name));
    for (const s of data.statistics) {
      const cols = trains.map((t) => t.columns.find((c) => c.name === s.name)!);
      if (s.type === 'numeric') {
        let count = 0, missing = 0, sum = 0, sumSq = 0, min = Infinity, max = -Infinity;
        for (const c of cols)
          for (const v of c.values as Float64Array) {
            if (Number.isNaN(v)) { missing++; continue; }
            count++; sum += v; sumSq += v * v; min = Math.min(min, v); max = Math.max(max, v);
          }
        expect([s.count, s.missing, s.min, s.max], s.name).toEqual([count, missing, min, max]);
        close(s.sum!, sum, `${s.name}.sum`);
        close(s.sumSq!, sumSq, `${s.name}.sumSq`);
      } else {
        expect(s.type).toBe('categorical');
        const counts: Record<string, number> = {};
        for (const c of cols) for (const v of c.values as (string | null)[]) if (v !== null) counts[v] = (counts[v] ?? 0) + 1;
        expect(s.values, s.name).toEqual(counts);
      }
    }
    // horsepower has empty cells in the file: some agents hold missing values, and the fleet counts them.
    expect(data.statistics.find((s) => s.name === 'horsepower')!.missing).toBeGreaterThan(0);

    // Lineage: each agent's fingerprint is that of the rows it trains on (64 hex, distinct), and every completed
    // participant of every round carries its agent's.
    const byName = new Map(data.agents.map((a) => [a.name, a]));
    expect([...byName.keys()].sort()).toEqual(['mpg-0', 'mpg-1', 'mpg-2']);
    trains.forEach((t, i) => expect(byName.get(`mpg-${i}`)!.fingerprint).toBe(t.fingerprint));
    for (const a of data.agents) expect(a.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(data.agents.map((a) => a.fingerprint)).size).toBe(N);
    const byId = new Map(data.agents.map((a) => [a.agentId, a.fingerprint]));
    let completed = 0;
    for (const r of run!.roundsDetail)
      for (const p of r.participants.filter((x) => x.outcome === 'completed')) {
        completed++;
        expect(p.fingerprint, `round ${r.round} ${p.name}`).toBe(byId.get(p.agentId));
      }
    expect(completed).toBeGreaterThanOrEqual(N);

    // The saved model carries the preprocessing: its ONNX export takes raw columns, the categorical one as strings.
    expect(run!.modelPath).toBeTruthy();
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-onnx-'));
    const onnx = path.join(dir, 'mpg.onnx');
    const exp = await fedge(['model', 'export', '--model', run!.modelPath!, '-o', onnx, '--json']);
    expect(exp.code, exp.stderr).toBe(0);
    const summary = lastJson<{ preprocessing: boolean; inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { name: string }[] }>(exp.stdout);
    expect(summary.preprocessing).toBe(true);
    expect(summary.inputs).toEqual([
      { name: 'numeric', datatype: 'FP32', shape: [-1, 6] },
      { name: 'origin', datatype: 'BYTES', shape: [-1, 1] },
    ]);
    expect(summary.outputs.map((o) => o.name)).toEqual(['mpg']);

    // Served over KServe v2: the metadata names the raw inputs, and raw rows (a missing horsepower, a category as a
    // string) predict what the trained tfjs model predicts on the same rows encoded by the agents' encoder.
    const port = await freePort();
    const server = startProcess(FEDGE_AGENT, ['serve', '--model', onnx, '--listen', `127.0.0.1:${port}`, '--name', 'mpg']);
    await server.waitFor(/inference server listening/);
    const meta = (await (await fetch(`http://127.0.0.1:${port}/v2/models/mpg`)).json()) as { inputs: { name: string; datatype: string; parameters?: { columns?: string[]; values?: string[] } }[] };
    expect(meta.inputs.map((i) => [i.name, i.datatype])).toEqual([['numeric', 'FP32'], ['origin', 'BYTES']]);
    expect(meta.inputs[0]!.parameters?.columns).toEqual(['cylinders', 'displacement', 'horsepower', 'weight', 'acceleration', 'year']);
    expect(meta.inputs[1]!.parameters?.values).toEqual(['Europe', 'Japan', 'USA']);

    const numericCols = meta.inputs[0]!.parameters!.columns!;
    const hpMissing = Array.from((table.columns.find((c) => c.name === 'horsepower')!.values as Float64Array).entries()).find(([, v]) => Number.isNaN(v))![0];
    const rows = [0, 1, 2, 100, 250, hpMissing];
    const sample = ml.subsetTable(table, rows);
    const col = (name: string) => sample.columns.find((c) => c.name === name)!;
    const body = {
      inputs: [
        { name: 'numeric', datatype: 'FP32', shape: [rows.length, numericCols.length], data: rows.map((_, r) => numericCols.map((n) => { const v = (col(n).values as Float64Array)[r]!; return Number.isNaN(v) ? null : v; })) },
        { name: 'origin', datatype: 'BYTES', shape: [rows.length, 1], data: (col('origin').values as string[]).slice() },
      ],
    };
    const res = await fetch(`http://127.0.0.1:${port}/v2/models/mpg/infer`, { method: 'POST', body: JSON.stringify(body) });
    const out = (await res.json()) as { outputs: { name: string; data: number[] }[] };
    expect(res.status, JSON.stringify(out)).toBe(200);
    const served = out.outputs.find((o) => o.name === 'mpg')!.data;

    await ml.initBackend('wasm');
    const saved = await ml.loadModelDirMeta(run!.modelPath!);
    const model = await ml.modelFromBlob(await ml.loadModelDir(run!.modelPath!));
    const ds = ml.encodeTable(sample, saved!.preprocessing!, saved!.task!);
    const want = (model.predict(ml.tf.tensor(ds.x, [ds.n, ds.features])) as import('@fedge/ml').tf.Tensor).dataSync();
    expect(served).toHaveLength(rows.length);
    served.forEach((v, i) => expect(Math.abs(v - want[i]!), `row ${rows[i]}`).toBeLessThanOrEqual(1e-4));
    model.dispose();
    expect(coord.child.exitCode).toBeNull();
  }, 120_000);
});
