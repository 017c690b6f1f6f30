/**
 * FedProx's proximal term: an agent minimizes loss(w) + (mu/2)·Σ||w − w0||² over the trainable weights, w0 the global
 * model the task carried (the weights when local training starts), so local updates cannot drift far from it on
 * heterogeneous data. Independent of the server strategy: only the agent's local objective changes.
 */
import * as tf from '@tensorflow/tfjs';

export class ProximalTerm {
  /** w0 per variable, copied once (own buffers: nothing aliases the variables the optimizer reassigns). */
  private readonly anchors: tf.Tensor[];
  private readonly mu: tf.Scalar;

  /** Snapshots `vars` as w0; dispose() frees the copies. */
  constructor(private readonly vars: readonly tf.Variable[], mu: number) {
    this.anchors = vars.map((v) => tf.tensor(v.dataSync(), v.shape, v.dtype));
    this.mu = tf.scalar(mu);
  }

  /**
   * The gradients of the proximal objective from those of the loss: g + mu·(w − w0) per variable, in `vars` order,
   * ready for Optimizer.applyGradients. The term's gradient is added in closed form (a sub, a mul and an add per
   * weight) rather than by differentiating it on the tape: the same objective, fewer kernels, and the loss the caller
   * reports stays the task's own. A variable the loss does not reach gets mu·(w − w0) alone. Call inside tf.tidy.
   */
  gradients(lossGrads: tf.NamedTensorMap): { name: string; tensor: tf.Tensor }[] {
    return this.vars.map((v, i) => {
      const pull = tf.mul(this.mu, tf.sub(v, this.anchors[i]!));
      const g = lossGrads[v.name];
      return { name: v.name, tensor: g ? tf.add(g, pull) : pull };
    });
  }

  dispose(): void {
    tf.dispose([...this.anchors, this.mu]);
  }
}
