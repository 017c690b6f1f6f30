/** `fedge serve`: runs the coordinator until interrupted. */
import { Command, Option } from 'commander';
import { parseHostPort } from '@fedge/proto';
import { Coordinator } from '../../coordinator.js';
import { parseMlflowUri } from '../../config/tracking-config.js';
import { startGrpcServer } from '../../transport/grpc/server.js';
import { startMqtt, DEFAULT_MQTT_LISTEN, parseDynsecOption } from '../../transport/mqtt/start.js';
import { logger } from '../../log.js';
import { SqliteStore } from '../../store/sqlite-store.js';
import { DEFAULT_KEEP_LAST, parseKeepLast } from '../../config/retention.js';
import { guardStorage } from '../../store/storage-error.js';
import { DEFAULT_METRICS_PORT, coordinatorReadiness, startMetricsServer } from '../../metrics.js';
import { loadServerTls } from '../../transport/tls.js';
import { ModelSigner } from '../../signing-key.js';
import { DEFAULT_JOIN_LIMITS, parseJoinLimits } from '../../engine/join-limits.js';
import { COORDINATOR_VERSION } from '../../version.js';
import { printJson } from '../format.js';
import { DEFAULT_UI_PORT, parseUiOptions } from '../../ui/options.js';
import { startUiServer } from '../../ui/server.js';
import { parseSiteOptions } from '../../site/site-options.js';
import { startSite } from '../../site/start-site.js';

export const DEFAULT_LISTEN = '127.0.0.1:7070';
/** Below Kubernetes' default 30 s grace period: runs get up to 15 s to stop, each transport a few seconds. */
const SHUTDOWN_BOUND_MS = 25_000;

export function serveCommand(): Command {
  return new Command('serve')
    .description('start the coordinator (agents join it; the CLI manages runs through it)')
    .option('--listen <host:port>', 'address to listen on; 0.0.0.0 exposes it to the network (use inside containers)', process.env.FEDGE_LISTEN ?? DEFAULT_LISTEN)
    .option('--data-dir <dir>', 'coordinator state: runs, agents and metrics (fedge.db), models (models/<sha256>.bin), final models (runs/)', process.env.FEDGE_DATA_DIR ?? '.fedge')
    .option('--in-memory', 'keep run state in memory only (lost when the process ends; nothing resumes after a restart)')
    .option('--keep-versions <K|all>', `model retention: keep the weights of each run's last K versions (plus promoted, canary, best and served ones) unless the run config's retention.keepLast says otherwise; "all" keeps every version (default ${DEFAULT_KEEP_LAST}; env FEDGE_KEEP_VERSIONS)`, process.env.FEDGE_KEEP_VERSIONS)
    .option('--metrics <host:port>', `serve Prometheus metrics at http://HOST:PORT/metrics, and the probes /healthz and /readyz (off unless given; e.g. 127.0.0.1:${DEFAULT_METRICS_PORT}; env FEDGE_METRICS)`, process.env.FEDGE_METRICS)
    .option('--ui <host:port>', `serve the web dashboard (runs, agents, models) at http://HOST:PORT, https:// with --tls-cert (off unless given; a bare PORT binds loopback; e.g. 127.0.0.1:${DEFAULT_UI_PORT}; env FEDGE_UI)`, process.env.FEDGE_UI)
    .option('--join-token <token>', 'shared secret agents must present to join (env FEDGE_JOIN_TOKEN); enrolled devices (fedge agent enroll) join with their own key instead')
    .option('--max-token-agents <n>', `agents the shared join token may register; enrolled devices do not count (default ${DEFAULT_JOIN_LIMITS.maxTokenAgents}; env FEDGE_MAX_TOKEN_AGENTS)`, process.env.FEDGE_MAX_TOKEN_AGENTS)
    .option('--join-rate <per-second>', `joins (and challenges) one source address may make per second on average (default ${DEFAULT_JOIN_LIMITS.sourceRate}; each enrolled identity also ${DEFAULT_JOIN_LIMITS.identityRate}/s; env FEDGE_JOIN_RATE)`, process.env.FEDGE_JOIN_RATE)
    .option('--join-burst <n>', `joins one source address may make at once (default ${DEFAULT_JOIN_LIMITS.sourceBurst}; env FEDGE_JOIN_BURST)`, process.env.FEDGE_JOIN_BURST)
    .option('--mqtt-listen <host:port>', `embedded MQTT broker address (default ${DEFAULT_MQTT_LISTEN}; env FEDGE_MQTT_LISTEN); 0.0.0.0 exposes it`, process.env.FEDGE_MQTT_LISTEN)
    .option('--mqtt-broker <url>', 'use this external broker instead of the embedded one: mqtt://[USER:PASS@]HOST:PORT or mqtts://... (env FEDGE_MQTT_BROKER)', process.env.FEDGE_MQTT_BROKER)
    .option('--mqtt-dynsec', 'with --mqtt-broker (a Mosquitto with the dynamic security plugin, the coordinator\'s user its admin): give each enrolled device its own broker login, made by fedge agent enroll and deleted by fedge agent revoke (deploy/mosquitto/README.md; env FEDGE_MQTT_DYNSEC)')
    .option('--no-mqtt', 'serve agents over gRPC only (no embedded broker, no MQTT transport)')
    .option('--tls-cert <file>', 'PEM certificate (chain): gRPC and the embedded MQTT broker speak TLS (grpcs://, mqtts://) (env FEDGE_TLS_CERT)', process.env.FEDGE_TLS_CERT)
    .option('--tls-key <file>', 'PEM private key of --tls-cert (env FEDGE_TLS_KEY)', process.env.FEDGE_TLS_KEY)
    .option('--tls-client-ca <file>', 'mutual TLS: require client certificates signed by this CA (env FEDGE_TLS_CLIENT_CA)', process.env.FEDGE_TLS_CLIENT_CA)
    .option('--mlflow-tracking-uri <url>', 'log every run live to this MLflow tracking server (params, metrics per round, final model and ONNX as artifacts); a run config\'s tracking.mlflow overrides it (env FEDGE_MLFLOW_TRACKING_URI)', process.env.FEDGE_MLFLOW_TRACKING_URI)
    .option('--upstream <url>', 'aggregator site: join this root coordinator (grpc://HOST:PORT, or mqtt://HOST:PORT through its broker) as one agent and run each of its training tasks as a round on this coordinator\'s agents (env FEDGE_UPSTREAM)', process.env.FEDGE_UPSTREAM)
    .option('--name <site>', 'with --upstream: the site\'s name, the agent name it joins the root with (env FEDGE_SITE_NAME)', process.env.FEDGE_SITE_NAME)
    .option('--upstream-join-token <token>', 'with --upstream: the root\'s join token (env FEDGE_UPSTREAM_JOIN_TOKEN)', process.env.FEDGE_UPSTREAM_JOIN_TOKEN)
    .option('--site-fraction <f>', 'with --upstream: share of this site\'s agents invited per root task (default 1)')
    .option('--site-min-agents <n>', 'with --upstream: agents a site round needs (and online before joining the root; default 1)')
    .option('--site-deadline <seconds>', 'with --upstream: the site round\'s deadline, at most the root task\'s (default 600)')
    // The pino lines are JSON already but one per event of every module; json gives scripts a short, stable contract.
    .addOption(new Option('--format <format>', 'log: pino log lines on stdout; json: JSON lines on stdout, {"event":"ready",...} (addresses, store, TLS, signing key) once listening and {"event":"stopped",...} at exit, with the logs on stderr').choices(['log', 'json']).default('log'))
    .addHelpText(
      'after',
      `
Examples:
  fedge serve                                   # listen on ${DEFAULT_LISTEN}
  fedge serve --listen 0.0.0.0:7070 --data-dir /var/lib/fedge
  fedge serve --metrics 127.0.0.1:${DEFAULT_METRICS_PORT}             # Prometheus scrape target at /metrics
  fedge serve --listen 0.0.0.0:7070 --mqtt-listen 0.0.0.0:1883 --join-token s3cret   # agents over gRPC or MQTT
  fedge serve --mqtt-broker mqtt://fedge:pw@broker.local:1883           # an external broker (e.g. mosquitto)
  fedge serve --no-mqtt                         # gRPC only
  fedge serve --listen 127.0.0.1:0 --format json | head -1   # {"event":"ready","grpc":"grpc://127.0.0.1:41234",...}
  FEDGE_ADMIN_TOKEN=adm1n fedge serve --ui 127.0.0.1:${DEFAULT_UI_PORT}   # dashboard; its promote/rollback buttons ask for the admin token
  fedge serve --listen 0.0.0.0:7070 --tls-cert server.pem --tls-key server.key   # agents use grpcs:// / mqtts://
  fedge serve --listen 0.0.0.0:7071 --upstream grpc://root.example:7070 --name factory-1 --site-min-agents 3   # an aggregator site

Aggregator sites: with --upstream the coordinator joins the root as one agent named --name. Each training task of
the root runs as a one-round run here (its own sampling, deadline and stragglers) from the root's model, and the
site answers with one update: its agents' example-weighted mean delta and their total examples, so the root's
FedAvg over sites equals FedAvg over all their agents (with taskSeeds "agent" in the root's run config, exactly).


Transports: agents connect over gRPC (--listen) or MQTT. MQTT is on by default through an embedded broker on
${DEFAULT_MQTT_LISTEN} (loopback; if that default port is taken, a warning is logged and gRPC carries on alone).
With a join token the embedded broker admits only agents presenting it and confines each to its own topics.

Agent credentials: the shared --join-token is the quick start (one secret for every device: whoever holds it can
join as a new agent). For a fleet, enroll each device: \`fedge agent enroll NAME\` prints a one-time code, the device
starts once with \`fedge-agent --name NAME --enroll-code CODE\` and from then on proves itself with its own key and
signs its updates; \`fedge agent revoke NAME\` cuts one device off. Joins are rate-limited per source address and per
identity, and the shared token registers at most --max-token-agents agents (refused: RESOURCE_EXHAUSTED).

State: runs, rounds, model versions and agents are written to DATA_DIR/fedge.db (SQLite) and models to
DATA_DIR/models before they are acknowledged. After a crash or restart on the same --data-dir, runs that were
active resume at the round after their last completed one. A round in progress when the process died continues:
the updates it had accepted are kept and their agents are not asked again; the other agents it had invited get the
same task again. One coordinator at a time may use a data directory.
A data directory that cannot be written (full, read-only, I/O error) is an E_STORAGE error naming the path and the
free space: at start fedge serve exits with code 4; while serving, new runs and uploads are refused and active runs
are suspended, to resume from their last saved round when the coordinator restarts with space.
  FEDGE_JOIN_TOKEN=s3cret FEDGE_ADMIN_TOKEN=adm1n fedge serve

Environment:
  FEDGE_JOIN_TOKEN   require this token from agents (same as --join-token)
  FEDGE_ADMIN_TOKEN  require this token from admin commands (fedge run ..., fedge agent ...)
  FEDGE_MQTT_LISTEN, FEDGE_MQTT_BROKER, FEDGE_MQTT_DYNSEC   as --mqtt-listen, --mqtt-broker, --mqtt-dynsec
  FEDGE_UI           as --ui (the dashboard's write actions need FEDGE_ADMIN_TOKEN)
  FEDGE_TLS_CERT, FEDGE_TLS_KEY, FEDGE_TLS_CLIENT_CA   as --tls-cert, --tls-key, --tls-client-ca
  FEDGE_LOG_LEVEL    pino log level (default info)`,
    )
    .action(async (opts: { listen: string; dataDir: string; joinToken?: string; maxTokenAgents?: string; joinRate?: string; joinBurst?: string; inMemory?: boolean; keepVersions?: string; metrics?: string; format: 'log' | 'json'; ui?: string; mqtt: boolean; mqttListen?: string; mqttBroker?: string; mqttDynsec?: boolean; tlsCert?: string; tlsKey?: string; tlsClientCa?: string; mlflowTrackingUri?: string }) => {
      const site = parseSiteOptions(opts);
      const mlflowTrackingUri = opts.mlflowTrackingUri ? parseMlflowUri(opts.mlflowTrackingUri, '--mlflow-tracking-uri') : undefined;
      const listen = parseHostPort(opts.listen, '--listen', 7070);
      // Read once, before anything listens: a bad file stops the start with an error naming its flag.
      const tls = loadServerTls({ cert: opts.tlsCert, key: opts.tlsKey, clientCa: opts.tlsClientCa });
      const metricsListen = opts.metrics ? parseHostPort(opts.metrics, '--metrics', DEFAULT_METRICS_PORT) : undefined;
      const { ui: uiListen } = parseUiOptions(opts);
      const joinToken = opts.joinToken ?? process.env.FEDGE_JOIN_TOKEN;
      const joinLimits = parseJoinLimits(opts);
      const mqttDynsec = parseDynsecOption(opts);
      const store = opts.inMemory ? undefined : SqliteStore.open(opts.dataDir);
      if (store) logger.info({ dataDir: store.dataDir, db: store.file, schemaVersion: store.migrations().at(-1)?.version }, 'opened durable store');
      // Model signing key: the data dir's (created on first start), so signatures stay valid across restarts.
      const signing = store ? await guardStorage(opts.dataDir, () => ModelSigner.loadOrCreate(opts.dataDir)) : { signer: ModelSigner.ephemeral(), created: false };
      logger.info({ fingerprint: signing.signer.fingerprint, key: signing.signer.source, created: signing.created }, `model signing key ${signing.signer.fingerprint}`);
      const coord = new Coordinator({ dataDir: opts.dataDir, signer: signing.signer, ...(store ? { store, resumeOnRestart: true } : {}), ...(joinToken ? { joinToken } : {}), ...(opts.keepVersions !== undefined ? { keepLast: parseKeepLast(opts.keepVersions, '--keep-versions') } : {}), joinLimits, ...(mlflowTrackingUri ? { mlflowTrackingUri } : {}) });
      // An aggregator site joins its root once its own agents are online (start-site.ts).
      const siteLink = site ? startSite(coord, site) : undefined;
      // Before the server listens, so that an agent reconnecting at once finds its old record.
      const knownAgents = store ? await coord.restoreAgents() : 0;
      if (knownAgents) logger.info({ agents: knownAgents }, `restored ${knownAgents} known agent(s), offline until they reconnect`);
      const server = await startGrpcServer(coord, listen, process.env.FEDGE_ADMIN_TOKEN || undefined, tls);
      const mqtt = opts.mqtt
        ? await startMqtt(coord, {
            ...(opts.mqttListen !== undefined ? { listen: opts.mqttListen } : {}),
            ...(opts.mqttBroker !== undefined ? { broker: opts.mqttBroker } : {}),
            ...(mqttDynsec ? { dynsec: true } : {}),
            ...(joinToken ? { joinToken } : {}),
            ...(tls ? { tls } : {}),
          })
        : undefined;
      // GET /readyz turns 503 as soon as shutdown starts, so Kubernetes stops routing agents here before gRPC closes.
      let stopping = false;
      const metrics = metricsListen ? await startMetricsServer(coord, metricsListen, () => coordinatorReadiness(coord, { stopping })) : undefined;
      if (metrics) logger.info({ address: metrics.address }, `metrics on http://${metrics.address}/metrics`);
      const ui = uiListen ? await startUiServer(coord, uiListen, { adminToken: process.env.FEDGE_ADMIN_TOKEN || undefined, tls }) : undefined;
      if (ui) logger.info({ url: ui.url, exposed: uiListen!.exposed, writeActions: !!process.env.FEDGE_ADMIN_TOKEN }, `dashboard on ${ui.url}/`);
      if (ui && uiListen!.exposed) logger.warn({ url: ui.url }, 'the dashboard listens beyond loopback: anyone who reaches it can read runs, agents and models (write actions still need the admin token); put it behind an authenticating proxy');
      const shutdown = async (sig: string): Promise<void> => {
        logger.info({ signal: sig }, 'shutting down');
        stopping = true;
        // Whatever a peer does (a broker that never answers, an upload that never ends), the process ends.
        setTimeout(() => {
          logger.error({ signal: sig }, `shutdown did not finish within ${SHUTDOWN_BOUND_MS / 1000} s; exiting anyway`);
          process.exit(1);
        }, SHUTDOWN_BOUND_MS).unref();
        let code = 0;
        try {
          siteLink?.stop();
          await coord.close();
          await server.close();
          await mqtt?.close();
          await metrics?.close();
          await ui?.close();
          store?.close();
        } catch (err) {
          logger.error({ err }, 'shutdown failed');
          code = 1;
        }
        if (opts.format === 'json') printJson({ event: 'stopped', signal: sig, code });
        process.exit(code);
      };
      // Handlers before the ready line: a supervisor (or a test) that stops the process as soon as it reads "ready"
      // gets a clean shutdown, not the default SIGTERM death.
      process.once('SIGINT', () => void shutdown('SIGINT'));
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
      logger.info({ address: server.address, dataDir: opts.dataDir, store: store ? 'sqlite' : 'memory', joinToken: !!joinToken, tls: !!tls, mutualTls: !!tls?.clientCa }, `coordinator ready on ${server.address}`);
      if (opts.format === 'json') {
        printJson({
          event: 'ready', version: COORDINATOR_VERSION, address: server.address, grpc: `${tls ? 'grpcs' : 'grpc'}://${server.address}`,
          mqtt: mqtt?.url ?? null, metrics: metrics ? `http://${metrics.address}/metrics` : null, dataDir: opts.dataDir,
          store: store ? 'sqlite' : 'memory', joinToken: !!joinToken, tls: !!tls, mutualTls: !!tls?.clientCa,
          signingKey: signing.signer.fingerprint, knownAgents,
        });
      }
      const resumed = await coord.resumeRuns();
      if (resumed.length) logger.info({ runs: resumed.map((r) => ({ runId: r.id, round: r.round, version: r.modelVersion })) }, `resumed ${resumed.length} run(s)`);
      if (opts.format === 'json' && resumed.length) printJson({ event: 'resumed', runs: resumed.map((r) => ({ runId: r.id, round: r.round, version: r.modelVersion })) });
    });
}
