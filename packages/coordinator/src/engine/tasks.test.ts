/** TaskFactory: every task kind from one place, with the same fields and signatures runs have always sent. */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { makeGlobalModel } from './global-model.js';
import { TaskFactory, agentSeedOffset, roundSeedBase, taskPayloadJson } from './tasks.js';

const model = makeGlobalModel('run-t', 3, { topology: {}, tensors: [{ name: 'w', dtype: 'float32', shape: [4] }], weights: new Float32Array(4) });
const sign = (ref: { runId: string; version: number; sha256: string }): Uint8Array => new TextEncoder().encode(`${ref.runId}/${ref.version}/${ref.sha256}`);

describe('TaskFactory', () => {
  const config = parseRunConfig({ seed: 5, compression: { codec: 'int8' } });
  const tasks = new TaskFactory({ id: 'run-t', config }, { signModel: sign, trainExtras: () => ({ clipNorm: 0.5 }) });

  it('train tasks carry the seed rule, the strategy fields and the codec; evaluate tasks neither', () => {
    const t = tasks.round('train', model, 2, 1, 99);
    expect(t).toMatchObject({ runId: 'run-t', round: 2, kind: 'train', modelVersion: 3, modelSha256: model.sha256, modelBytes: 16, deadlineUnixMs: 99 });
    expect(t.taskId).toMatch(/^run-t\.train\.2\.[0-9a-f]{8}$/);
    expect(t.config).toMatchObject({ seed: 5 * 7919 + 2 * 101 + 1, clipNorm: 0.5, codec: 'int8' });
    expect(new TextDecoder().decode(t.modelSignature)).toBe(`run-t/3/${model.sha256}`);
    const e = tasks.round('evaluate', model, 2, 0, 99);
    expect(e.config.clipNorm).toBeUndefined();
    expect(e.config.codec).toBeUndefined();
  });

  it('announce and promote name the model, are signed, and carry the run task json', () => {
    const data = { task: { type: 'regression' }, preprocessing: { inputWidth: 1 } } as never;
    const f = new TaskFactory({ id: 'run-t', config, data }, { signModel: sign });
    const a = f.announce(model, 4);
    expect(a).toMatchObject({ taskId: 'run-t.announce.3', kind: 'announce', round: 4, modelVersion: 3, deadlineUnixMs: 0 });
    expect(a.config.taskJson).toBe(taskPayloadJson(data).taskJson);
    const p = f.promote(model, 4);
    expect(p.taskId).toMatch(/^run-t\.promote\.3\.[0-9a-f]{8}$/);
    expect(p).toMatchObject({ kind: 'promote', round: 4, modelVersion: 3, config: { epochs: 0, batchSize: 0, learningRate: 0, seed: 0 } });
    expect(p.config.taskJson).toBe(a.config.taskJson);
    expect(p.modelSignature).toBeDefined();
  });

  it('taskSeeds agent: the seed follows the agent name, not the invitation; a site sub-run adds it to the root round\'s base', () => {
    const byName = new TaskFactory({ id: 'run-n', config: parseRunConfig({ seed: 5, taskSeeds: 'agent' }) });
    const a0 = byName.round('train', model, 2, 0, 99, 'edge-a').config.seed;
    expect(byName.round('train', model, 2, 7, 99, 'edge-a').config.seed).toBe(a0);
    expect(a0).toBe(roundSeedBase({ seed: 5 }, 2) + agentSeedOffset('edge-a'));
    expect(byName.round('train', model, 2, 0, 99, 'edge-b').config.seed).not.toBe(a0);
    // The site's sub-run (config.upstream) seeds its agents as the root would have: root base + name offset.
    const rootBase = roundSeedBase({ seed: 5 }, 2);
    const sub = new TaskFactory({ id: 'run-s', config: parseRunConfig({ seed: 1, upstream: { runId: 'run-root', round: 2, taskId: 't', site: 'site-a', seedBase: rootBase } }) });
    expect(sub.round('train', model, 1, 3, 99, 'edge-a').config.seed).toBe(a0);
    // Default (invitation): the index, as runs always did.
    expect(tasks.round('train', model, 2, 3, 99, 'edge-a').config.seed).toBe(rootBase + 3);
  });
});

