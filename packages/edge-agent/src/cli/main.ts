#!/usr/bin/env node
/** The `fedge-agent` CLI: joins a coordinator and trains on local data until stopped. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { FedgeError, grpcTarget, loadClientTls, parseGrpcUrl, parseHostPort, type ClientTls } from '@fedge/proto';
import { Agent } from '../agent.js';
import { TaskExecutor } from '../executor.js';
import { ModelTrust, loadCoordinatorKey } from '../model-trust.js';
import { encodeLegacy, loadLocalData } from '../data.js';
import { GrpcConnection } from '../transport/grpc/grpc-connection.js';
import { MqttConnection, isMqttUrl, type MqttConnectionOptions } from '../transport/mqtt/mqtt-connection.js';
import type { CoordinatorConnection } from '../transport/connection.js';
import { logger } from '../log.js';
import { addServingOptions, createGlobalModelServer, serveCommand, startInferenceServer } from './serve.js';
import { reportHealth } from '../serving/health-report.js';
import { HoldoutScorer } from '../serving/holdout-accuracy.js';
import { completionCommand } from './completion.js';
import { homedir, hostname } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AgentIdentity } from '../identity.js';
import { AgentMetrics, startMetricsServer } from '../metrics.js';
import { AgentHealth } from '../health.js';
import { trackDrift } from '../drift/wire.js';
import { AttackSpecError, describeAttack, parseAttack, type Attack } from '../attack.js';

const int = (flag: string, min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}, got "${v}"`);
  return n;
};

interface Opts {
  coordinator: string;
  data: string;
  name: string;
  partition: 'iid' | 'shards' | 'dirichlet';
  numPartitions: number;
  partitionId: number;
  seed: number;
  alpha?: number;
  holdout: number;
  centralHoldout?: number;
  target?: string[];
  features?: string[];
  categorical?: string[];
  missing?: 'error' | 'drop' | 'mean';
  scale?: number;
  imageSize?: [number, number];
  channels?: 1 | 3;
  backend: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
  joinToken?: string;
  enrollCode?: string;
  enrollCodeFile?: string;
  mqttDynsec?: boolean;
  stateDir?: string;
  serve?: string;
  metrics?: string;
  serveName: string;
  serveQuantize: 'none' | 'int8';
  serveActivations: 'dynamic' | 'static';
  serveThreads: number;
  serveMaxBodyBytes: number;
  serveMaxBatch: number;
  serveGrpcPort?: number;
  serveAbFraction?: number;
  driftWindow: number;
  reportInterval?: number;
  slowdown?: number;
  failRate?: number;
  disconnectRate?: number;
  secaggDropout?: number;
  secaggTamper?: boolean;
  partialWork?: number;
  attack?: Attack;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  coordinatorKey?: string;
  simulate?: number;
  echo?: boolean;
  simulateRate: number;
}

/** A comma-separated list option: `--features a,b,c`. */
const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');

const rate = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${flag} must be a probability in [0, 1], got "${v}"`);
  return n;
};

const program = new Command('fedge-agent')
  .description('fedge edge agent: joins a coordinator, trains on local data, sends model updates')
  .version('0.1.0')
  .option('--coordinator <url>', 'coordinator: grpc://HOST:PORT (grpcs:// for TLS), or mqtt://HOST:PORT / mqtts://HOST:PORT for its MQTT broker (env FEDGE_COORDINATOR)', process.env.FEDGE_COORDINATOR)
  .option('--tls-ca <file>', 'PEM CA that signed the coordinator\'s (or broker\'s) certificate, for grpcs:// and mqtts:// (default: the system\'s CAs; env FEDGE_TLS_CA)', process.env.FEDGE_TLS_CA)
  .option('--tls-cert <file>', 'PEM client certificate, for a coordinator requiring mutual TLS (with --tls-key; env FEDGE_TLS_CERT)', process.env.FEDGE_TLS_CERT)
  .option('--tls-key <file>', 'PEM private key of --tls-cert (env FEDGE_TLS_KEY)', process.env.FEDGE_TLS_KEY)
  .option('--data <spec>', 'local data: mnist | csv:PATH | npy:FEATURES.npy,TARGETS.npy | images:DIR | module:PATH.mjs | idx:IMAGES,LABELS (env FEDGE_DATA)', process.env.FEDGE_DATA)
  .option('--target <col>', 'target column, by name or 0-based index; repeat for multi-label / multi-output (default: csv without a header: the first column; npy, images, mnist: their labels)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
  .option('--features <cols>', 'feature columns, comma-separated names or indices (default: every column that is not a target)', list)
  .option('--categorical <cols>', 'columns to treat as categories even when they hold numbers (zip codes, ids), comma-separated', list)
  .addOption(new Option('--missing <policy>', 'empty cells / NaN: error (naming file:line:column), drop the row, or mean (features: the fleet\'s mean fills them)').choices(['error', 'drop', 'mean']))
  .option('--scale <n>', 'divide numeric features by N (e.g. 255 for 0-255 pixels); nothing is scaled implicitly', (v) => {
    const n = Number(v);
    if (!(n > 0 && Number.isFinite(n))) throw new InvalidArgumentError(`--scale must be a positive number, got "${v}"`);
    return n;
  })
  .option('--image-size <HxW>', 'images:DIR: resize every image to H x W pixels (default: the first image\'s size)', (v): [number, number] => {
    const m = /^(\d+)x(\d+)$/i.exec(v);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new InvalidArgumentError(`--image-size must be HxW, e.g. 32x32, got "${v}"`);
    return [Number(m[1]), Number(m[2])];
  })
  .option('--channels <n>', 'images:DIR: 1 (grey) or 3 (RGB); default 3 if any image has colour, else 1', (v): 1 | 3 => {
    if (v !== '1' && v !== '3') throw new InvalidArgumentError(`--channels must be 1 or 3, got "${v}"`);
    return Number(v) as 1 | 3;
  })
  .option('--name <name>', 'agent name shown by `fedge agent list`', process.env.FEDGE_AGENT_NAME ?? hostname())
  .addOption(new Option('--partition <kind>', 'split of the data across agents, any --data (shards and dirichlet group by the first target)').choices(['iid', 'shards', 'dirichlet']).default('iid'))
  .addOption(new Option('--num-partitions <n>', 'number of agents sharing the data').default(1).argParser(int('--num-partitions', 1)))
  .addOption(new Option('--partition-id <i>', 'this agent\'s partition, 0..N-1').default(0).argParser(int('--partition-id', 0)))
  .addOption(new Option('--seed <n>', 'seed of the split: use the same on every agent').default(42).argParser(int('--seed', 0)))
  .option('--alpha <x>', 'Dirichlet concentration for --partition dirichlet (default 0.5)', (v) => {
    const n = Number(v);
    if (!(n > 0)) throw new InvalidArgumentError(`--alpha must be > 0, got "${v}"`);
    return n;
  })
  .addOption(new Option('--central-holdout <fraction>', 'leave out the rows a seeded split (--seed) keeps for the coordinator\'s central evaluation (run config evaluation.holdout; fedge demo uses 0.1)').argParser((v) => {
    const n = Number(v);
    if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`--central-holdout must be in (0, 1), got "${v}"`);
    return n;
  }))
  .addOption(new Option('--holdout <fraction>', 'share of local data kept for federated evaluation').default(0.1).argParser((v) => {
    const n = Number(v);
    if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`--holdout must be in [0, 1), got "${v}"`);
    return n;
  }))
  .addOption(new Option('--backend <name>', 'TensorFlow.js backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default(process.env.FEDGE_BACKEND ?? 'auto'))
  .option('--join-token <token>', 'token the coordinator requires (env FEDGE_JOIN_TOKEN)')
  .option('--enroll-code <code>', 'one-time code from `fedge agent enroll NAME` (NAME must be this agent\'s --name): enroll this device\'s key; later starts need neither code nor join token (env FEDGE_ENROLL_CODE)')
  .option('--enroll-code-file <file>', 'read the enrollment code from this file (e.g. a mounted Secret); a missing file means no code (env FEDGE_ENROLL_CODE_FILE)', process.env.FEDGE_ENROLL_CODE_FILE)
  .option('--mqtt-dynsec', 'over MQTT, log in to the broker as fedge-device:NAME with the password derived from --enroll-code (a Mosquitto whose logins fedge serve --mqtt-dynsec keeps); kept in --state-dir, so later starts need neither (env FEDGE_MQTT_DYNSEC=true)')
  .option('--state-dir <dir>', 'where the agent keeps its ed25519 key (0600), enrollment and SCAFFOLD control variates (scaffold/RUN.f32) (env FEDGE_AGENT_STATE_DIR; default ~/.fedge-agent/NAME)', process.env.FEDGE_AGENT_STATE_DIR)
  .option('--coordinator-key <file>', 'the coordinator\'s model signing public key (PEM, from `fedge model key`): models not signed with it are refused (default: trust the key of the first join; env FEDGE_COORDINATOR_KEY)', process.env.FEDGE_COORDINATOR_KEY)
  .option('--serve <host:port>', 'also serve the latest global model over HTTP (KServe v2), hot-swapped on every new version')
  .option('--metrics <host:port>', 'serve Prometheus metrics at GET /metrics, and the probes GET /healthz and /readyz (env FEDGE_AGENT_METRICS; off by default, bind to loopback)', process.env.FEDGE_AGENT_METRICS)
  .option('--serve-name <name>', 'model name for --serve: /v2/models/NAME/infer', 'fedge')
  .addOption(new Option('--serve-quantize <kind>', 'weights of the served ONNX model').choices(['none', 'int8']).default('int8'))
  .addOption(new Option('--serve-activations <mode>', 'int8 activations: per call (dynamic) or calibrated on the local training split (static)').choices(['dynamic', 'static']).default('dynamic'))
  .addOption(new Option('--serve-ab-fraction <f>', 'A/B test locally: send this fraction (0..1) of requests to the newest loaded version and the rest to the one before, sticky by x-request-id (a coordinator canary overrides it)').argParser(rate('--serve-ab-fraction')))
  .option('--drift-window <n>', 'with --serve: track data drift over the last N served examples against this agent\'s training data and the fleet\'s (fedge_agent_drift_* metrics, fedge agent drift); 0: off', int('--drift-window', 0), 1000)
  .option('--report-interval <seconds>', 'status report to the coordinator every this many seconds besides on change (served version, drift, canary health); an agent with nothing to report (it serves no model) reports only on change and once per session', int('--report-interval', 1))
  .option('--slowdown <factor>', 'simulation: train this many times slower, like a weaker device', (v) => {
    const n = Number(v);
    if (!(n >= 1)) throw new InvalidArgumentError(`--slowdown must be a number >= 1, got "${v}"`);
    return n;
  })
  .option('--fail-rate <p>', 'simulation: probability of abandoning a training task without a result', rate('--fail-rate'))
  .option('--disconnect-rate <p>', 'simulation: probability of dropping the connection mid-task', rate('--disconnect-rate'))
  .option('--secagg-dropout <p>', 'simulation: in a secure-aggregation round, probability of dropping out right after the masked input was accepted (no unmask shares)', rate('--secagg-dropout'))
  .option('--secagg-tamper', 'simulation: in every secure-aggregation round, corrupt the share ciphertext sent to one neighbor (its MAC check fails and this agent is dropped from the round)')
  .option('--partial-work <p>', 'simulation: a straggler. Per training task, with probability P train only a uniformly random number of epochs in [1, E-1] of the task\'s E, and send that (FedProx\'s systems heterogeneity)', rate('--partial-work'))
  .option('--simulate <n>', 'simulation: run N virtual agents in this process, each its own connection, session and partition i of N (named NAME-i); they train serially on one shared worker, or with --echo send a fixed update', int('--simulate', 1))
  .option('--echo', 'with --simulate: do not train; download and verify the model, then send a fixed small delta of its shape (thousands of agents fit one machine; --data optional)')
  .addOption(new Option('--simulate-rate <n>', 'with --simulate: virtual agents started per second').default(500).argParser(int('--simulate-rate', 1)))
  .option('--attack <kind>', 'simulation: a malicious agent. sign-flip[:SCALE] sends -SCALE x its update (default 1), gaussian:STD sends N(0, STD^2) noise, constant:VALUE sends VALUE for every parameter, label-flip trains on flipped labels (held-out evaluation stays honest)', (v): Attack => {
    try {
      return parseAttack(v, '--attack');
    } catch (err) {
      throw err instanceof AttackSpecError ? new InvalidArgumentError(err.message) : err;
    }
  })
  .addHelpText(
    'after',
    `
Examples:
  fedge-agent --coordinator grpc://127.0.0.1:7070 --data mnist
  fedge-agent --coordinator grpc://coord:7070 --data mnist --partition shards --num-partitions 10 --partition-id 3 --seed 7
  fedge-agent --coordinator grpc://coord:7070 --data csv:/data/local.csv --name sensor-17
  fedge-agent --coordinator grpc://coord:7070 --data csv:houses.csv --target price --missing mean
  fedge-agent --coordinator grpc://coord:7070 --data csv:patients.csv --target sick --categorical zip --features age,bmi,zip
  fedge-agent --coordinator grpc://coord:7070 --data csv:houses.csv --target price --num-partitions 4 --partition-id 1   # a quarter of one file
  fedge-agent --coordinator grpc://coord:7070 --data npy:X.npy,y.npy
  fedge-agent --coordinator grpc://coord:7070 --data images:photos/ --image-size 32x32 --channels 3
  fedge-agent --coordinator grpc://coord:7070 --data module:./load.mjs
  fedge-agent --coordinator grpc://coord:7070 --data mnist --serve 127.0.0.1:8080 --serve-name mnist   # and serve it
  fedge-agent serve --model model.int8.onnx --listen 127.0.0.1:8080 --name mnist                       # standalone
  fedge-agent --coordinator grpc://127.0.0.1:7070 --data mnist --slowdown 10 --disconnect-rate 0.1   # a slow, flaky device
  fedge-agent --coordinator grpc://127.0.0.1:7070 --data mnist --attack sign-flip:10   # a simulated attacker (robust aggregation tests)
  fedge-agent --coordinator grpc://127.0.0.1:7070 --data mnist --partial-work 0.9   # a straggler: 90% of tasks end after 1..E-1 epochs
  fedge-agent --coordinator mqtt://127.0.0.1:1883 --data mnist                # over MQTT (fedge serve's embedded broker)
  fedge-agent --coordinator mqtts://broker.example:8883 --data mnist --join-token s3cret   # MQTT over TLS
  fedge-agent --coordinator grpcs://coord:7070 --tls-ca ca.pem --data mnist   # gRPC over TLS, a private CA
  fedge-agent --coordinator grpc://coord:7070 --coordinator-key coordinator.pub --data mnist   # only models signed by this key

Transport: the --coordinator scheme picks it. grpc:// (or bare HOST:PORT) talks to fedge serve --listen, grpcs://
to the same with TLS (fedge serve --tls-cert/--tls-key);
mqtt:// and mqtts:// talk to the broker the coordinator uses (fedge serve --mqtt-listen or --mqtt-broker).
Over MQTT the join token is also the broker password.

Data formats (--partition, --num-partitions, --partition-id, --seed and --holdout apply to every one):
  csv:PATH     RFC 4180 CSV. The first line is a header when none of its cells is empty or a number; otherwise the
               columns are c0, c1, ... and, without --target, c0 is the label (the old fedge CSV layout). Numeric
               columns take any finite number (no implicit /255: pass --scale 255 for pixels); text columns are
               categorical. Empty cells are missing (--missing); a stray word in a numeric column, NaN or Inf is an
               error naming file:line:column.
  npy:F,T      NumPy arrays: features (n, d) or (n, h, w[, c]), targets (n) or (n, k); float, int, uint, bool.
  images:DIR   one subfolder per class of PNG/JPEG files (the folder name is the label); pixels in [0, 1].
  module:PATH  an ES module whose default export (or load) resolves to { features, targets, shape?, featureNames?,
               targetNames? }.
  idx:I,L      the MNIST IDX files (e.g. train-images-idx3-ubyte, train-labels-idx1-ubyte), optionally gzipped.`,
  )
  .action(async (o: Opts) => {
    // Checked here, not with requiredOption: commander would demand them of the `serve` subcommand too.
    if (!o.coordinator) program.error("error: required option '--coordinator <url>' not specified");
    const joinToken = o.joinToken ?? process.env.FEDGE_JOIN_TOKEN;
    if (o.echo && o.simulate === undefined) program.error('error: --echo simulates agents: use it with --simulate N');
    if (o.simulate !== undefined) {
      const tls = loadClientTls({ ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey });
      const { runSimulation } = await import('./simulate.js');
      await runSimulation({
        count: o.simulate,
        echo: !!o.echo,
        namePrefix: o.name,
        ...(o.data ? { data: { spec: o.data, partition: o.partition, seed: o.seed, holdoutFraction: o.holdout, ...(o.centralHoldout !== undefined ? { centralHoldout: o.centralHoldout } : {}), ...(o.alpha !== undefined ? { alpha: o.alpha } : {}), ...(o.target ? { target: o.target } : {}), ...(o.features ? { features: o.features } : {}), ...(o.categorical ? { categorical: o.categorical } : {}), ...(o.missing !== undefined ? { missing: o.missing } : {}), ...(o.scale !== undefined ? { scale: o.scale } : {}) } } : {}),
        backend: o.backend,
        ...(joinToken ? { joinToken } : {}),
        startRate: o.simulateRate,
        seed: o.seed,
        connect: coordinatorConnector(o.coordinator, joinToken, tls, {}, true),
      });
      process.exit(0);
    }
    if (!o.data) program.error("error: required option '--data <spec>' not specified");
    // The code is a secret: read here, handed to the agent, never logged.
    const enrollCode = o.enrollCode ?? process.env.FEDGE_ENROLL_CODE ?? readCodeFile(o.enrollCodeFile);
    // Read once at start: a missing or mismatched file stops the agent here, not at every reconnect.
    const tls = loadClientTls({ ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey });
    const identity = loadIdentity(o.stateDir ?? path.join(homedir(), '.fedge-agent', o.name), o.name, enrollCode);
    // Over MQTT an enrolled device also needs no join token for the broker: its password is signed per connection,
    // or, on a dynamic-security Mosquitto, its own login derived from the enrollment code.
    const dynsec = !!o.mqttDynsec || /^(true|1)$/.test(process.env.FEDGE_MQTT_DYNSEC ?? '');
    // A fleet sets FEDGE_MQTT_DYNSEC for every node; a node with no code and no enrolled key joins with the token, as without it.
    if (dynsec && !identity) logger.warn({ name: o.name }, '--mqtt-dynsec: this agent has no enrolled key and no --enroll-code: logging in to the broker with the join token (fedge-agent) instead');
    const login = identity?.brokerLogin(o.name, enrollCode, dynsec);
    const mqttLogin: MqttLogin = login ? { username: login.username, password: () => login.password } : identity ? { password: (clientId) => identity.mqttPassword(clientId, o.name, enrollCode) } : {};
    const connect = coordinatorConnector(o.coordinator, joinToken, tls, mqttLogin);
    const data = await loadLocalData({
      spec: o.data,
      partition: o.partition,
      numPartitions: o.numPartitions,
      partitionId: o.partitionId,
      seed: o.seed,
      holdoutFraction: o.holdout,
      ...(o.centralHoldout !== undefined ? { centralHoldout: o.centralHoldout } : {}),
      ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
      ...(o.target ? { target: o.target } : {}),
      ...(o.features ? { features: o.features } : {}),
      ...(o.categorical ? { categorical: o.categorical } : {}),
      ...(o.missing !== undefined ? { missing: o.missing } : {}),
      ...(o.scale !== undefined ? { scale: o.scale } : {}),
      ...(o.imageSize !== undefined ? { imageSize: o.imageSize } : {}),
      ...(o.channels !== undefined ? { channels: o.channels } : {}),
    });
    logger.info({ data: data.description, train: data.train.n, holdout: data.holdout.n, columns: data.profile.columns.length, fingerprint: data.profile.fingerprint }, 'local data ready');
    // Training runs in the executor's worker thread; the backend it initialised is the one the agent reports.
    // Model signatures: the configured key, else the first join reply's (trust on first use; model-trust.ts).
    const trust = new ModelTrust(o.coordinatorKey ? loadCoordinatorKey(o.coordinatorKey) : undefined);
    if (o.attack) logger.warn({ attack: o.attack }, `simulated attacker: ${describeAttack(o.attack)}`);
    const executor = new TaskExecutor(data, {
      backend: o.backend,
      trust,
      // SCAFFOLD runs keep this agent's control variate here, so a restarted agent continues with it.
      stateDir: o.stateDir ?? path.join(homedir(), '.fedge-agent', o.name),
      ...(o.slowdown !== undefined ? { slowdown: o.slowdown } : {}),
      ...(o.attack ? { attack: o.attack, attackSeed: o.seed * 1000 + o.partitionId + 1 } : {}),
      ...(o.partialWork !== undefined ? { partialWork: o.partialWork, partialWorkSeed: o.seed * 1000 + o.partitionId + 1 } : {}),
    });
    const backend = await executor.start();
    logger.info({ backend: backend.name, simd: backend.simd }, `tfjs backend (training worker): ${backend.note}`);
    // Static int8 calibration of served versions runs tfjs on this thread (once per version, not per request).
    if (o.serve && o.serveActivations === 'static') await (await import('@fedge/ml')).initBackend(o.backend);
    const serving = o.serve
      ? createGlobalModelServer(o.serveName, { threads: o.serveThreads, maxBodyBytes: o.serveMaxBodyBytes, maxBatch: o.serveMaxBatch, quantize: o.serveQuantize, activations: o.serveActivations }, o.serveActivations === 'static' ? (await encodeLegacy(data)).train : undefined)
      : undefined;
    if (serving && o.serveAbFraction !== undefined) serving.slot.abFraction = o.serveAbFraction;
    if (serving && o.serve) await startInferenceServer(serving.slot, o.serve, { threads: o.serveThreads, maxBodyBytes: o.serveMaxBodyBytes, maxBatch: o.serveMaxBatch, ...(o.serveGrpcPort !== undefined ? { grpcPort: o.serveGrpcPort } : {}) });
    // GET /readyz on the metrics listener: joined (or reconnecting within the grace) and, serving, a model loaded.
    const health = new AgentHealth(serving ? { servedVersion: () => serving.slot.current?.version } : {});
    let metrics: AgentMetrics | undefined;
    if (o.metrics) {
      const hp = parseHostPort(o.metrics, '--metrics');
      metrics = new AgentMetrics({ backend: backend.name, name: o.name, version: '0.1.0' });
      if (serving) {
        const slot = serving.slot;
        metrics.serving = slot.stats;
        metrics.servedVersion = () => {
          const c = slot.current;
          return c ? { version: c.version, ...(c.info.run !== undefined ? { run: String(c.info.run) } : {}) } : undefined;
        };
      }
      const { address } = await startMetricsServer(metrics, hp.host.replace(/^\[|\]$/g, ''), hp.port, () => health.readiness());
      logger.info({ address: `${address.address}:${address.port}` }, `metrics on http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/metrics`);
    }
    const m = metrics;
    const agent = new Agent(health.observe(() => (m ? m.instrument(connect()) : connect())), data, {
      ...(serving ? { serving } : {}),
      executor,
      name: o.name,
      backend: backend.name,
      ...(joinToken ? { joinToken } : {}),
      ...(identity ? { identity } : {}),
      ...(identity && enrollCode ? { enrollCode } : {}),
      ...(o.reportInterval !== undefined ? { reportIntervalMs: o.reportInterval * 1000 } : {}),
      simulate: {
        ...(o.slowdown !== undefined ? { slowdown: o.slowdown } : {}),
        ...(o.failRate !== undefined ? { failRate: o.failRate } : {}),
        ...(o.disconnectRate !== undefined ? { disconnectRate: o.disconnectRate } : {}),
        ...(o.secaggDropout !== undefined ? { secaggDropout: o.secaggDropout } : {}),
        ...(o.secaggTamper ? { secaggTamper: true } : {}),
        seed: o.seed * 1000 + o.partitionId + 1,
      },
    });
    // Serving figures per version in every status report; often during a coordinator canary (its evidence).
    // Holdout accuracy per version for a canary's min-accuracy-delta (encoded once, on first use).
    if (serving) reportHealth(agent.reporter, serving.slot, new HoldoutScorer(serving.slot, async () => (await encodeLegacy(data)).holdout));
    if (serving && o.driftWindow > 0) trackDrift({ agent, server: serving, data, window: o.driftWindow, ...(metrics ? { metrics } : {}) });
    const stop = (sig: string): void => {
      logger.info({ signal: sig }, 'stopping');
      agent.stop();
      setTimeout(() => process.exit(0), 1000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    await agent.runForever();
    process.exit(0);
  });

/** The code in `file`, or none when there is no such file (the node has no code, e.g. it enrolled earlier). */
function readCodeFile(file: string | undefined): string | undefined {
  if (!file || !existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}

/**
 * The device identity: created with an enrollment code, used once enrolled. A key never enrolled (and no code) is left
 * alone: the agent joins with the shared token.
 */
function loadIdentity(stateDir: string, name: string, enrollCode: string | undefined): AgentIdentity | undefined {
  const id = AgentIdentity.load(stateDir, !!enrollCode);
  if (!id) return undefined;
  if (!enrollCode && id.enrolledName !== name) {
    if (id.enrolledName) logger.warn({ stateDir, enrolledAs: id.enrolledName, name }, `the key in ${stateDir} is enrolled as "${id.enrolledName}", not "${name}": joining with the shared token`);
    return undefined;
  }
  logger.info({ stateDir: id.stateDir, fingerprint: id.fingerprint, enrolled: id.enrolledName === name }, enrollCode ? 'enrolling this device with its key' : 'joining with this device\'s enrolled key');
  return id;
}

/** An enrolled device's broker login over MQTT (none: fedge-agent with the join token). */
type MqttLogin = Pick<MqttConnectionOptions, 'username' | 'password'>;

/** The transport comes from the URL scheme: mqtt:// or mqtts:// for MQTT, grpc://, grpcs:// (TLS) or none for gRPC. */
function coordinatorConnector(url: string, joinToken: string | undefined, tls: ClientTls | undefined, mqttLogin: MqttLogin = {}, ownSocket = false): () => CoordinatorConnection {
  if (isMqttUrl(url)) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new FedgeError('E_VALIDATION', `--coordinator: "${url}" is not a URL (e.g. mqtt://127.0.0.1:1883)`);
    }
    if (!u.hostname || (u.pathname !== '' && u.pathname !== '/')) throw new FedgeError('E_VALIDATION', `--coordinator: "${url}" must be mqtt://HOST[:PORT] with no path`);
    if (tls && u.protocol === 'mqtt:') throw new FedgeError('E_VALIDATION', `--coordinator: --tls-* options need mqtts://, got "${url}"`);
    return () => new MqttConnection(url, { ...(joinToken ? { joinToken } : {}), ...mqttLogin, ...(tls ? { tls } : {}) });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^grpcs?:\/\//.test(url))
    throw new FedgeError('E_VALIDATION', `--coordinator: unsupported scheme in "${url}" (use grpc://, grpcs://, mqtt:// or mqtts://)`);
  const hp = parseGrpcUrl(url, '--coordinator', 7070);
  const target = grpcTarget(hp);
  // As for the admin CLI: grpcs:// or any --tls-* option means TLS.
  const grpcTls = hp.tls || tls ? (tls ?? {}) : undefined;
  return () => new GrpcConnection(target, grpcTls, {}, ownSocket);
}

addServingOptions(program, 'serve-');
// Agent options (--name, --version, ...) before `serve` belong to the agent, after it to `serve`.
program.enablePositionalOptions().addCommand(serveCommand()).addCommand(completionCommand(program));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`error${err instanceof FedgeError ? ` (${err.code})` : ''}: ${(err as Error).message}\n`);
  process.exit(1);
}
