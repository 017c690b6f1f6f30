/** `fedge run show` / `run list` rendering: task, preprocessing, fleet statistics, lineage and task metrics; MNIST runs unchanged. */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import type { RunView } from '../coordinator.js';
import type { RoundRecord, RunData } from '../store/store.js';
import { headlineMetric, moments, renderRunList, renderRunShow, siteLines } from './run-show.js';
import { participantsNote, summarize } from '../store/round-summary.js';

const FP_A = 'a1b2c3d4e5f6'.repeat(5) + 'abcd';
const FP_B = '0f1e2d3c4b5a'.repeat(5) + '9876';

const data: RunData = {
  task: { type: 'regression', loss: 'huber', huberDelta: 1, optimizer: { name: 'adam', learningRate: 0.001, beta1: 0.9 }, metrics: ['rmse', 'r2'], outputs: 1 },
  preprocessing: {
    normalization: 'zscore',
    features: [
      { name: 'sqft', kind: 'numeric', shift: 1500, scale: 353.5533905932738, mean: 1500 },
      { name: 'city', kind: 'categorical', values: ['paris', 'lyon', 'nice'] },
    ],
    targets: [{ name: 'price', kind: 'numeric' }],
    inputWidth: 4,
  },
  statistics: [
    // 1000, 1500, 1500, 2000 and one missing: mean 1500, population std 353.55.
    { name: 'sqft', type: 'numeric', count: 4, missing: 1, sum: 6000, sumSq: 9.5e6, min: 1000, max: 2000, integer: true },
    { name: 'city', type: 'categorical', count: 5, missing: 0, values: { paris: 3, lyon: 1, nice: 1 }, truncated: false },
    { name: 'price', type: 'numeric', count: 5, missing: 0, sum: 1250, sumSq: 325_000, min: 200, max: 300, integer: false },
  ],
  n: 5,
  agents: [
    { agentId: 'id-a', name: 'edge-a', format: 'csv', n: 3, fingerprint: FP_A },
    { agentId: 'id-b', name: 'edge-b', format: 'csv', n: 2, fingerprint: FP_B },
  ],
  refused: [{ agentId: 'id-c', name: 'edge-c', reason: "column 'sqft' is categorical here but numeric in the fleet" }],
  preparedAt: '2026-01-01T00:00:00.000Z',
};

function round(n: number, extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round: n, baseVersion: n - 1, version: n, status: 'completed', startedAt: '', endedAt: '', seconds: 1.5,
    participants: [
      { agentId: 'id-a', name: 'edge-a', outcome: 'completed', numExamples: 3, fingerprint: FP_A },
      { agentId: 'id-b', name: 'edge-b', outcome: 'completed', numExamples: 2, fingerprint: FP_B },
    ],
    trainLoss: 2.5 / n, bytesSent: 0, bytesReceived: 0, ...extra,
  };
}

const taskRun: RunView = {
  id: 'run-task', status: 'completed', createdAt: '2026-01-01T00:00:00.000Z', startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:00:11.000Z',
  config: parseRunConfig({ model: { builtin: 'mlp', hidden: [64, 32] }, rounds: 2, task: { type: 'regression', target: 'price', loss: 'huber', metrics: ['rmse', 'r2'] }, stopAt: { metric: 'rmse', value: 3.3 } }),
  round: 2, modelVersion: 2, data,
  rounds: [
    round(1, { centralMetrics: { loss: 2.1, rmse: 3.5, r2: 0.79 }, federatedMetrics: { loss: 2.3, rmse: 3.6, r2: 0.77 } }),
    round(2, { centralMetrics: { loss: 1.9, rmse: 3.21, r2: 0.8123 }, federatedMetrics: { loss: 2, rmse: 3.4, r2: 0.8 } }),
  ],
  versions: [{ version: 0, sha256: 'f'.repeat(64), round: 0, createdAt: '', centralMetrics: { loss: 9, rmse: 10.2, r2: -0.3 } }],
  reachedTarget: { version: 2, round: 2, accuracy: Number.NaN, seconds: 9.5, metric: 'rmse', value: 3.21 },
};

const legacyRun: RunView = {
  id: 'run-mnist', status: 'completed', statusMessage: 'completed 2 of 2 rounds', createdAt: '2026-01-01T00:00:00.000Z',
  config: parseRunConfig({ model: 'mnist-mlp', rounds: 2 }),
  round: 2, modelVersion: 2, modelPath: '.fedge/runs/run-mnist/model/model.json',
  rounds: [
    { ...round(1, { federatedAccuracy: 0.9, centralAccuracy: 0.91 }), participants: [{ agentId: 'a', name: 'a', outcome: 'completed' }, { agentId: 'b', name: 'b', outcome: 'dropped', reason: 'deadline' }] },
    { ...round(2, { centralAccuracy: 0.9569 }), participants: [{ agentId: 'a', name: 'a', outcome: 'completed' }] },
  ],
  versions: [],
};

describe('fedge run show', () => {
  it('prints the task, preprocessing, fleet statistics, agents with fingerprints, refusals and per-round task metrics', () => {
    const out = renderRunShow(taskRun).join('\n');
    expect(out).toContain('model mlp 64-32  version 2  round 2/2');
    expect(out).toContain('task regression  target price  loss huber (delta 1)  optimizer adam (lr 0.001, beta1 0.9)  metrics rmse, r2  outputs 1');
    expect(out).toContain('stop at rmse 3.3: reached 3.21 at version 2 (round 2, 9.5s)');
    expect(out).toContain('preprocessing zscore, input width 4 from 2 features');
    expect(out).toMatch(/^sqft\s+numeric\s+1\s+mean 1500 {2}std 353\.6$/m);
    expect(out).toMatch(/^city\s+categorical\s+3\s+one-hot, 3 values$/m);
    expect(out).toContain('fleet statistics: 5 training examples on 2 agents');
    expect(out).toMatch(/^COLUMN\s+TYPE\s+COUNT\s+MISSING\s+MEAN\s+STD\s+MIN\s+MAX\s+VALUES$/m);
    expect(out).toMatch(/^sqft\s+integer\s+4\s+1\s+1500\s+353\.6\s+1000\s+2000$/m);
    expect(out).toMatch(/^city\s+categorical\s+5\s+0\s+-\s+-\s+-\s+-\s+3 values: paris 3, lyon 1, nice 1$/m);
    expect(out).toMatch(/^price \(target\)\s+numeric\s+5\s+0\s+250\s+50\s+200\s+300$/m);
    expect(out).toMatch(/^edge-a\s+csv\s+3\s+a1b2c3d4e5f6$/m);
    expect(out).toMatch(/^edge-b\s+csv\s+2\s+0f1e2d3c4b5a$/m);
    expect(out).not.toContain(FP_A); // the terminal gets 12 hex digits; --format json has all 64
    expect(out).toContain("refused edge-c: column 'sqft' is categorical here but numeric in the fleet");
    expect(out).toContain('initial model (version 0): rmse 10.2  r2 -0.3');
    expect(out).toMatch(/^ROUND\s+VERSION\s+STATUS\s+AGENTS\s+TRAIN LOSS\s+FED RMSE\s+FED R2\s+CENTRAL RMSE\s+CENTRAL R2\s+TIME\s+FAILURES$/m);
    expect(out).toMatch(/^2\s+2\s+completed\s+2\/2\s+1\.2500\s+3\.4\s+0\.8\s+3\.21\s+0\.8123\s+1\.5s\s+-$/m);
    expect(out).not.toMatch(/acc/i);
    expect(out).toContain('which data trained each version');
    expect(out).toMatch(/^1\s+1\s+edge-a a1b2c3d4e5f6, edge-b 0f1e2d3c4b5a$/m);
  });

  it('std comes from sum and sumSq (population, as agents normalize)', () => {
    const m = moments(data.statistics[0] as Extract<RunData['statistics'][number], { type: 'numeric' }>);
    expect(m.mean).toBe(1500);
    expect(m.std).toBeCloseTo(353.5533905932738, 10);
  });

  it('cuts a wide schema and points at --format json', () => {
    const wide = { ...data, statistics: Array.from({ length: 45 }, (_, i) => ({ ...data.statistics[0]!, name: `c${i}` })) };
    const out = renderRunShow({ ...taskRun, data: wide }).join('\n');
    expect(out).toContain('c39');
    expect(out).not.toMatch(/^c40\b/m);
    expect(out).toContain('... 5 more columns (fedge run show RUN --format json lists all)');
  });

  it('a task run still in its statistics step says so', () => {
    const { data: _d, ...rest } = taskRun;
    const out = renderRunShow({ ...rest, status: 'waiting', statusMessage: 'statistics step: waiting for 2 agents to report their data (1 now)', rounds: [], versions: [], endedAt: undefined as never }).join('\n');
    expect(out).toContain('run run-task  waiting (statistics step: waiting for 2 agents to report their data (1 now))');
    expect(out).toContain('task regression: waiting for the statistics step');
    expect(out).not.toContain('(none)');
  });

  it('prints an MNIST run exactly as before', () => {
    expect(renderRunShow(legacyRun).join('\n')).toBe(
      [
        'run run-mnist  completed (completed 2 of 2 rounds)',
        'model "mnist-mlp"  version 2  round 2/2  saved .fedge/runs/run-mnist/model/model.json',
        'ROUND  VERSION  STATUS     AGENTS  TRAIN LOSS  FED ACC  CENTRAL ACC  TIME  FAILURES',
        '1      1        completed  1/2     2.5000      90.00%   91.00%       1.5s  -',
        '2      2        completed  1/1     1.2500      -        95.69%       1.5s  -',
      ].join('\n'),
    );
  });
});

describe('fedge run show: strategy and async buffer', () => {
  it('names the strategy and options and, for async runs, the buffer the run chose', () => {
    const config = parseRunConfig({ model: 'mnist-mlp', rounds: 2, mode: 'async' });
    config.async.bufferSize = 10; // as the async driver records "auto"
    const out = renderRunShow({ ...legacyRun, config }).join('\n');
    expect(out).toContain('strategy fedadam (serverLearningRate 0.005, beta1 0.9, beta2 0.99, tau 0.001)');
    expect(out).toContain('async: buffer 10 updates per version, concurrency all agents, staleness polynomial a 0.5, max staleness 20, speed weighting on');
  });
});

describe('fedge run list', () => {
  it('shows the headline metric of each run\'s task, accuracy for MNIST runs', () => {
    expect(headlineMetric(taskRun)).toEqual({ name: 'rmse', value: 3.21 });
    expect(headlineMetric(legacyRun)).toEqual({ name: 'accuracy', value: 0.9569 });
    const out = renderRunList([taskRun, legacyRun]);
    expect(out).toMatch(/^ID\s+STATUS\s+MODEL\s+ROUND\s+METRIC\s+ELAPSED\s+CREATED$/m);
    expect(out).toMatch(/^run-task\s+completed\s+mlp 64-32\s+2\/2\s+rmse 3\.21\s+10\.0s/m);
    expect(out).toMatch(/^run-mnist\s+completed\s+mnist-mlp\s+2\/2\s+accuracy 95\.69%/m);
  });

  it('an MNIST-only list keeps its accuracy column', () => {
    const out = renderRunList([legacyRun]);
    expect(out).toMatch(/^ID\s+STATUS\s+MODEL\s+ROUND\s+ACCURACY\s+ELAPSED\s+CREATED$/m);
    expect(out).toMatch(/^run-mnist\s+completed\s+mnist-mlp\s+2\/2\s+95\.69%\s+/m);
  });
});

describe('fedge run show: aggregator sites', () => {
  it('lists each site of each round with its agents, examples and, for a failed site, the reason', () => {
    const r = round(1, {
      participants: [
        { agentId: 's-a', name: 'site-a', outcome: 'completed', numExamples: 30_000, metrics: { site_participants: 3, site_invited: 3 } },
        { agentId: 's-b', name: 'site-b', outcome: 'rejected', reason: 'agent_failed: site site-b: sub-run run-1 completed: round 1 got 0 of 1 results' },
        { agentId: 'e-c', name: 'edge-c', outcome: 'completed', numExamples: 7 },
      ],
    });
    const text = siteLines([r]).join('\n');
    expect(text).toMatch(/site-a\s+completed\s+3\/3\s+30000/);
    expect(text).toMatch(/site-b\s+rejected\s+.*sub-run run-1/);
    expect(text).not.toContain('edge-c');
    expect(siteLines([round(1)])).toEqual([]);
  });

  it('a round too large to list reads its summary: agents, lineage and sites, and says where its participants are', () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({ agentId: `id-${i}`, name: `sim-${i}`, outcome: i < 990 ? ('completed' as const) : ('late' as const), numExamples: 3, fingerprint: i % 2 ? FP_A : FP_B }));
    const big = (n: number): RoundRecord => {
      const { participants: _p, ...rest } = round(n);
      return { ...rest, summary: summarize(many), participantsNote: participantsNote('run-task', n, 1000) };
    };
    const out = renderRunShow({ ...taskRun, rounds: [big(1), big(2)] }).join('\n');
    expect(out).toMatch(/^1\s+1\s+completed\s+990\/1000\s/m);
    expect(out).toContain('990 agents, 2 datasets (fedge run participants run-task --round 2)');
    expect(out).toContain('participants of 2 rounds (1000 or more each) are not listed here: fedge run participants run-task --round N [--status failed] [--limit 100]');
    const sites = summarize([
      { agentId: 's-a', name: 'site-a', outcome: 'completed', numExamples: 30_000, metrics: { site_participants: 3, site_invited: 4 } },
      { agentId: 's-b', name: 'site-b', outcome: 'dropped', reason: 'site site-b: sub-run run-x failed: no round completed' },
    ]);
    expect(siteLines([{ ...round(1), participants: undefined, summary: sites } as RoundRecord]).join('\n')).toMatch(/site-a\s+completed\s+3\/4\s+30000[\s\S]*site-b\s+dropped\s+-\s+site site-b: sub-run/);
  });
});
