/**
 * Bad data with real processes: an agent whose schema differs is refused by name at the statistics step, an agent
 * whose data cannot serve the run's task is reported and the round goes on with the others, and an agent whose data
 * does not load exits before connecting with an error naming file:line:column.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FEDGE_AGENT, fedge, freePort, killAll, lastJson, startCoordinator, startProcess, type Proc } from './harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WINE = path.join(root, 'examples', 'wine', 'wine.csv');
const wineLines = readFileSync(WINE, 'utf8').trim().split('\n');
const header = wineLines[0]!.split(',');
const tmp = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-badinput-'));

/** wine.csv with `edit` applied to the cells (header row 0, data rows from 1); returns the new file's path. */
function wineWith(name: string, edit: (cells: string[][]) => void): string {
  const cells = wineLines.map((l) => l.split(','));
  edit(cells);
  const file = path.join(tmp, name);
  writeFileSync(file, cells.map((r) => r.join(',')).join('\n') + '\n');
  return file;
}

function agent(address: string, name: string, data: string, args: string[]): Proc {
  return startProcess(FEDGE_AGENT, ['--coordinator', `grpc://${address}`, '--name', name, '--data', data, ...args]);
}

interface Participant { agentId: string; name: string; outcome: string; reason?: string }
interface Shown {
  id: string;
  status: string;
  statusMessage?: string;
  data?: { agents: { name: string }[]; refused: { agentId: string; name: string; reason: string }[] };
  metrics: { round: number; status: string; completed: number }[];
  roundsDetail: { round: number; status: string; participants: Participant[] }[];
}

async function show(address: string, id: string): Promise<Shown> {
  const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return lastJson<Shown>(r.stdout);
}

async function until(address: string, id: string, done: (r: Shown) => boolean, ms = 90_000): Promise<Shown> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await show(address, id);
    if (done(r) || Date.now() > end) return r;
    await new Promise((res) => setTimeout(res, 250));
  }
}
const ended = (r: Shown): boolean => ['completed', 'failed', 'stopped'].includes(r.status);

/** A small wine run (3 classes, built-in MLP) without a stopAt, so it runs every round. */
const WINE_RUN = ['--task', 'classification', '--target', 'cultivar', '--model', 'mlp', '--hidden', '8', '--optimizer', 'adam', '--lr', '0.01', '--epochs', '1', '--batch-size', '8'];
const part = (i: number, n = 3) => ['--target', 'cultivar', '--partition', 'iid', '--num-partitions', String(n), '--partition-id', String(i), '--seed', '3'];

afterAll(() => killAll());

describe('bad input across the fleet', () => {
  it('an agent whose schema differs is refused at the statistics step, named with the differing column; the run goes on with the others', async () => {
    const renamed = wineWith('wine-renamed.csv', (c) => (c[0]![4] = 'mg')); // column 5, magnesium
    const coord = await startCoordinator();
    const agents = [
      agent(coord.address, 'good-0', `csv:${WINE}`, part(0)),
      agent(coord.address, 'good-1', `csv:${WINE}`, part(1)),
      agent(coord.address, 'renamed', `csv:${renamed}`, part(2)),
    ];
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const start = await fedge(['run', 'start', '--coordinator', coord.address, ...WINE_RUN, '--rounds', '2', '--min-agents', '2', '--format', 'json']);
    expect(start.code, start.stderr).toBe(0);
    const run = await until(coord.address, lastJson<{ id: string }>(start.stdout).id, ended);
    expect(run.status, run.statusMessage).toBe('completed');
    expect(run.data!.agents.map((a) => a.name).sort()).toEqual(['good-0', 'good-1']);
    expect(run.data!.refused).toHaveLength(1);
    expect(run.data!.refused[0]!.name).toBe('renamed');
    expect(run.data!.refused[0]!.reason).toBe("data schema differs from the fleet's: column 5 is 'mg' (numeric) here, 'magnesium' (numeric) in the fleet's schema");
    expect(run.metrics.map((m) => [m.status, m.completed])).toEqual([['completed', 2], ['completed', 2]]);
    for (const r of run.roundsDetail) expect(r.participants.map((p) => [p.name, p.outcome]).sort()).toEqual([['good-0', 'completed'], ['good-1', 'completed']]);
    // The text view names it too.
    const text = await fedge(['run', 'show', run.id, '--coordinator', coord.address]);
    expect(text.stdout).toMatch(/renamed/);
    expect(text.stdout).toMatch(/magnesium/);
    expect(coord.child.exitCode).toBeNull();
  }, 120_000);

  it('an agent whose labels the run\'s model cannot take is reported (agent_failed) every round it is invited, and the rounds complete with the others', async () => {
    // Joins after the statistics step: its class is in none of the fleet's vocabulary the model was sized for.
    const unknownClass = wineWith('wine-class7.csv', (c) => c.slice(1).forEach((r, i) => i % 3 === 0 && (r[13] = 'class_7')));
    const coord = await startCoordinator();
    // `stall` never answers a training task (--fail-rate 1): every round lasts its deadline, which keeps the run going
    // while the late agent starts (seconds on a loaded machine); two results are enough for a round. The run is
    // stopped once the late agent has been reported, so the test does not bet on how fast it starts.
    const agents = [
      agent(coord.address, 'good-0', `csv:${WINE}`, part(0)),
      agent(coord.address, 'good-1', `csv:${WINE}`, part(1)),
      agent(coord.address, 'stall', `csv:${WINE}`, [...part(2), '--fail-rate', '1']),
    ];
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const start = await fedge(['run', 'start', '--coordinator', coord.address, ...WINE_RUN, '--rounds', '30', '--min-agents', '3', '--min-results', '2', '--deadline', '8', '--format', 'json']);
    expect(start.code, start.stderr).toBe(0);
    const id = lastJson<{ id: string }>(start.stdout).id;
    const prepared = await until(coord.address, id, (r) => r.data !== undefined || ended(r));
    expect(prepared.data, prepared.statusMessage).toBeDefined();
    const late = agent(coord.address, 'late', `csv:${unknownClass}`, part(2));
    await late.waitFor(/joined coordinator/);
    const reported = await until(coord.address, id, (r) => ended(r) || r.roundsDetail.some((d) => d.participants.some((p) => p.name === 'late' && p.outcome === 'rejected')));
    expect(reported.status, reported.statusMessage).toBe('running');
    const stop = await fedge(['run', 'stop', id, '--coordinator', coord.address]);
    expect(stop.code, stop.stderr).toBe(0);
    const run = await until(coord.address, id, ended);

    expect(run.status, run.statusMessage).toBe('stopped');
    const detail = JSON.stringify(run.roundsDetail.map((r) => [r.round, r.status, r.participants.map((p) => [p.name, p.outcome, p.reason])]));
    expect(run.metrics.length, detail).toBeGreaterThanOrEqual(1);
    for (const m of run.metrics) expect([m.status, m.completed], detail).toEqual(['completed', 2]);
    for (const r of run.roundsDetail)
      for (const name of ['good-0', 'good-1']) expect(r.participants.find((p) => p.name === name)?.outcome, `round ${r.round} ${name}`).toBe('completed');
    const failed = run.roundsDetail.flatMap((r) => r.participants.filter((p) => p.name === 'late'));
    expect(failed.length, detail).toBeGreaterThanOrEqual(1);
    for (const p of failed) {
      expect(p.outcome).toBe('rejected');
      expect(p.reason).toMatch(/^agent_failed: /);
      // Names the agent's file and the line of the label.
      expect(p.reason).toMatch(new RegExp(`${esc(unknownClass)}:\\d+, target 'cultivar': 'class_7' is not one of the fleet's classes \\(class_0, class_1, class_2\\)`));
    }
    // Nobody crashed: the coordinator answers, the failing agent is still connected.
    expect(coord.child.exitCode).toBeNull();
    expect(late.child.exitCode).toBeNull();
    const list = JSON.parse((await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json'])).stdout) as { name: string; status: string }[];
    expect(list.find((a) => a.name === 'late')?.status).toBe('online');
  }, 180_000);
});

describe('agent-side load errors', () => {
  it('exit before connecting, naming file:line:column (or the file) and what to do', async () => {
    // Rows are 1-based lines of the file; the header is line 1, so data row k is line k + 1.
    const images = path.join(tmp, 'images');
    for (const cls of ['0', '1']) {
      mkdirSync(path.join(images, cls), { recursive: true });
      const src = path.join(root, 'examples', 'digits-images', 'images', cls);
      for (const f of readdirSync(src).slice(0, 3)) copyFileSync(path.join(src, f), path.join(images, cls, f));
    }
    writeFileSync(path.join(images, '1', 'broken.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('not really a png')]));
    const loader = path.join(tmp, 'loader.mjs');
    writeFileSync(loader, "export default async function load() {\n  throw new Error('warehouse connection refused');\n}\n");
    const cols = header.join(', ');

    const cases: { what: string; data: string; args?: string[]; error: RegExp }[] = [
      { what: 'wrong --target', data: `csv:${WINE}`, args: ['--target', 'variety'], error: new RegExp(`--target 'variety': ${esc(WINE)} has no such column; its columns are: ${esc(cols)}`) },
      { what: 'wrong --features', data: `csv:${WINE}`, args: ['--target', 'cultivar', '--features', 'alcohol,colour'], error: new RegExp(`--features 'colour': ${esc(WINE)} has no such column; its columns are: ${esc(cols)}`) },
      {
        what: 'non-numeric cell',
        data: `csv:${wineWith('wine-text.csv', (c) => (c[7]![2] = 'n/a'))}`,
        error: new RegExp(`${esc(path.join(tmp, 'wine-text.csv'))}:8:3 \\(ash\\): 'n/a' is not a number, but 177 of the column's 178 values are; fix the cell .*or pass --categorical ash`),
      },
      { what: 'NaN', data: `csv:${wineWith('wine-nan.csv', (c) => (c[20]![9] = 'NaN'))}`, error: new RegExp(`${esc(path.join(tmp, 'wine-nan.csv'))}:21:10 \\(color_intensity\\): 'NaN' is not a finite number`) },
      { what: 'Inf', data: `csv:${wineWith('wine-inf.csv', (c) => (c[178]![12] = '-inf'))}`, error: new RegExp(`${esc(path.join(tmp, 'wine-inf.csv'))}:179:13 \\(proline\\): '-inf' is not a finite number`) },
      { what: 'missing cell', data: `csv:${wineWith('wine-empty.csv', (c) => (c[3]![0] = ''))}`, error: new RegExp(`${esc(path.join(tmp, 'wine-empty.csv'))}:4:1 \\(alcohol\\): missing value; fill it, or pass --missing drop .*--missing mean`) },
      { what: 'image that does not decode', data: `images:${images}`, args: [], error: new RegExp(`${esc(images)}/1/broken.png: the image does not decode: .*; fix or remove the file`) },
      { what: 'loader module that throws', data: `module:${loader}`, args: [], error: new RegExp(`module:${esc(loader)}: loader threw: warehouse connection refused`) },
    ];
    // No coordinator listens here: an agent that got as far as connecting would log "unreachable" and keep retrying.
    const unused = `127.0.0.1:${await freePort()}`;
    const procs = cases.map((c) => ({ c, p: agent(unused, 'bad', c.data, c.args ?? ['--target', 'cultivar']) }));
    for (const { c, p } of procs) {
      const code = await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('still running'), 60_000))]);
      const out = p.output();
      expect(code, `${c.what}: ${out}`).toBe(1);
      expect(out, c.what).toMatch(/error \(E_VALIDATION\): /);
      expect(out, c.what).toMatch(c.error);
      expect(out, c.what).not.toMatch(/unreachable|joined coordinator|local data ready/);
    }
  }, 120_000);
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
