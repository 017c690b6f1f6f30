/**
 * One inference request as both protocols serve it: the version is the one the request names, else the slot's A/B
 * split's pick for the request id (sticky), else the current one; the outcome, latency and prediction of the version
 * that answered are recorded in the slot's stats (fedge_serving_* metrics, the canary health report).
 */
import type { ModelSlot } from './model-slot.js';
import { ServingError, acquireModel, infer, type DecodedInput, type OutputTensor } from './infer-core.js';

export interface RoutedRequest {
  name: string;
  /** The version the request names (URL /versions/V, gRPC model_version); no routing then. */
  version?: string | undefined;
  /** x-request-id header or the KServe request `id`: the same id is always answered by the same version. */
  requestId?: string | undefined;
  inputs: DecodedInput[];
  outputs?: string[] | undefined;
  maxBatch: number;
}

export async function inferRouted(slot: ModelSlot, r: RoutedRequest): Promise<{ version: string; outputs: OutputTensor[]; batch: number }> {
  const version = r.version ?? slot.route(r.requestId);
  // Referenced before any await so a concurrent swap cannot release its session under us.
  const m = acquireModel(slot, r.name, version);
  const t0 = performance.now();
  try {
    const res = await infer(m, r.name, r.inputs, r.outputs, r.maxBatch);
    const first = res.outputs[0];
    slot.stats.observe({ version: m.version, outcome: 'ok', ms: performance.now() - t0, ...(first ? { output: first } : {}) });
    return { version: m.version, ...res };
  } catch (err) {
    slot.stats.observe({ version: m.version, outcome: err instanceof ServingError && err.status < 500 ? 'invalid' : 'error', ms: performance.now() - t0 });
    throw err;
  } finally {
    slot.release(m);
  }
}
