/**
 * `fedge agent list` at fleet scale (issue 16), real processes: 50 simulated agents over MQTT listed 20 a page by
 * following the footer's printed command, 10 more joining between two pages (nothing repeats, nobody present from the
 * start is skipped), server-side filters, --summary, and input errors naming the flag.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FEDGE_AGENT, fedge, killAll, lastJson, startCoordinator, startProcess } from './harness.js';

afterAll(() => killAll());

interface Listed { id: string; name: string; status: string; backend: string; transport?: string }

/** The command the footer prints for the next page, as fedge's arguments (its words are plain: ids, flags, an address). */
function nextArgs(footer: string): string[] | undefined {
  const m = /next page: fedge (.+)$/m.exec(footer);
  return m ? m[1]!.split(' ') : undefined;
}

describe('agent list paging', () => {
  it('50 simulated agents: 20 a page through the printed next-page command, stable while 10 more join, filters, summary, errors', async () => {
    const coord = await startCoordinator(['--in-memory', '--mqtt-listen', '127.0.0.1:0', '--max-token-agents', '100', '--join-rate', '500', '--join-burst', '500']);
    const c = ['--coordinator', coord.address];
    const fleet = startProcess(FEDGE_AGENT, ['--coordinator', coord.mqttUrl!, '--simulate', '50', '--echo', '--name', 'sim'], { FEDGE_LOG_LEVEL: 'warn' });
    await fleet.waitFor(/simulated fleet: 50\/50 joined/, 60_000);

    // Table: 20 rows, then the footer with the next page's command.
    const table = await fedge(['agent', 'list', ...c, '--limit', '20']);
    expect(table.code, table.stderr).toBe(0);
    const rows = table.stdout.split('\n').filter((l) => /^agent-\w+\s+sim-\d\d\s/.test(l));
    expect(rows).toHaveLength(20);
    expect(rows[0]).toMatch(/\bsim-00\s+online\b/);
    expect(table.stdout).toMatch(/^showing 1-20 of 50 agents; next page: fedge agent list --coordinator \S+ --limit 20 --after agent-\w+$/m);

    // JSON: the page is the array it always was; the footer goes to stderr. Follow it page by page.
    const seen: string[] = [];
    let args: string[] | undefined = ['agent', 'list', ...c, '--limit', '20', '--format', 'json'];
    let late: ReturnType<typeof startProcess> | undefined;
    for (let page = 1; args; page++) {
      const r = await fedge(args);
      expect(r.code, r.stderr).toBe(0);
      const agents = JSON.parse(r.stdout) as Listed[];
      expect(agents.length).toBeLessThanOrEqual(20);
      seen.push(...agents.map((a) => a.name));
      args = nextArgs(r.stderr);
      if (args) expect(args.slice(-2)).toEqual(['--after', agents[agents.length - 1]!.id]);
      else expect(r.stderr).toMatch(/; last page$/m);
      if (page === 1) {
        // Ten more join after the first page: simx-* sort after every sim-*, so a later page must list them.
        late = startProcess(FEDGE_AGENT, ['--coordinator', coord.mqttUrl!, '--simulate', '10', '--echo', '--name', 'simx'], { FEDGE_LOG_LEVEL: 'warn' });
        await late.waitFor(/simulated fleet: 10\/10 joined/, 60_000);
      }
      expect(page).toBeLessThan(10);
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...Array.from({ length: 50 }, (_, i) => `sim-${String(i).padStart(2, '0')}`), ...Array.from({ length: 10 }, (_, i) => `simx-${i}`)]);

    // Filters run on the coordinator.
    const names = async (...flags: string[]): Promise<string[]> => {
      const r = await fedge(['agent', 'list', ...c, '--format', 'json', ...flags]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Listed[]).map((a) => a.name);
    };
    expect(await names('--name', 'simx')).toHaveLength(10);
    expect(await names('--name', 'sim-4')).toEqual(Array.from({ length: 10 }, (_, i) => `sim-4${i}`));
    expect(await names('--state', 'online', '--transport', 'mqtt', '--all')).toHaveLength(60);
    expect(await names('--state', 'offline')).toEqual([]);
    expect(await names('--serving', 'none', '--limit', '0')).toHaveLength(60);
    expect(await names('--transport', 'grpc')).toEqual([]);
    const filtered = await fedge(['agent', 'list', ...c, '--name', 'sim-', '--limit', '5']);
    expect(filtered.stdout).toMatch(/^showing 1-5 of 50 matching agents \(60 in all\); next page: /m);

    // The summary: counts only.
    const sum = await fedge(['agent', 'list', ...c, '--summary', '--format', 'json']);
    expect(sum.code, sum.stderr).toBe(0);
    expect(lastJson(sum.stdout)).toMatchObject({ total: 60, fleet: 60, state: { online: 60, busy: 0, idle: 60, offline: 0 }, transport: { mqtt: 60 }, serving: { none: 60 }, auth: { token: 60, key: 0 } });
    const sumTable = await fedge(['agent', 'list', ...c, '--summary']);
    expect(sumTable.stdout).toMatch(/^60 agents: 60 online \(0 busy, 60 idle\), 0 offline$/m);

    // A fleet that stops: its agents go offline, and the filters see it.
    late!.child.kill('SIGTERM');
    await late!.exited;
    for (let i = 0; i < 50 && (await names('--state', 'offline')).length < 10; i++) await new Promise((r) => setTimeout(r, 200));
    expect(await names('--state', 'offline')).toEqual(Array.from({ length: 10 }, (_, i) => `simx-${i}`));

    // Bad input: the error names the flag, the coordinator's too.
    const bad = async (...flags: string[]): Promise<string> => {
      const r = await fedge(['agent', 'list', ...c, ...flags]);
      expect(r.code).not.toBe(0);
      return r.stderr;
    };
    expect(await bad('--limit', '-3')).toMatch(/--limit: .*\(got "-3"\)/);
    expect(await bad('--limit', 'many')).toMatch(/--limit: /);
    expect(await bad('--serving', 'v2')).toMatch(/--serving: expected a version number or "none"/);
    expect(await bad('--state', 'asleep')).toMatch(/--state/);
    expect(await bad('--all', '--limit', '5')).toMatch(/--all and --limit 5: give one of them/);
    expect(await bad('--after', 'agent-nope')).toMatch(/--after: no agent "agent-nope" on this coordinator/);
    expect(await bad('--summary', '--after', 'agent-nope')).toMatch(/--summary counts every matching agent/);

    fleet.child.kill('SIGTERM');
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  }, 180_000);
});
