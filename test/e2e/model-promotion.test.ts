/**
 * End to end: serving agents follow `fedge model promote` (canary first, then everyone), `fedge model rollback`, and the
 * evaluation gate; `fedge agent list` shows the version each agent serves (two agents on gRPC, one on MQTT).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator, freePort } from './harness.js';


afterAll(() => killAll());

interface Promotion { version?: number; previous?: number; canary?: { version: number; agentNames: string[] }; history: { action: string }[] }

describe('model promotion', () => {
  it('canary switches only the canary agents, full promote switches all, rollback returns, the gate refuses a worse version unless forced', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    expect(coord.mqttUrl).toBeDefined();
    const names = ['p-0', 'p-1', 'p-2'];
    const ports = await Promise.all(names.map(() => freePort()));
    // p-2 reports what it serves over MQTT, the others over gRPC.
    const agents = names.map((n, i) =>
      startAgent(i === 2 ? coord.mqttUrl! : coord.address, ['--name', n, '--partition', 'iid', '--num-partitions', '3', '--partition-id', String(i), '--seed', '5',
        '--serve', `127.0.0.1:${ports[i]}`, '--serve-name', 'mnist']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/inference server listening/)));
    const served = async (i: number): Promise<string | undefined> => {
      const r = await fetch(`http://127.0.0.1:${ports[i]}/v2/models/mnist`);
      return r.status === 200 ? ((await r.json()) as { version: string }).version : (await r.arrayBuffer(), undefined);
    };
    const expectServed = async (want: Record<string, string>): Promise<void> => {
      const t0 = Date.now();
      let got: Record<string, string | undefined> = {};
      while (Date.now() - t0 < 30_000) {
        got = Object.fromEntries(await Promise.all(names.map(async (n, i) => [n, await served(i)] as const)));
        if (names.every((n) => got[n] === want[n])) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(got).toEqual(want);
    };
    const all = (v: string): Record<string, string> => Object.fromEntries(names.map((n) => [n, v]));
    interface Listed { name: string; transport?: string; servedRun?: string; servedVersion?: number }
    let runId = '';
    // What the coordinator says each agent serves: the agents report it after loading a version.
    const expectListed = async (want: Record<string, string>): Promise<Listed[]> => {
      const t0 = Date.now();
      let got: Record<string, string | undefined> = {};
      let agentsListed: Listed[] = [];
      while (Date.now() - t0 < 30_000) {
        const r = await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json']);
        expect(r.code, r.stderr).toBe(0);
        agentsListed = lastJson<Listed[]>(r.stdout);
        got = Object.fromEntries(names.map((n) => {
          const a = agentsListed.find((x) => x.name === n);
          return [n, a?.servedRun === runId && a.servedVersion !== undefined ? String(a.servedVersion) : undefined];
        }));
        if (names.every((n) => got[n] === want[n])) return agentsListed;
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(got).toEqual(want);
      return agentsListed;
    };

    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--min-agents', '3',
      '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ id: string; status: string; versions: { version: number; centralAccuracy?: number; federatedAccuracy?: number }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    runId = run.id;
    await expectServed(all('3')); // before any promotion: follow the latest version
    await expectListed(all('3'));
    const acc = (v: number) => { const x = run.versions.find((y) => y.version === v)!; return x.federatedAccuracy ?? x.centralAccuracy!; };
    expect(acc(1)).toBeLessThan(acc(3));

    const m = (args: string[]) => fedge(['model', ...args, '--run', run.id, '--coordinator', coord.address, '--format', 'json']);
    // A first promotion of an older version: everyone goes back to it.
    let r = await m(['promote', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson<Promotion>(r.stdout)).toMatchObject({ version: 2 });
    await expectServed(all('2'));
    await expectListed(all('2'));

    // Canary: one of three agents gets version 3, the others keep 2.
    r = await m(['promote', '3', '--canary', '0.3']);
    expect(r.code, r.stderr).toBe(0);
    const canary = lastJson<Promotion>(r.stdout).canary!;
    expect(canary.version).toBe(3);
    expect(canary.agentNames).toHaveLength(1);
    await expectServed(Object.fromEntries(names.map((n) => [n, canary.agentNames.includes(n) ? '3' : '2'])));
    await expectListed(Object.fromEntries(names.map((n) => [n, canary.agentNames.includes(n) ? '3' : '2'])));

    // Completing the rollout.
    r = await m(['promote', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson<Promotion>(r.stdout)).toMatchObject({ version: 3, previous: 2 });
    await expectServed(all('3'));

    // The gate refuses a worse version, naming both figures.
    r = await m(['promote', '1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/evaluation gate: version 1 has accuracy [\d.]+%, below version 3's [\d.]+%/);
    await expectServed(all('3'));

    // Rollback returns to the previous promoted version.
    r = await m(['rollback']);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson<Promotion>(r.stdout)).toMatchObject({ version: 2 });
    await expectServed(all('2'));

    // --force overrides the gate.
    r = await m(['promote', '1', '--force']);
    expect(r.code, r.stderr).toBe(0);
    await expectServed(all('1'));
    const listed = await expectListed(all('1'));
    expect(Object.fromEntries(listed.map((a) => [a.name, a.transport]))).toEqual({ 'p-0': 'grpc', 'p-1': 'grpc', 'p-2': 'mqtt' });
    const tableOut = await fedge(['agent', 'list', '--coordinator', coord.address]);
    expect(tableOut.code, tableOut.stderr).toBe(0);
    expect(tableOut.stdout).toMatch(/SERVING/);
    for (const n of names) expect(tableOut.stdout).toMatch(new RegExp(`${n}\\b.*v1 ${run.id}`));
    const list = await fedge(['model', 'list', '--run', run.id, '--coordinator', coord.address, '--format', 'json']);
    expect(lastJson<{ version: number; serving?: string }[]>(list.stdout).filter((e) => e.serving)).toMatchObject([{ version: 1, serving: 'promoted' }]);
  }, 240_000);
});
