/**
 * SCAFFOLD's agent side (Karimireddy et al. 2020, Algorithm 1, option II): each local SGD step uses g(y) − c_i + c
 * instead of g(y), c the server's control variate and c_i the agent's, and after K steps at rate lr the agent's
 * variate becomes c_i⁺ = c_i − c + (x − y)/(K·lr), x the global model the task carried and y the trained one.
 */
import * as tf from '@tensorflow/tfjs';
import { ValidationError } from '@fedge/proto';

/**
 * The correction c − c_i added to every gradient of local training: one constant tensor per trainable variable, cut
 * from a flat vector in the model's weight order (the wire order of getWeights). Weights that are not trainable get
 * no correction (they have no gradient step to correct).
 */
export class ControlVariateTerm {
  private readonly parts: Map<string, tf.Tensor>;

  /** `correction` is c − c_i, model-sized; dispose() frees the per-variable copies. */
  constructor(model: tf.LayersModel, vars: readonly tf.Variable[], correction: Float32Array) {
    const offsets = new Map<unknown, number>();
    let off = 0;
    for (const w of model.weights) {
      offsets.set(w, off);
      off += w.shape.reduce((a: number, b: number | null) => a * (b ?? 1), 1);
    }
    if (correction.length !== off) throw new ValidationError(`scaffold: the control-variate correction holds ${correction.length} values, the model has ${off}`);
    this.parts = new Map();
    model.trainableWeights.forEach((w, i) => {
      const start = offsets.get(w);
      const v = vars[i]!;
      if (start === undefined) throw new ValidationError(`scaffold: trainable weight ${w.originalName} is not among the model's weights`);
      this.parts.set(v.name, tf.tensor(correction.subarray(start, start + v.size), v.shape, 'float32'));
    });
  }

  /** g + (c − c_i) per variable (a variable the loss does not reach gets the correction alone). Call inside tf.tidy. */
  correct(vars: readonly tf.Variable[], lossGrads: tf.NamedTensorMap): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    for (const v of vars) {
      const g = lossGrads[v.name];
      const k = this.parts.get(v.name)!;
      out[v.name] = g ? tf.add(g, k) : k.clone();
    }
    return out;
  }

  dispose(): void {
    tf.dispose([...this.parts.values()]);
  }
}

/**
 * Option II: Δc_i = c_i⁺ − c_i = (x − y)/(K·lr) − c (c_i cancels), in float64 per value and rounded to float32.
 * `delta` is y − x (what the agent sends as its model update), so (x − y) = −delta.
 */
export function controlVariateDelta(delta: Float32Array, c: Float32Array, steps: number, lr: number): Float32Array {
  if (delta.length !== c.length) throw new ValidationError(`scaffold: the update has ${delta.length} values, the server control variate ${c.length}`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new ValidationError(`scaffold: local steps K must be a positive integer, got ${steps}`);
  if (!(lr > 0 && Number.isFinite(lr))) throw new ValidationError(`scaffold: the local learning rate must be > 0, got ${lr}`);
  const out = new Float32Array(delta.length);
  const scale = 1 / (steps * lr);
  for (let i = 0; i < out.length; i++) out[i] = -delta[i]! * scale - c[i]!;
  return out;
}
