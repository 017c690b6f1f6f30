/** `fedge-agent serve` (standalone) and the `--serve` options of the federating agent. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseHostPort } from '@fedge/proto';
import { z } from 'zod';
import { GlobalModelServer, GrpcInferenceServer, InferenceServer, ModelSlot, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BATCH, type SessionSettings } from '../serving/index.js';
import { logger } from '../log.js';

const positiveInt = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be an integer >= 1, got "${v}"`);
  return n;
};

export const DEFAULT_SERVE_PORT = 8080;

/** The serving options that are not plain counts, checked with zod (the schema names the flag in its message). */
export const servingOptionsSchema = z.object({
  grpcPort: z.coerce.number({ message: 'must be a port number' }).int('must be an integer').min(1, 'must be in 1..65535').max(65535, 'must be in 1..65535').optional(),
});

const grpcPort = (flag: string) => (v: string): number => {
  const r = servingOptionsSchema.shape.grpcPort.safeParse(v);
  if (!r.success || r.data === undefined) throw new InvalidArgumentError(`${flag} ${r.success ? 'must be a port number' : r.error.issues[0]!.message}, got "${v}"`);
  return r.data;
};

/** Options shared by `serve` and `--serve`. */
export function addServingOptions(cmd: Command, prefix: '' | 'serve-'): Command {
  return cmd
    .addOption(new Option(`--${prefix}grpc-port <port>`, 'also serve the KServe v2 gRPC protocol (inference.GRPCInferenceService) on this port, on the HTTP address\'s host (loopback unless you say otherwise)').argParser(grpcPort(`--${prefix}grpc-port`)))
    .addOption(new Option(`--${prefix}threads <n>`, 'onnxruntime intra-op threads per session').default(1).argParser(positiveInt(`--${prefix}threads`)))
    .addOption(new Option(`--${prefix}max-body-bytes <n>`, 'largest accepted request body').default(DEFAULT_MAX_BODY_BYTES).argParser(positiveInt(`--${prefix}max-body-bytes`)))
    .addOption(new Option(`--${prefix}max-batch <n>`, 'largest accepted batch').default(DEFAULT_MAX_BATCH).argParser(positiveInt(`--${prefix}max-batch`)));
}

export interface ServingFlags { threads: number; maxBodyBytes: number; maxBatch: number; grpcPort?: number }

/** Starts the HTTP server for `slot` (and the gRPC one with `grpcPort`); resolves once they listen. */
export async function startInferenceServer(slot: ModelSlot, listen: string, flags: ServingFlags): Promise<{ close: () => Promise<void>; url: string; grpc?: string }> {
  const hp = parseHostPort(listen, '--listen', DEFAULT_SERVE_PORT);
  const server = new InferenceServer(slot, { maxBodyBytes: flags.maxBodyBytes, maxBatch: flags.maxBatch });
  const bindHost = hp.host.replace(/^\[|\]$/g, '');
  const addr = await server.listen(bindHost, hp.port);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  logger.info({ url: `http://${host}:${addr.port}/v2/models/${slot.name}/infer`, model: slot.name }, 'inference server listening (KServe v2)');
  let grpcServer: GrpcInferenceServer | undefined;
  let grpc: string | undefined;
  if (flags.grpcPort !== undefined) {
    grpcServer = new GrpcInferenceServer(slot, { maxBodyBytes: flags.maxBodyBytes, maxBatch: flags.maxBatch });
    const port = await grpcServer.listen(bindHost, flags.grpcPort);
    grpc = `${host}:${port}`;
    logger.info({ address: grpc, service: 'inference.GRPCInferenceService', model: slot.name }, 'gRPC inference server listening (KServe v2)');
  }
  return { close: async () => void (await Promise.all([server.close(), grpcServer?.close()])), url: `http://${host}:${addr.port}`, ...(grpc ? { grpc } : {}) };
}

/** The federating agent's `--serve`: serve every new global version, exported per `quantize`/`activations`. */
export function createGlobalModelServer(
  name: string,
  flags: ServingFlags & { quantize: 'none' | 'int8'; activations: 'dynamic' | 'static' },
  calibration?: { x: Float32Array; n: number },
): GlobalModelServer {
  const settings: SessionSettings = { intraOpThreads: flags.threads };
  return new GlobalModelServer(new ModelSlot(name, settings), {
    quantize: flags.quantize,
    activations: flags.activations,
    ...(calibration ? { calibration } : {}),
  });
}

interface ServeOpts extends ServingFlags { model: string; listen: string; name: string; version: string; format: 'log' | 'json'; abModel?: string; abVersion: string; abFraction?: number }

const fraction = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!(Number.isFinite(n) && n >= 0 && n <= 1)) throw new InvalidArgumentError(`${flag} must be a fraction in [0, 1], got "${v}"`);
  return n;
};

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve an ONNX model over HTTP (KServe v2; gRPC too with --grpc-port) without joining a coordinator: air-gapped devices, local testing')
    .requiredOption('--model <file.onnx>', 'ONNX model, e.g. from `fedge model export`')
    .option('--listen <host:port>', 'address to listen on (loopback unless you say otherwise)', `127.0.0.1:${DEFAULT_SERVE_PORT}`)
    .option('--name <name>', 'model name in the URL: /v2/models/NAME/infer', 'fedge')
    .option('--version <v>', 'version reported for the model', '1')
    .option('--ab-model <file.onnx>', 'A/B test: a second model served beside --model; --ab-fraction of requests go to it, sticky by x-request-id')
    .option('--ab-version <v>', 'version reported for --ab-model', '2')
    .addOption(new Option('--ab-fraction <f>', 'fraction (0..1) of requests --ab-model answers (with --ab-model)').default(0.5).argParser(fraction('--ab-fraction')))
    // Logs move to stderr with json (log.ts reads --format from argv before anything logs).
    .addOption(new Option('--format <format>', 'log: pino log lines on stdout; json: JSON lines on stdout, {"event":"ready",...} (url, grpc, model, version, inputs, outputs) once listening and {"event":"stopped"} at exit, logs on stderr').choices(['log', 'json']).default('log'));
  addServingOptions(cmd, '');
  cmd.addHelpText(
    'after',
    `
Examples:
  fedge-agent serve --model model.int8.onnx --listen 127.0.0.1:8080 --name mnist
  fedge-agent serve --model model.onnx --listen 127.0.0.1:0 --format json | head -1   # {"event":"ready","url":...}
  fedge-agent serve --model model.int8.onnx --listen 127.0.0.1:8000 --grpc-port 8001 --name mnist   # Triton's ports, HTTP + gRPC
  fedge-agent serve --model v12.onnx --ab-model v14.onnx --ab-version 14 --ab-fraction 0.1 --name mnist   # A/B: 10% to v14
  curl -s 127.0.0.1:8080/v2/models/mnist
  curl -s -X POST 127.0.0.1:8080/v2/models/mnist/infer -H 'content-type: application/json' \\
    -d '{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[0, 0, ...784 values]}]}'

Endpoints: GET /v2/health/live, /v2/health/ready, /v2/models/NAME (inputs, outputs, version), /v2/models/NAME/config,
POST /v2/models/NAME/infer (batched: shape [N, ...]; JSON or the binary tensor data extension, as tritonclient sends).
--grpc-port P adds the same protocol over gRPC (inference.GRPCInferenceService; for tritonclient.grpc).
A/B (--ab-model): each request id (x-request-id header, else the request's id) always gets the same model; the answer
names it (model_version, and the x-model-version header).`,
  );
  cmd.action(async (o: ServeOpts) => {
    const path = resolve(o.model);
    const bytes = new Uint8Array(await readFile(path));
    const slot = new ModelSlot(o.name, { intraOpThreads: o.threads });
    const m = await slot.load(bytes, o.version, { file: path });
    logger.info({ model: o.name, version: o.version, bytes: m.bytes, inputs: m.inputs, outputs: m.outputs }, 'model loaded');
    if (o.abModel) {
      if (o.abVersion === o.version) throw new InvalidArgumentError(`--ab-version must differ from --version (both "${o.version}")`);
      const abPath = resolve(o.abModel);
      await slot.load(new Uint8Array(await readFile(abPath)), o.abVersion, { file: abPath });
      // The slot's flag split: the newest loaded (the --ab-model) answers --ab-fraction, the one before the rest.
      slot.abFraction = o.abFraction ?? 0.5;
      logger.info({ model: o.name, stable: o.version, candidate: o.abVersion, fraction: slot.abFraction }, 'A/B split: the second model answers this fraction of requests');
    }
    const server = await startInferenceServer(slot, o.listen, o);
    const json = (v: unknown): void => void (o.format === 'json' && process.stdout.write(`${JSON.stringify(v)}\n`));
    json({ event: 'ready', url: server.url, grpc: server.grpc ?? null, model: o.name, version: o.version, bytes: m.bytes, inputs: m.inputs, outputs: m.outputs, ...(o.abModel ? { ab: { version: o.abVersion, fraction: slot.abFraction } } : {}) });
    const stop = (sig: string): void => {
      logger.info({ signal: sig }, 'stopping');
      void server.close().then(() => slot.close()).then(() => (json({ event: 'stopped', signal: sig }), process.exit(0)));
      setTimeout(() => process.exit(0), 2000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return cmd;
}
