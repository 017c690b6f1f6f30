/** Moves a LayersModel to and from the wire form: topology JSON, tensor specs, one flat float32 buffer. */
import * as tf from '@tensorflow/tfjs';
import { describeSpecMismatch, totalParams, ValidationError, type ModelBlob, type TensorSpec } from '@fedge/proto';

/** Specs use `originalName`: tfjs suffixes `name` (`kernel_1`) when a process builds the same model twice. */
export function weightSpecs(model: tf.LayersModel): TensorSpec[] {
  return model.weights.map((w) => ({ name: w.originalName, dtype: 'float32' as const, shape: [...w.shape] as number[] }));
}

export function getWeights(model: tf.LayersModel): { tensors: TensorSpec[]; weights: Float32Array } {
  const tensors = weightSpecs(model);
  const weights = new Float32Array(totalParams(tensors));
  let off = 0;
  // getWeights() hands back the live variables (not copies), so they must not be disposed here.
  for (const t of model.getWeights()) {
    if (t.dtype !== 'float32') throw new ValidationError(`weights: tensor of dtype ${t.dtype} is not supported`);
    const v = t.dataSync() as Float32Array;
    weights.set(v, off);
    off += v.length;
  }
  return { tensors, weights };
}

export function setWeights(model: tf.LayersModel, weights: Float32Array): void {
  const specs = weightSpecs(model);
  const n = totalParams(specs);
  if (weights.length !== n)
    throw new ValidationError(`weights: expected ${n} float32 values for model "${model.name}", got ${weights.length}`);
  const tensors: tf.Tensor[] = [];
  let off = 0;
  try {
    for (const s of specs) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      // slice() copies: the model must not alias a buffer the caller may reuse or transfer.
      tensors.push(tf.tensor(weights.slice(off, off + size), s.shape, 'float32'));
      off += size;
    }
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors); // variables keep their own reference to the data
  }
}

export function modelToBlob(model: tf.LayersModel): ModelBlob {
  const topology = model.toJSON(null, false);
  return { topology, ...getWeights(model) };
}

export async function modelFromBlob(blob: ModelBlob): Promise<tf.LayersModel> {
  const n = totalParams(blob.tensors);
  if (blob.weights.length !== n)
    throw new ValidationError(`weights: tensors describe ${n} float32 values but the buffer holds ${blob.weights.length}`);
  if (typeof blob.topology !== 'object' || blob.topology === null)
    throw new ValidationError('topology: expected a tfjs model topology object');
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON(blob.topology as Parameters<typeof tf.models.modelFromJSON>[0]);
  } catch (err) {
    throw new ValidationError(`topology: cannot build a model: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const mismatch = describeSpecMismatch(weightSpecs(model), blob.tensors);
  if (mismatch) {
    model.dispose();
    throw new ValidationError(`tensors do not match the topology: ${mismatch}`);
  }
  setWeights(model, blob.weights);
  return model;
}
