/** Shared set-up of the serving tests: a model slot with mnist-mlp versions loaded, and a KServe v2 gRPC client. */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createBuiltinModel, exportOnnx, initBackend, modelToBlob } from '@fedge/ml';
import { ModelSlot } from './model-slot.js';

const PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto', 'grpc_predict_v2.proto');

/** A slot named `name` with one unquantized mnist-mlp per entry: version => the seed of its weights. */
export async function mnistSlot(name: string, versions: Record<string, number>, info: Record<string, string | number> = {}): Promise<ModelSlot> {
  await initBackend('wasm');
  const slot = new ModelSlot(name);
  for (const [version, seed] of Object.entries(versions)) {
    const m = createBuiltinModel('mnist-mlp', seed);
    await slot.load(exportOnnx(modelToBlob(m), { quantize: 'none' }).bytes, version, info);
    m.dispose();
  }
  return slot;
}

export type PredictClient = grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void>;

/** A plaintext inference.GRPCInferenceService client for 127.0.0.1:port (close it when done). */
export function predictClient(port: number): PredictClient {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true });
  const Svc = (grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } }).inference.GRPCInferenceService;
  return new Svc(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as PredictClient;
}
