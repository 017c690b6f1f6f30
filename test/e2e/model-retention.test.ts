/**
 * Model retention (issue 16): a run with retention.keepLast 2 frees old versions' weights after each round (durable
 * store: the model files go), keeps its best version, refuses to export a collected version with an error naming it
 * and the setting, and `fedge model gc` frees more on demand (dry run first).
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

interface Version { version: number; sha256: string; centralAccuracy?: number; collected?: { keepLast: number } }
interface Gc { runId: string; keepLast: number; dryRun: boolean; collected: { version: number; bytes: number }[]; freedBytes: number; kept: { version: number; reasons: string[] }[] }

describe('model retention', () => {
  it('keeps the last 2 versions and the best, frees the rest, and gc frees more', { timeout: 180_000 }, async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-retention-'));
    const coord = await startCoordinator(['--data-dir', dataDir]);
    for (const i of [0, 1]) await startAgent(coord.address, ['--name', `ret-${i}`, '--num-partitions', '2', '--partition-id', String(i)]).waitFor(/joined/);
    const cfg = path.join(dataDir, 'run.json');
    writeFileSync(cfg, JSON.stringify({ model: 'mnist-mlp', rounds: 5, epochs: 1, learningRate: 0.1, agentsPerRound: { fraction: 1, min: 2 }, retention: { keepLast: 2 } }));
    const c = ['--coordinator', coord.address];
    const res = await fedge(['run', 'start', ...c, '--config', cfg, '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ id: string; status: string; versions: Version[] }>(res.stdout);
    expect(run.status).toBe('completed');
    const shown = lastJson<{ versions: Version[] }>((await fedge(['run', 'show', run.id, ...c, '--format', 'json'])).stdout);
    const best = [...shown.versions].sort((a, b) => (b.centralAccuracy ?? 0) - (a.centralAccuracy ?? 0))[0]!.version;
    const kept = new Set([4, 5, best]);
    expect(shown.versions.filter((v) => v.collected).map((v) => v.version)).toEqual([0, 1, 2, 3].filter((v) => !kept.has(v)));
    for (const v of shown.versions) if (v.collected) expect(v.collected.keepLast).toBe(2);
    // On disk: one weights file per kept version, none for the collected ones.
    const bins = readdirSync(path.join(dataDir, 'models')).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, 64));
    expect(bins.sort()).toEqual(shown.versions.filter((v) => !v.collected).map((v) => v.sha256).sort());

    // (--version 0 means the latest to model export, so take a collected version above 0.)
    const gone = shown.versions.find((v) => v.collected && v.version > 0)!.version;
    const exp = await fedge(['model', 'export', '--run', run.id, '--version', String(gone), ...c, '-o', path.join(dataDir, 'x.onnx')]);
    expect(exp.code).not.toBe(0);
    expect(exp.stderr).toMatch(new RegExp(`version ${gone} of run ${run.id} was removed by model retention .*keepLast 2`));
    const list = await fedge(['model', 'list', '--run', run.id, ...c]);
    expect(list.stdout).toMatch(/collected/);

    const dry = lastJson<Gc[]>((await fedge(['model', 'gc', '--run', run.id, '--keep-last', '1', '--dry-run', ...c, '--format', 'json'])).stdout);
    const wouldGo = [4, 5].filter((v) => v !== best && v !== 5);
    expect(dry[0]!.collected.map((x) => x.version)).toEqual(wouldGo);
    expect(dry[0]!.dryRun).toBe(true);
    const gc = await fedge(['model', 'gc', '--run', run.id, '--keep-last', '1', ...c, '--format', 'json']);
    expect(gc.code, gc.stderr).toBe(0);
    const out = lastJson<Gc[]>(gc.stdout)[0]!;
    expect(out.collected.map((x) => x.version)).toEqual(wouldGo);
    if (wouldGo.length) expect(out.freedBytes).toBeGreaterThan(400_000); // mnist-mlp: ~0.4 MB of float32 per version
    expect(out.kept.find((k) => k.version === best)!.reasons).toContain('best');
    expect(out.kept.find((k) => k.version === 5)!.reasons).toEqual(expect.arrayContaining(['recent', 'current']));
    const left = readdirSync(path.join(dataDir, 'models')).filter((f) => f.endsWith('.bin')).length;
    expect(left).toBe(new Set([5, best]).size);
    // The latest version still exports.
    const ok = await fedge(['model', 'export', '--run', run.id, ...c, '-o', path.join(dataDir, 'latest.onnx'), '--format', 'json']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});
