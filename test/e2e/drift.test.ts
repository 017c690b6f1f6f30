/**
 * Data drift end to end: 3 agents train breast-cancer (30 numeric features, binary; one round) and serve the result; each is then
 * fed its own training rows over KServe v2, one with two features shifted by 3 fleet standard deviations (one agent
 * reports over MQTT, the others over gRPC). Its drift
 * gauges, `fedge agent drift` and `fedge run show` flag it, on those features, and nobody else; the coordinator's
 * stored training profiles equal the histograms computed here from the same splits (counts only), and the fleet
 * reference the agents compare with is their sum.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { driftSpec, profileTable, psi, sumProfiles, type DataProfileCounts, type TaskPayload } from '@fedge/proto';
import { FEDGE_AGENT, fedge, freePort, killAll, lastJson, startCoordinator, startProcess } from './harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CSV = path.join(root, 'examples', 'breast-cancer', 'breast-cancer.csv');
const N = 3;
const SEED = 5;
const SHIFTED = ['mean_radius', 'worst_area'];

afterAll(() => killAll());

interface Listing { agent: string; runId: string; version: number; window: number; worstPsi: number; band: string; features: { feature: string; reference: string; psi: number; ks: number; pValue: number }[]; prediction: { reference: string; psi: number }[] }

describe('data drift', () => {
  it('an agent fed shifted inputs is flagged on those features by its gauges, fedge agent drift and run show, and only it', async () => {
    const t0 = performance.now();
    const at = (): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    // drift-1 talks MQTT: reports, drift sections and the fleet reference reply ride both transports.
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    const c = ['--coordinator', coord.address];
    const ports = await Promise.all(Array.from({ length: 2 * N }, () => freePort()));
    const agents = Array.from({ length: N }, (_, i) =>
      startProcess(FEDGE_AGENT, ['--coordinator', i === 1 ? coord.mqttUrl! : `grpc://${coord.address}`, '--name', `drift-${i}`, '--data', `csv:${CSV}`, '--target', 'diagnosis',
        '--partition', 'iid', '--num-partitions', String(N), '--partition-id', String(i), '--seed', String(SEED),
        '--serve', `127.0.0.1:${ports[i]}`, '--metrics', `127.0.0.1:${ports[N + i]}`, '--drift-window', '400', '--report-interval', '1']));
    // The agents' training splits, derived the way fedge-agent derives them (partition, then the 10% local holdout).
    const ml = await import('@fedge/ml');
    const table = await ml.loadTable(`csv:${CSV}`, { target: ['diagnosis'] });
    const trains = Array.from({ length: N }, (_, i) => ml.splitTable(ml.partitionTable(table, { kind: 'iid', numPartitions: N, partitionId: i, seed: SEED }), 0.1, SEED + i).train);
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    const start = await fedge(['run', 'start', ...c, '--config', path.join(root, 'examples', 'breast-cancer', 'run.json'), '--rounds', '1', '--min-agents', String(N), '--format', 'json']);
    expect(start.code, start.stderr).toBe(0);
    const runId = lastJson<{ id: string }>(start.stdout).id;
    type Shown = { status: string; statusMessage?: string; modelVersion: number; data: { task: TaskPayload['task']; preprocessing: TaskPayload['preprocessing'] } };
    let run: Shown | undefined;
    for (let i = 0; i < 240; i++) {
      run = lastJson<Shown>((await fedge(['run', 'show', runId, ...c, '--format', 'json'])).stdout);
      if (['completed', 'failed', 'stopped'].includes(run.status)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(run!.status, run!.statusMessage).toBe('completed');
    console.log(`run ${runId} completed at ${at()} (version ${run!.modelVersion})`);

    // Every agent serves the final version.
    for (let i = 0; i < 120; i++) {
      const list = lastJson<{ name: string; servedVersion?: number }[]>((await fedge(['agent', 'list', ...c, '--format', 'json'])).stdout);
      if (list.filter((a) => a.servedVersion === run!.modelVersion).length === N) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    const transports = lastJson<{ name: string; transport?: string }[]>((await fedge(['agent', 'list', ...c, '--format', 'json'])).stdout);
    expect(transports.map((x) => `${x.name}:${x.transport}`).sort()).toEqual(['drift-0:grpc', 'drift-1:mqtt', 'drift-2:grpc']);

    // The stored training profiles are exactly this test's histograms of the agents' splits on the run's bins.
    const payload = { task: run!.data.task, preprocessing: run!.data.preprocessing };
    const spec = driftSpec(payload);
    expect(spec.features.map((f) => f.feature)).toEqual(payload.preprocessing.features.map((f) => f.name));
    const label = { column: 'diagnosis', values: (payload.preprocessing.targets[0] as { values: string[] }).values };
    const expected: DataProfileCounts[] = trains.map((t) => profileTable(t, spec, label));
    const shownData = lastJson<{ driftProfiles: Record<string, { profile: DataProfileCounts }> }>((await fedge(['run', 'show', runId, ...c, '--data', '--format', 'json'])).stdout);
    for (let i = 0; i < N; i++) expect(shownData.driftProfiles[`drift-${i}`]?.profile, `drift-${i}`).toEqual(expected[i]);
    const fleet = sumProfiles(expected).profile;

    // Each agent gets its own training rows; drift-2 with two features moved by 3 fleet standard deviations.
    const meta = (await (await fetch(`http://127.0.0.1:${ports[0]}/v2/models/fedge`)).json()) as { inputs: { name: string; parameters?: { columns?: string[] } }[] };
    const cols = meta.inputs.find((x) => x.name === 'numeric')!.parameters!.columns!;
    expect(cols).toHaveLength(30);
    const std = (name: string): number => (payload.preprocessing.features.find((f) => f.name === name) as { scale: number }).scale;
    for (let i = 0; i < N; i++) {
      const t = trains[i]!;
      const colValues = cols.map((name) => t.columns.find((x) => x.name === name)!.values as Float64Array);
      for (let r0 = 0; r0 < t.n; r0 += 50) {
        const rows = Math.min(50, t.n - r0);
        const data: number[] = [];
        for (let r = r0; r < r0 + rows; r++) cols.forEach((name, j) => data.push(colValues[j]![r]! + (i === 2 && SHIFTED.includes(name) ? 3 * std(name) : 0)));
        const res = await fetch(`http://127.0.0.1:${ports[i]}/v2/models/fedge/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'numeric', shape: [rows, cols.length], datatype: 'FP32', data }] }) });
        expect(res.status, await res.clone().text()).toBe(200);
      }
    }
    console.log(`inference sent at ${at()}: ${trains.map((t) => t.n).join(', ')} rows`);

    // Reports every second: wait until each agent's drift covers all its rows, against both references.
    let listings: Listing[] = [];
    for (let k = 0; k < 80; k++) {
      listings = lastJson<Listing[]>((await fedge(['agent', 'drift', ...c, '--format', 'json'])).stdout);
      const ready = listings.filter((l) => l.window === trains[Number(l.agent.slice(-1))]!.n && l.features.some((f) => f.reference === 'fleet') && l.features.some((f) => f.reference === 'own'));
      if (ready.length === N) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(listings.map((l) => [l.agent, l.window])).toEqual(expect.arrayContaining(trains.map((t, i) => [`drift-${i}`, t.n])));
    const by = (agent: string) => listings.find((l) => l.agent === agent)!;
    const get = (agent: string, feature: string, reference: string) => by(agent).features.find((f) => f.feature === feature && f.reference === reference)!;

    // Worst first: the shifted agent, flagged (significant) on the shifted features against both references.
    expect(listings[0]!.agent).toBe('drift-2');
    // Significant (PSI > 0.25) for it alone; the others' windows hold their own training rows.
    expect(listings.map((l) => [l.agent, l.band === 'significant'])).toEqual([['drift-2', true], ...listings.slice(1).map((l) => [l.agent, false])]);
    for (const f of SHIFTED) for (const ref of ['own', 'fleet']) {
      const r = get('drift-2', f, ref);
      expect(r.psi, `${f} vs ${ref}`).toBeGreaterThan(1);
      expect(r.ks, `${f} vs ${ref}`).toBeGreaterThan(0.5);
      expect(r.pValue, `${f} vs ${ref}`).toBeLessThan(1e-6);
    }
    // Its other features are its training rows: exactly its own reference (PSI 0, KS 0).
    for (const f of cols.filter((x) => !SHIFTED.includes(x))) expect(get('drift-2', f, 'own'), f).toMatchObject({ psi: 0, ks: 0, pValue: 1 });
    // The others: nothing against their own data, below the moderate band against the fleet's.
    for (const a of ['drift-0', 'drift-1']) {
      for (const r of by(a).features) {
        if (r.reference === 'own') expect(r, `${a} ${r.feature}`).toMatchObject({ psi: 0, ks: 0 });
        else expect(r.psi, `${a} ${r.feature} vs fleet`).toBeLessThan(0.25);
      }
      // The figures vs the fleet are PSI(fleet sum, its own histogram): recomputed here from the expected profiles.
      const i = Number(a.slice(-1));
      for (const f of expected[i]!.features) expect(get(a, f.feature, 'fleet').psi).toBeCloseTo(psi(fleet.features.find((x) => x.feature === f.feature)!.counts, f.counts), 5);
    }

    // The table and its summary name drift-2 only; run show has the drift line; --data the heterogeneity table.
    const table1 = await fedge(['agent', 'drift', ...c]);
    expect(table1.code, table1.stderr).toBe(0);
    const firstRow = table1.stdout.split('\n')[2]!;
    expect(firstRow).toMatch(/drift-2/);
    expect(SHIFTED.some((f) => firstRow.includes(f))).toBe(true);
    expect(table1.stdout).toMatch(/PSI > 0\.25 \(significant\): drift-2$/m);
    const one = lastJson<Listing[]>((await fedge(['agent', 'drift', 'drift-0', ...c, '--format', 'json'])).stdout);
    expect(one.map((l) => l.agent)).toEqual(['drift-0']);
    const show = await fedge(['run', 'show', runId, ...c]);
    expect(show.stdout).toMatch(/drift: 3 serving agent\(s\) report, 1 above PSI 0\.25; worst drift-2 (mean_radius|worst_area) PSI/);
    const hetero = await fedge(['run', 'show', runId, ...c, '--data']);
    expect(hetero.stdout).toMatch(/data heterogeneity of run-\w+: 3 agents/);
    for (let i = 0; i < N; i++) expect(hetero.stdout).toMatch(new RegExp(`drift-${i}\\s+\\d+\\s+${trains[i]!.n}\\s`));

    // The gauges: drift-2's shifted features above 0.25, none of drift-0's.
    const scrape = async (i: number): Promise<Map<string, number>> => {
      const text = await (await fetch(`http://127.0.0.1:${ports[N + i]}/metrics`)).text();
      return new Map([...text.matchAll(/^(fedge_agent_drift_\w+)\{([^}]*)\} (\S+)$/gm)].map((m) => [`${m[1]}{${m[2]}}`, Number(m[3])]));
    };
    const g2 = await scrape(2);
    const g0 = await scrape(0);
    for (const f of SHIFTED) expect(g2.get(`fedge_agent_drift_psi{feature="${f}",reference="fleet"}`)).toBeGreaterThan(0.25);
    expect(g2.get('fedge_agent_drift_ks{feature="mean_radius",reference="own"}')).toBeGreaterThan(0.5);
    expect([...g0].filter(([k]) => k.startsWith('fedge_agent_drift_psi')).length).toBe(60);
    expect([...g0].filter(([k, v]) => k.startsWith('fedge_agent_drift_psi') && v > 0.25)).toEqual([]);
    expect(g0.has('fedge_agent_drift_prediction_psi{reference="fleet"}')).toBe(true);
    console.log(`drift-2 ${SHIFTED.map((f) => `${f} PSI ${get('drift-2', f, 'fleet').psi.toFixed(2)}`).join(', ')} vs fleet; worst of the others ${listings.slice(1).map((l) => `${l.agent} ${l.worstPsi.toFixed(3)} (${[...l.features, ...l.prediction.map((p) => ({ ...p, feature: '(prediction)' }))].sort((x, y) => y.psi - x.psi)[0]?.feature})`).join(', ')}; test ${at()}`);
  }, 120_000);
});
