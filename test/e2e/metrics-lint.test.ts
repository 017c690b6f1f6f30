/**
 * The coordinator's and the agent's Prometheus exposition pass Prometheus' own linter (`promtool check metrics`),
 * scraped from real processes after a round, so counters, histograms and labelled series are all present.
 *
 * Needs .tools/bin/promtool: `bash scripts/install-promtool.sh` (npm test's pretest and CI run it). Without it the
 * test fails with "run scripts/install-promtool.sh" instead of being skipped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROMTOOL = path.join(ROOT, '.tools/bin/promtool');

/** promtool's findings for `text` (empty when lint-clean); throws when promtool itself is missing or fails. */
function promtoolCheck(text: string): string {
  if (!existsSync(PROMTOOL)) throw new Error(`promtool not found at ${path.relative(ROOT, PROMTOOL)}: run scripts/install-promtool.sh`);
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  // 0: clean; 3: lint problems (listed on stderr); anything else: promtool could not parse the exposition.
  if (r.status !== 0 && r.status !== 3) throw new Error(`promtool check metrics exited ${r.status}: ${r.stderr}`);
  return `${r.stdout}${r.stderr}`.trim();
}

describe('Prometheus exposition', () => {
  it('promtool check metrics finds nothing on a real coordinator and agent after a round', { timeout: 120_000 }, async () => {
    const [coordPort, agentPort] = [await freePort(), await freePort()];
    const coord = await startCoordinator(['--metrics', `127.0.0.1:${coordPort}`]);
    const agent = startAgent(coord.address, ['--name', 'lint-0', '--num-partitions', '6', '--partition-id', '0', '--metrics', `127.0.0.1:${agentPort}`]);
    await agent.waitFor(/joined coordinator/);
    const r = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '1', '--epochs', '1', '--watch', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson<{ status: string }>(r.stdout).status).toBe('completed');

    const coordText = await (await fetch(`http://127.0.0.1:${coordPort}/metrics`)).text();
    const agentText = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
    // Both expositions hold what the lint must see: the round's series and, on the coordinator, prom-client's defaults.
    expect(coordText).toMatch(/^fedge_rounds_total\{.*status="completed".*\} 1$/m);
    expect(coordText).toMatch(/^fedge_coordinator_nodejs_active_handles\{/m);
    expect(coordText).not.toMatch(/nodejs_active_\w+_total/);
    expect(agentText).toMatch(/^fedge_agent_\w+/m);
    expect(promtoolCheck(coordText)).toBe('');
    expect(promtoolCheck(agentText)).toBe('');
  });

  it('promtool does flag a gauge named like a counter (the check can fail)', () => {
    const bad = '# HELP fedge_x_total A gauge with a counter name\n# TYPE fedge_x_total gauge\nfedge_x_total 1\n';
    expect(promtoolCheck(bad)).toMatch(/fedge_x_total.*counter/i);
  });
});
