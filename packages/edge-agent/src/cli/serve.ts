/** `fedge-agent serve` (standalone) and the `--serve` options of the federating agent. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseHostPort } from '@fedge/proto';
import { GlobalModelServer, InferenceServer, ModelSlot, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BATCH, type SessionSettings } from '../serving/index.js';
import { logger } from '../log.js';

const positiveInt = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be an integer >= 1, got "${v}"`);
  return n;
};

export const DEFAULT_SERVE_PORT = 8080;

/** Options shared by `serve` and `--serve`. */
export function addServingOptions(cmd: Command, prefix: '' | 'serve-'): Command {
  return cmd
    .addOption(new Option(`--${prefix}threads <n>`, 'onnxruntime intra-op threads per session').default(1).argParser(positiveInt(`--${prefix}threads`)))
    .addOption(new Option(`--${prefix}max-body-bytes <n>`, 'largest accepted request body').default(DEFAULT_MAX_BODY_BYTES).argParser(positiveInt(`--${prefix}max-body-bytes`)))
    .addOption(new Option(`--${prefix}max-batch <n>`, 'largest accepted batch').default(DEFAULT_MAX_BATCH).argParser(positiveInt(`--${prefix}max-batch`)));
}

export interface ServingFlags { threads: number; maxBodyBytes: number; maxBatch: number }

/** Starts the HTTP server for `slot`; resolves once it listens. */
export async function startInferenceServer(slot: ModelSlot, listen: string, flags: ServingFlags): Promise<InferenceServer> {
  const hp = parseHostPort(listen, '--listen', DEFAULT_SERVE_PORT);
  const server = new InferenceServer(slot, { maxBodyBytes: flags.maxBodyBytes, maxBatch: flags.maxBatch });
  const addr = await server.listen(hp.host.replace(/^\[|\]$/g, ''), hp.port);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  logger.info({ url: `http://${host}:${addr.port}/v2/models/${slot.name}/infer`, model: slot.name }, 'inference server listening (KServe v2)');
  return server;
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

interface ServeOpts extends ServingFlags { model: string; listen: string; name: string; version: string }

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve an ONNX model over HTTP (KServe v2 JSON) without joining a coordinator: air-gapped devices, local testing')
    .requiredOption('--model <file.onnx>', 'ONNX model, e.g. from `fedge model export`')
    .option('--listen <host:port>', 'address to listen on (loopback unless you say otherwise)', `127.0.0.1:${DEFAULT_SERVE_PORT}`)
    .option('--name <name>', 'model name in the URL: /v2/models/NAME/infer', 'fedge')
    .option('--version <v>', 'version reported for the model', '1');
  addServingOptions(cmd, '');
  cmd.addHelpText(
    'after',
    `
Examples:
  fedge-agent serve --model model.int8.onnx --listen 127.0.0.1:8080 --name mnist
  curl -s 127.0.0.1:8080/v2/models/mnist
  curl -s -X POST 127.0.0.1:8080/v2/models/mnist/infer -H 'content-type: application/json' \\
    -d '{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[0, 0, ...784 values]}]}'

Endpoints: GET /v2/health/live, /v2/health/ready, /v2/models/NAME (inputs, outputs, version),
POST /v2/models/NAME/infer (batched: shape [N, ...]).`,
  );
  cmd.action(async (o: ServeOpts) => {
    const path = resolve(o.model);
    const bytes = new Uint8Array(await readFile(path));
    const slot = new ModelSlot(o.name, { intraOpThreads: o.threads });
    const m = await slot.load(bytes, o.version, { file: path });
    logger.info({ model: o.name, version: o.version, bytes: m.bytes, inputs: m.inputs, outputs: m.outputs }, 'model loaded');
    const server = await startInferenceServer(slot, o.listen, o);
    const stop = (sig: string): void => {
      logger.info({ signal: sig }, 'stopping');
      void server.close().then(() => slot.close()).then(() => process.exit(0));
      setTimeout(() => process.exit(0), 2000).unref();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return cmd;
}
