/** `fedge demo`: a coordinator plus N agent processes on loopback federating the bundled MNIST digits or the user's own file. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { FedgeError, ValidationError } from '@fedge/proto';
import { DEFAULT_JOIN_LIMITS } from '../../engine/join-limits.js';
import { Coordinator, type RunView } from '../../coordinator.js';
import { parseRunConfig } from '../../config/run-config.js';
import { startGrpcServer } from '../../transport/grpc/server.js';
import { parseFormat, pct, printJson } from '../format.js';
import { ProgressPrinter } from '../progress.js';
import { runSummary } from './run.js';
import { fractionArg, posIntArg, positiveArg } from '../args.js';
import { traffic, type Traffic } from '../traffic.js';
import { addTaskFlags, parseCompression, parseHidden, parsePipelineFlag, parseStaleness, parseStrategy, readConfigFile } from '../run-flags.js';
import { CENTRAL_HOLDOUT, dataArgs, demoRunConfig, type DemoOpts } from './demo-config.js';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

function agentDist(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@fedge/edge-agent/package.json')), 'dist');
}

function agentCli(): string {
  return path.join(agentDist(), 'cli', 'main.js');
}

/** Default attack of `--attackers` without `--attack`. */
const DEFAULT_ATTACK = 'sign-flip:10';

/**
 * The attack spec the demo's attackers get, checked with the agent's own parser (so a bad one fails here, naming
 * the flag, instead of in N agent logs); undefined without --attackers.
 */
async function demoAttack(o: DemoOpts): Promise<string | undefined> {
  if (o.attackers === undefined && o.attack === undefined) return undefined;
  const mod = (await import(pathToFileURL(path.join(agentDist(), 'attack.js')).href)) as {
    parseAttack(spec: string, flag: string): unknown;
    formatAttack(a: unknown): string;
  };
  let spec: string;
  try {
    spec = mod.formatAttack(mod.parseAttack(o.attack ?? DEFAULT_ATTACK, '--attack'));
  } catch (err) {
    throw new ValidationError((err as Error).message);
  }
  if (o.attackers === undefined) throw new ValidationError(`--attack ${spec} needs --attackers FRACTION, the share of agents that attack (e.g. --attackers 0.3 --attack ${spec})`);
  return spec;
}

export function demoCommand(): Command {
  // The task flags of `fedge run start` (loss, optimizer, metrics, normalization, stop-at); the demo has its own
  // --target/--task/--hidden and evaluates on the rows it holds back.
  return addTaskFlags(demoBase(), ['target', 'task', 'hidden', 'evalData', 'evalTarget']);
}

function demoBase(): Command {
  return new Command('demo')
    .description('run a local federation: a coordinator and N agent processes train on the bundled MNIST digits or your own data file')
    .option('--data <spec>', 'data every agent splits: mnist, csv:PATH, npy:X.npy,Y.npy, images:DIR, module:PATH.mjs (10% is held out for central evaluation)', 'mnist')
    .option('--target <col>', 'label column (name or 0-based index; repeat for multilabel/multi-output)', collect)
    .addOption(new Option('--task <type>', 'what to learn (default: the config\'s task, else classification)').choices(['classification', 'binary', 'multilabel', 'regression']))
    .addOption(new Option('--missing <policy>', 'empty cells: error (default), drop the row, or mean (the fleet mean)').choices(['error', 'drop', 'mean']))
    .option('--config <file>', 'run config (JSON; task, model, optimizer, stopAt, ...); the flags here override it')
    .addOption(new Option('--agents <n>', 'agent processes to start').default(4).argParser(posIntArg('--agents')))
    .addOption(new Option('--rounds <n>', 'federated rounds (default 10)').argParser(posIntArg('--rounds')))
    .addOption(new Option('--model <name>', 'model: mnist-mlp (default for mnist), mnist-cnn, mlp (default for other data) or a tfjs model.json path'))
    .addOption(new Option('--hidden <sizes>', 'with --model mlp: hidden layer widths, e.g. 64,32').argParser(parseHidden))
    .addOption(new Option('--partition <kind>', 'how the data is split across agents').choices(['iid', 'shards', 'dirichlet']).default('iid'))
    .addOption(new Option('--epochs <n>', 'local epochs per round (default 2; mnist-cnn: 1)').argParser(posIntArg('--epochs')))
    .addOption(new Option('--batch-size <n>', 'local batch size (default 32; mnist-cnn: 10)').argParser(posIntArg('--batch-size')))
    .option('--lr <x>', 'local learning rate of SGD (default: 0.2 for mnist-mlp, 0.1 for mnist-cnn; other data without --lr or an optimizer: Adam at 0.01)', (v) => Number(v))
    .addOption(new Option('--seed <n>', 'seed for partitions, sampling and shuffling').default(42).argParser(posIntArg('--seed')))
    .addOption(new Option('--mode <mode>', "sync (rounds) or async (buffered aggregation, FedBuff; defaults: buffer of min(agents, 10) updates, fedadam at server lr 0.005, slow agents' updates weighted by their task time)").choices(['sync', 'async']).default('sync'))
    .addOption(new Option('--stragglers <fraction>', 'fraction of agents that are slow (simulated)').default(0).argParser(fractionArg('--stragglers')))
    .addOption(new Option('--slowdown <factor>', 'how many times slower the stragglers train').default(10).argParser(positiveArg('--slowdown')))
    .addOption(new Option('--attackers <fraction>', 'fraction of agents that are simulated attackers (the first round(F x agents)); FedAvg has no defence against them').argParser(fractionArg('--attackers')))
    .option('--attack <kind>', `what the attackers do: sign-flip[:SCALE], gaussian:STD, constant:VALUE or label-flip (default ${DEFAULT_ATTACK}; see fedge-agent --help)`)
    .addOption(new Option('--fail-rate <p>', 'every agent abandons a task with this probability (simulated)').argParser(fractionArg('--fail-rate')))
    .addOption(new Option('--target-accuracy <a>', 'stop as soon as the global model reaches this accuracy').argParser(fractionArg('--target-accuracy')))
    .addOption(new Option('--deadline <seconds>', 'sync: round deadline').argParser(positiveArg('--deadline')))
    .addOption(new Option('--over-selection <f>', 'sync: invite this fraction more agents, close on the first results needed').argParser(positiveArg('--over-selection')))
    .addOption(new Option('--late-results <policy>', 'sync: what to do with results after their round closed').choices(['discard', 'next-round']))
    .addOption(new Option('--buffer-size <k>', 'async: updates per new version (default: auto, min(concurrency, 10))').argParser(posIntArg('--buffer-size')))
    .addOption(new Option('--concurrency <n>', 'async: agents training at once (default: all)').argParser(posIntArg('--concurrency')))
    .addOption(new Option('--staleness <fn>', 'discount of late/stale updates: polynomial[:a], hinge[:a,b], constant').argParser(parseStaleness))
    .addOption(new Option('--server-lr <x>', 'server learning rate applied to each aggregated step (default 1; 0.01 for fedadam/fedyogi/fedadagrad)').argParser(positiveArg('--server-lr')))
    .addOption(new Option('--strategy <spec>', 'aggregation strategy NAME[:k=v,...], e.g. fedavgm, fedadam:lr=0.01, fedprox:mu=0.1 (see fedge run start --help)').argParser(parseStrategy))
    .addOption(new Option('--compression <spec>', 'update compression: none, int8, topk[:fraction] or a pipeline such as topk:0.001+q8, q4, fp16').argParser(parseCompression))
    .addOption(new Option('--downlink-compression <spec>', 'model downloads as deltas from the version an agent holds: delta+fp16, delta+q8 or delta').argParser((v: string) => parsePipelineFlag(v, '--downlink-compression', 'downlink')))
    .option('--no-error-feedback', 'with --compression: do not carry what the codec dropped into the next update')
    .option('--secagg', 'secure aggregation: agents mask their updates, the coordinator learns only each round\'s weighted sum')
    .addOption(new Option('--dropout-rate <p>', 'with --secagg: each agent drops out after sending its masked input with this probability (simulated)').argParser(fractionArg('--dropout-rate')))
    .option('--simulated', 'run the agents as one process of N virtual agents (fedge-agent --simulate N): each its own connection, session and partition, all training on one shared worker, so hundreds fit one machine')
    .option('--data-dir <dir>', 'where the final model and agent logs are written', '.fedge')
    .addOption(new Option('--format <format>', 'table or json (json: the last line is one JSON object)').default('table').argParser(parseFormat))
    .addHelpText(
      'after',
      `
Examples:
  fedge demo                                    # 4 agents, 10 rounds, mnist-mlp, IID split
  fedge demo --agents 6 --rounds 20 --partition shards
  fedge demo --model mnist-cnn --rounds 5 --format json
  fedge demo --agents 6 --stragglers 0.33 --slowdown 10 --mode async --rounds 40 --target-accuracy 0.9
  fedge demo --agents 6 --stragglers 0.33 --deadline 5 --over-selection 0.5 --late-results next-round
  fedge demo --compression topk:0.05 --rounds 20         # agents send 5% of their update (error feedback on)
  fedge demo --compression topk:0.001+q8 --downlink-compression delta+fp16   # >1000x smaller updates, half-size model deltas
  fedge demo --agents 10 --attackers 0.3 --attack sign-flip:10   # 3 simulated attackers: watch FedAvg fail
  fedge demo --agents 8 --secagg --dropout-rate 0.3     # secure aggregation; 30% drop out after their masked input
  fedge demo --data csv:houses.csv --target price --task regression --rounds 30
  fedge demo --data csv:examples/breast-cancer/breast-cancer.csv --target diagnosis --task binary --format json
  fedge demo --config examples/auto-mpg/run.json --data csv:examples/auto-mpg/auto-mpg.csv --target mpg --missing mean
  fedge demo --data images:photos/ --task classification --model mlp --hidden 128
  fedge demo --agents 200 --simulated --rounds 5       # 200 virtual agents in one agent process

With --data other than mnist, each agent takes one partition of the file (minus the 10% the coordinator keeps back
for central evaluation; the same seed selects the same rows on every process), and the run goes through the
statistics step: fleet normalization, vocabularies and the built-in MLP sized from the data.

Agent logs go to DATA_DIR/demo/agent-N.log; the final model to DATA_DIR/runs/RUN/model/model.json.`,
    )
    .action(async (opts: DemoOpts) => {
      const t0 = performance.now();
      const base = opts.config ? readConfigFile(opts.config) : {};
      if (opts.dropoutRate !== undefined && !opts.secagg) throw new ValidationError('--dropout-rate: simulates agents dropping out of secure aggregation after their masked input; add --secagg');
      const attack = await demoAttack(opts);
      const nAttackers = attack ? Math.round((opts.attackers ?? 0) * opts.agents) : 0;
      const mnist = opts.data === 'mnist';
      // Round size: every agent by default. With over-selection, invite 1 + o times the agents a round needs;
      // with a deadline and stragglers, a round needs only the fast agents (the slow ones arrive late).
      const nSlow = Math.round(opts.stragglers * opts.agents);
      let min = opts.agents;
      let fraction = 1;
      if (opts.overSelection !== undefined) {
        min = Math.max(1, Math.ceil(opts.agents / (1 + opts.overSelection)));
        fraction = min / opts.agents;
      } else if (opts.deadline !== undefined && nSlow > 0) min = Math.max(1, opts.agents - nSlow);
      const runConfig = demoRunConfig(opts, base, min, fraction);
      // A bad config fails here, before any process starts.
      parseRunConfig(runConfig);
      const logDir = path.resolve(opts.dataDir, 'demo');
      mkdirSync(logDir, { recursive: true });
      if (opts.simulated && (nSlow > 0 || nAttackers > 0 || opts.failRate || opts.dropoutRate))
        throw new ValidationError('--simulated: the virtual agents have no straggler, attacker or failure simulation; drop --stragglers, --attackers, --fail-rate and --dropout-rate, or the --simulated flag');
      // One source address joins every simulated agent: the per-address join limits are for real networks.
      const coord = new Coordinator({ dataDir: opts.dataDir, ...(opts.simulated ? { joinLimits: { ...DEFAULT_JOIN_LIMITS, maxTokenAgents: Math.max(DEFAULT_JOIN_LIMITS.maxTokenAgents, opts.agents), sourceRate: 1000, sourceBurst: 1000 } } : {}) });
      const server = await startGrpcServer(coord, { host: '127.0.0.1', port: 0 });
      const agents: ChildProcess[] = [];
      let finished = false;
      const cleanup = async (): Promise<void> => {
        finished = true;
        for (const a of agents) a.kill('SIGTERM');
        await coord.close();
        await server.close();
      };
      process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
      const joinWait = new AbortController();
      try {
        const cli = agentCli();
        for (let i = 0; i < (opts.simulated ? 1 : opts.agents); i++) {
          const log = path.join(logDir, `agent-${i}.log`);
          const out = createWriteStream(log);
          // The last agents are the stragglers, so which ones are slow is obvious in logs and `fedge agent list`.
          const slow = i >= opts.agents - Math.round(opts.stragglers * opts.agents);
          // The first agents are the attackers (the stragglers are the last), named so in logs and `fedge agent list`.
          const attacker = i < nAttackers;
          const sim = [
            ...(slow && opts.slowdown > 1 ? ['--slowdown', String(opts.slowdown)] : []),
            ...(attacker && attack ? ['--attack', attack] : []),
            ...(opts.failRate ? ['--fail-rate', String(opts.failRate)] : []),
            ...(opts.dropoutRate ? ['--secagg-dropout', String(opts.dropoutRate)] : []),
          ];
          const child = spawn(
            process.execPath,
            opts.simulated
              ? [cli, '--coordinator', `grpc://${server.address}`, '--simulate', String(opts.agents), '--name', 'demo-agent', '--data', opts.data, '--partition', opts.partition, '--seed', String(opts.seed), ...dataArgs(opts)]
              : [cli, '--coordinator', `grpc://${server.address}`, '--name', `demo-agent-${i}${attacker ? '-attacker' : ''}${slow && opts.slowdown > 1 ? '-slow' : ''}`, '--data', opts.data, '--partition', opts.partition,
                '--num-partitions', String(opts.agents), '--partition-id', String(i), '--seed', String(opts.seed), ...sim, ...dataArgs(opts),
                // The demo's agents keep their state (key, SCAFFOLD control variates) in its data dir, not in ~/.fedge-agent.
                '--state-dir', path.join(logDir, `agent-${i}-state`)],
            { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDGE_LOG_LEVEL: process.env.FEDGE_AGENT_LOG_LEVEL ?? (opts.simulated ? 'warn' : 'info') } },
          );
          child.stdout!.pipe(out);
          child.stderr!.pipe(out);
          child.on('exit', (code, signal) => {
            if (!finished) {
              let tail = '';
              try {
                tail = readFileSync(log, 'utf8').split('\n').slice(-8).join('\n');
              } catch { /* no log yet */ }
              if (!joinWait.signal.aborted) {
                // Before the run starts every agent must join: one that exits (bad data flags, usually the same for
                // all) ends the demo now with its own error instead of a 180 s wait.
                const m = /error \((E_[A-Z_]+)\): (.*)/.exec(tail);
                joinWait.abort(new FedgeError(m?.[1] ?? 'E_UNAVAILABLE', `agent ${i} exited (${signal ?? code}) before the run started: ${m?.[2] ?? tail.trim()}\n(log: ${log})`));
              } else process.stderr.write(`agent ${i} exited (${signal ?? code}); the run continues without it. Log ${log}:\n${tail}\n`);
            }
          });
          agents.push(child);
        }
        if (opts.format !== 'json')
          process.stderr.write(`coordinator on ${server.address}; started ${opts.agents} ${opts.simulated ? 'simulated agents in one process' : 'agents'} (${opts.partition} split of ${mnist ? 'the MNIST digits' : opts.data})${attack ? `, ${nAttackers} of them attacker${nAttackers === 1 ? '' : 's'} (${attack})` : ''}; logs in ${logDir}\n`);
        // Start once every agent has joined, so round 1 is not decided by which processes booted first.
        await coord.registry.waitForAvailable(opts.agents, AbortSignal.any([joinWait.signal, AbortSignal.timeout(180_000)])).catch(() => {
          if (joinWait.signal.reason instanceof FedgeError) throw joinWait.signal.reason;
          throw new FedgeError('E_UNAVAILABLE', `only ${coord.registry.available().length} of ${opts.agents} agents joined within 180 s; see the logs in ${logDir}`);
        });
        joinWait.abort('joined');
        const run = await coord.startRun(runConfig);
        const printer = new ProgressPrinter(process.stderr);
        let final: RunView = run;
        let reachedAt: number | undefined;
        await new Promise<void>((resolve) => {
          coord.watchRun(run.id, (view, ended) => {
            const r = view();
            final = r;
            if (r.reachedTarget && reachedAt === undefined) reachedAt = (performance.now() - t0) / 1000;
            if (opts.format !== 'json') printer.update(r);
            if (ended) resolve();
          });
        });
        const last = final.rounds.filter((x) => x.status === 'completed').at(-1);
        const finalMetrics = withoutLoss(last?.centralMetrics ?? last?.federatedMetrics);
        const model = final.config.model;
        const wall = (performance.now() - t0) / 1000;
        const result = {
          runId: final.id,
          status: final.status,
          mode: opts.mode,
          ...(opts.staleness ? { staleness: opts.staleness } : {}),
          ...(opts.serverLr !== undefined || opts.strategy || opts.mode === 'async' ? { strategy: final.config.strategy } : {}),
          // Async: what the defaults chose (bufferSize "auto" is recorded as the K the run picked).
          ...(opts.mode === 'async' ? { async: final.config.async, staleness: final.config.staleness } : {}),
          reached: opts.targetAccuracy === undefined && !final.config.stopAt ? null : !!final.reachedTarget,
          targetAccuracy: opts.targetAccuracy ?? null,
          ...(final.config.stopAt ? { stopAt: final.config.stopAt } : {}),
          reachedAtVersion: final.reachedTarget?.version ?? null,
          model: typeof model === 'string' ? model : 'builtin' in model ? 'mlp' : model.path,
          data: opts.data,
          ...(final.data ? { task: final.data.task.type } : {}),
          agents: opts.agents,
          partition: opts.partition,
          rounds: final.rounds.length,
          versions: final.modelVersion,
          finalAccuracy: last?.centralAccuracy ?? last?.federatedAccuracy ?? null,
          finalMetrics,
          federatedAccuracy: last?.federatedAccuracy ?? null,
          initialAccuracy: final.versions.find((v) => v.version === 0)?.centralAccuracy ?? null,
          // With a target, wallSeconds is the time it took to reach it (from the start of the demo).
          wallSeconds: Number((reachedAt ?? wall).toFixed(2)),
          totalSeconds: Number(wall.toFixed(2)),
          stragglers: Math.round(opts.stragglers * opts.agents),
          ...(attack ? { attackers: nAttackers, attack } : {}),
          modelPath: final.modelPath ?? null,
          // The backend the agents trained on (FEDGE_BACKEND, inherited by the agents, forces one); several, comma-joined.
          backend: [...new Set(coord.listAgents().map((a) => a.backend))].sort().join(','),
          agentBackends: [...new Set(coord.listAgents().map((a) => a.backend))],
          metrics: runSummary(final).metrics,
          // Bytes on the wire ÷ the same updates / downloads as dense float32 (compression.uplink / downlink).
          ...pickRatios(traffic(final.rounds)),
        };
        if (opts.format === 'json') printJson(result);
        else {
          printer.finish(final);
          const where = mnist ? 'held-out digits' : `the ${CENTRAL_HOLDOUT * 100}% of ${opts.data} held out`;
          if (final.data && final.data.task.type !== 'classification')
            process.stderr.write(`final ${Object.entries(finalMetrics ?? {}).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ') || 'metrics n/a'} on ${where}; model saved to ${result.modelPath}\n`);
          else process.stderr.write(`final accuracy ${pct(result.finalAccuracy ?? undefined) ?? 'n/a'} on ${where}; model saved to ${result.modelPath}\n`);
        }
        if (final.status !== 'completed') process.exitCode = 1;
      } finally {
        await cleanup();
      }
    });
}

function pickRatios(t: Traffic): { uplinkRatio: number | null; downlinkRatio: number | null; uplinkBytes: number; downlinkBytes: number } {
  return { uplinkRatio: t.uplinkRatio, downlinkRatio: t.downlinkRatio, uplinkBytes: t.uplinkBytes, downlinkBytes: t.downlinkBytes };
}

function withoutLoss(m: Record<string, number> | undefined): Record<string, number> | null {
  if (!m) return null;
  const { loss: _loss, ...rest } = m;
  return rest;
}
