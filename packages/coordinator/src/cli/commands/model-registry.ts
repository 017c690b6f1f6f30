/**
 * `fedge model list|show|promote|rollback`: the model registry, i.e. every global version of every run with its
 * sha256, round, parent and metrics, and the promoted version serving agents follow.
 */
import { Command } from 'commander';
import { NotFoundError, ValidationError, parseSigningPublicKey, signingKeyFingerprint } from '@fedge/proto';
import { SIGNING_PUB_FILE, readPublicKeyPem } from '../../signing-key.js';
import type { RunView } from '../../coordinator.js';
import type { ModelVersionRecord } from '../../store/store.js';
import { pct, printJson, table } from '../format.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';
import { DEFAULT_THRESHOLDS, canaryAutoOptions, type CanaryAutoOptions } from '../../engine/canary.js';

export interface RegistryEntry extends ModelVersionRecord {
  runId: string;
  runStatus: string;
  latest: boolean;
  /** 'promoted': what serving agents get; 'canary': what the canary agents get during a rollout. */
  serving?: 'promoted' | 'canary';
  trainLoss?: number;
  federatedExamples?: number;
  epsilon?: number;
  /** fedge model show: fingerprint of the key that made `signature` (sha256 of the raw ed25519 key, 16 hex). */
  keyFingerprint?: string;
  /** The open canary of this version: its request fraction and, for a self-healing one, the stable version, window and thresholds. */
  canary?: { fraction: number; agents: string[]; auto?: NonNullable<NonNullable<RunView['promotion']>['canary']>['auto']; live?: RunView['canaryLive'] };
  /** How this version's last self-healing canary ended, and why. */
  lastCanary?: NonNullable<RunView['promotion']>['lastCanary'];
}

/** The registry entries of `runs`, oldest run first, versions ascending. */
export function registryEntries(runs: RunView[]): RegistryEntry[] {
  return runs.flatMap((r) =>
    r.versions.map((v): RegistryEntry => {
      const rec = r.rounds.find((x) => x.version === v.version);
      return {
        runId: r.id,
        runStatus: r.status,
        ...v,
        latest: v.version === r.modelVersion,
        ...(r.promotion?.canary?.version === v.version ? { serving: 'canary' as const } : r.promotion?.version === v.version ? { serving: 'promoted' as const } : {}),
        ...(rec?.trainLoss !== undefined ? { trainLoss: rec.trainLoss } : {}),
        ...(rec?.federatedExamples !== undefined ? { federatedExamples: rec.federatedExamples } : {}),
        ...(rec?.epsilon !== undefined ? { epsilon: rec.epsilon } : {}),
        ...(v.signature && r.signingKeyFingerprint ? { keyFingerprint: r.signingKeyFingerprint } : {}),
        ...(r.promotion?.canary?.version === v.version ? { canary: { fraction: r.promotion.canary.fraction, agents: r.promotion.canary.agentNames, ...(r.promotion.canary.auto ? { auto: r.promotion.canary.auto } : {}), ...(r.canaryLive ? { live: r.canaryLive } : {}) } } : {}),
        ...(r.promotion?.lastCanary?.version === v.version ? { lastCanary: r.promotion.lastCanary } : {}),
      };
    }),
  );
}

const parseVersion = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ValidationError(`VERSION must be an integer >= 0, got "${v}"`);
  return n;
};

export function addRegistryCommands(model: Command): void {
  withAdminOptions(
    model
      .command('list')
      .alias('ls')
      .description('list registered global model versions (sha256, run, round, parent, accuracy)')
      .option('--run <id>', 'only this run\'s versions')
      .addHelpText('after', '\nExamples:\n  fedge model list\n  fedge model list --run run-1a2b3c4d --format json'),
  ).action(async (opts: AdminOpts & { run?: string }) => {
    const runs = await withClient(opts, async (c) => (opts.run ? [await c.getRun(opts.run)] : c.listRuns()));
    const entries = registryEntries(runs);
    if (opts.format === 'json') return printJson(entries);
    console.log(
      table(
        entries.map((e) => ({
          run: e.runId,
          version: `${e.version}${e.latest ? '*' : ''}`,
          round: e.round,
          parent: e.parent,
          sha256: e.sha256.slice(0, 12),
          central: pct(e.centralAccuracy),
          federated: pct(e.federatedAccuracy),
          // A version whose weights retention freed (fedge model gc) keeps its row.
          serving: e.serving ?? (e.collected ? 'collected' : undefined),
          created: e.createdAt,
        })),
        ['run', 'version', 'round', 'parent', 'sha256', 'central', 'federated', 'serving', 'created'],
      ),
    );
  });

  withAdminOptions(
    model
      .command('show')
      .argument('<version>', 'global model version', parseVersion)
      .requiredOption('--run <id>', 'the run the version belongs to')
      .description('show one registered model version')
      .addHelpText('after', '\nExamples:\n  fedge model show 12 --run run-1a2b3c4d\n  fedge model show 0 --run run-1a2b3c4d --format json\n\nsignature: ed25519 (hex) over "fedge-model-v1\\nRUN\\nVERSION\\nSHA256" by the coordinator\'s model signing key\n(signing key: its fingerprint, as agents log it; fedge model key prints the key).'),
  ).action(async (version: number, opts: AdminOpts & { run: string }) => {
    const run = await withClient(opts, (c) => c.getRun(opts.run));
    const e = registryEntries([run]).find((x) => x.version === version);
    if (!e) throw new NotFoundError(`run ${run.id} has no model version ${version} (latest is ${run.modelVersion}); see fedge model list --run ${run.id}`);
    if (opts.format === 'json') return printJson(e);
    const rows: [string, string | number | undefined][] = [
      ['run', `${e.runId} (${e.runStatus})`],
      ['version', `${e.version}${e.latest ? ' (latest)' : ''}`],
      ['serving', e.serving],
      ['sha256', e.sha256],
      ['signature', e.signature],
      ['signing key', e.keyFingerprint],
      ['round', e.round],
      ['parent', e.parent],
      ['created', e.createdAt],
      ['central accuracy', pct(e.centralAccuracy)],
      ['central loss', e.centralLoss],
      ['federated accuracy', pct(e.federatedAccuracy)],
      ['train loss', e.trainLoss],
      ['epsilon', e.epsilon],
      ['canary', e.canary && (e.canary.auto ? `self-healing: ${(e.canary.fraction * 100).toFixed(0)}% of requests beside version ${e.canary.auto.stable} on ${e.canary.agents.join(', ')}; completes at ${e.canary.auto.deadline} unless error rate > ${e.canary.auto.thresholds.maxErrorRate}, p99 ratio > ${e.canary.auto.thresholds.maxLatencyRatio}, drift > ${e.canary.auto.thresholds.maxDrift}${e.canary.auto.thresholds.minAccuracyDelta !== undefined ? `, accuracy delta < ${e.canary.auto.thresholds.minAccuracyDelta}` : ''}` : `on ${e.canary.agents.join(', ')}`)],
      ['canary so far', e.canary?.live && `${e.canary.live.verdict}: ${e.canary.live.figures}`],
      ['last canary', e.lastCanary && `${e.lastCanary.outcome} at ${e.lastCanary.at}: ${e.lastCanary.reason}`],
    ];
    for (const [k, v] of rows) if (v !== undefined) console.log(`${k.padEnd(19)} ${v}`);
  });

  model
    .command('key')
    .description('print the coordinator\'s model signing public key (PEM) for fedge-agent --coordinator-key')
    .option('--data-dir <dir>', 'the coordinator\'s data directory (env FEDGE_DATA_DIR)', process.env.FEDGE_DATA_DIR ?? '.fedge')
    .option('--format <format>', 'text (the PEM) or json ({ publicKey, fingerprint, file })', 'text')
    .addHelpText(
      'after',
      `
Examples:
  fedge model key > coordinator.pub                       # then, on each device:
  fedge-agent --coordinator grpc://coord:7070 --coordinator-key coordinator.pub --data mnist
  fedge model key --data-dir /var/lib/fedge --format json   # with the fingerprint agents and fedge serve log

Reads DATA_DIR/${SIGNING_PUB_FILE} (written by fedge serve on first start, with the private key beside it, mode
0600). Never copy model-signing.key itself: agents only need the public key.`,
    )
    .action((opts: { dataDir: string; format: string }) => {
      const pem = readPublicKeyPem(opts.dataDir);
      const fingerprint = signingKeyFingerprint(parseSigningPublicKey(pem, SIGNING_PUB_FILE));
      if (opts.format === 'json') return printJson({ publicKey: pem, fingerprint, file: SIGNING_PUB_FILE });
      process.stdout.write(pem);
    });

  withAdminOptions(
    model
      .command('promote')
      .argument('<version>', 'global model version to promote', parseVersion)
      .requiredOption('--run <id>', 'the run the version belongs to')
      .option('--canary <fraction>', 'announce to this fraction of online agents first (0 < F < 1); promote again without --canary to complete', parseFraction)
      .option('--margin <m>', 'evaluation gate: accuracy must reach the current promoted version\'s + m (0..1)', parseFraction, 0)
      .option('--force', 'skip the evaluation gate')
      .option('--auto', 'self-healing canary (with --canary F): every serving agent sends F of its requests to the version beside the stable one and reports health; rolled back at once when a threshold is crossed, completed when --window passes')
      .option('--window <duration>', 'with --auto: how long the canary must stay healthy before it completes (30s, 10m, 1h)', '10m')
      .option('--max-error-rate <r>', `with --auto: candidate errors and NaN/Inf outputs over its requests (default ${DEFAULT_THRESHOLDS.maxErrorRate})`, parseFraction)
      .option('--max-latency-ratio <x>', `with --auto: candidate p99 over the stable version's on the same agent (default ${DEFAULT_THRESHOLDS.maxLatencyRatio})`, parsePositive('--max-latency-ratio'))
      .option('--max-drift <p>', `with --auto: prediction drift vs the stable version, PSI of predicted classes (default ${DEFAULT_THRESHOLDS.maxDrift})`, parsePositive('--max-drift'))
      .option('--min-accuracy-delta <d>', 'with --auto: candidate accuracy minus stable accuracy must be at least d, e.g. -0.02 (agents\' holdouts, else the run\'s evaluations; default: not checked)', parseDelta)
      .option('--min-requests <n>', `with --auto: candidate requests before error rate and drift are judged (default ${DEFAULT_THRESHOLDS.minRequests})`, parsePositive('--min-requests'))
      .description('promote a version: serving agents switch to it (from the first promotion on they follow promotions, not every new version)')
      .addHelpText(
        'after',
        '\nExamples:\n  fedge model promote 12 --run run-1a2b3c4d\n  fedge model promote 14 --run run-1a2b3c4d --canary 0.25 --margin 0.01\n  fedge model promote 14 --run run-1a2b3c4d          # completes the canary rollout\n  fedge model promote 9 --run run-1a2b3c4d --force --format json\n  fedge model promote 15 --run run-1a2b3c4d --canary 0.2 --auto --window 10m --max-error-rate 0.01 --max-latency-ratio 2\n  fedge model show 15 --run run-1a2b3c4d              # the canary\'s state, then how it ended and why\n\nWithout --auto, --canary F sends the version to a fraction F of the online agents. With --auto it is a fraction F\nof requests on every serving agent (A/B split, sticky by x-request-id), so each agent compares the candidate with\nthe stable version on the same traffic; fedge_canary_active{run,version} and fedge_canary_rollbacks_total{run} on\nthe coordinator\'s /metrics follow it.',
      ),
  ).action(async (version: number, opts: AdminOpts & { run: string; canary?: number; margin: number; force?: boolean; auto?: boolean; window: string; maxErrorRate?: number; maxLatencyRatio?: number; maxDrift?: number; minAccuracyDelta?: number; minRequests?: number }) => {
    const auto = opts.auto ? autoOptions(opts) : undefined;
    const run = await withClient(opts, (c) =>
      c.promoteModel(opts.run, version, { ...(opts.canary !== undefined ? { canary: opts.canary } : {}), margin: opts.margin, ...(opts.force ? { force: true } : {}), ...(auto ? { auto } : {}) }),
    );
    if (opts.format === 'json') return printJson(run.promotion);
    const p = run.promotion;
    if (p?.canary?.auto && p.canary.version === version) return console.log(`version ${version} of ${run.id} answers ${(p.canary.fraction * 100).toFixed(0)}% of requests beside version ${p.canary.auto.stable} on ${p.canary.agentNames.join(', ')}; completes at ${p.canary.auto.deadline} if healthy, rolls back at once otherwise (fedge model show ${version} --run ${run.id})`);
    if (p?.canary?.version === version) console.log(`version ${version} of ${run.id} is a canary on ${p.canary.agentNames.join(', ')}; the others keep ${p.version ?? 'following the latest version'}`);
    else console.log(`version ${version} of ${run.id} is promoted; serving agents switch to it${p?.previous !== undefined ? ` (rollback returns to ${p.previous})` : ''}`);
  });

  withAdminOptions(
    model
      .command('rollback')
      .requiredOption('--run <id>', 'the run whose promotion to roll back')
      .description('return serving agents to the previously promoted version (or withdraw an open canary)')
      .addHelpText('after', '\nExamples:\n  fedge model rollback --run run-1a2b3c4d\n  fedge model rollback --run run-1a2b3c4d --format json'),
  ).action(async (opts: AdminOpts & { run: string }) => {
    const run = await withClient(opts, (c) => c.rollbackModel(opts.run));
    if (opts.format === 'json') return printJson(run.promotion);
    console.log(`serving agents of ${run.id} return to version ${run.promotion?.version}`);
  });
}

const parseFraction = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new ValidationError(`expected a number in [0, 1], got "${v}"`);
  return n;
};

const parsePositive = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw new ValidationError(`${flag} must be a positive number, got "${v}"`);
  return n;
};

const parseDelta = (v: string): number => {
  const n = Number(v);
  if (!(Number.isFinite(n) && n >= -1 && n <= 1)) throw new ValidationError(`--min-accuracy-delta must be in [-1, 1] (e.g. -0.02: at most 2 points worse), got "${v}"`);
  return n;
};

/** The --auto flags as the admin API's auto options; --auto without --canary is refused here with the fix. */
function autoOptions(o: { canary?: number; window: string; maxErrorRate?: number; maxLatencyRatio?: number; maxDrift?: number; minAccuracyDelta?: number; minRequests?: number }): CanaryAutoOptions {
  if (o.canary === undefined) throw new ValidationError('--auto needs --canary F: the fraction of requests the candidate answers, e.g. --canary 0.2 --auto');
  if (o.minRequests !== undefined && !Number.isInteger(o.minRequests)) throw new ValidationError(`--min-requests must be an integer, got ${o.minRequests}`);
  if (o.maxLatencyRatio !== undefined && o.maxLatencyRatio < 1) throw new ValidationError(`--max-latency-ratio must be >= 1 (candidate p99 / stable p99), got ${o.maxLatencyRatio}`);
  return canaryAutoOptions(o, '--window');
}
