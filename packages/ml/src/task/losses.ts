/** Training losses on a model's outputs, as batch means the way Keras computes them, from ops with wasm and cpu gradients. */
import * as tf from '@tensorflow/tfjs';
import { LOSSES, ValidationError, type LossName } from '@fedge/proto';

/** Same clipping as Keras' crossentropies on probabilities: log(0) would make the loss and its gradient infinite. */
const EPS = 1e-7;

/** Mean loss of a batch: `pred` is the model output [rows, outputs], `labels` comes from `labelTensor`. */
export type LossFn = (pred: tf.Tensor2D, labels: tf.Tensor2D) => tf.Scalar;
const scalar = (t: tf.Tensor): tf.Scalar => t as tf.Scalar;

/** The crossentropies take one-hot rows of the class index, so sparse and categorical CE differ only in the label form users give. */
export function isCrossentropy(loss: LossName): boolean {
  return loss === 'sparse-categorical-crossentropy' || loss === 'categorical-crossentropy';
}

/**
 * Labels of `rows` examples as the loss takes them: classification class indices one-hot over `outputs` classes;
 * otherwise the row-major targets as float32 [rows, outputs].
 */
export function labelTensor(loss: LossName, y: Int32Array | Float32Array, rows: number, outputs: number): tf.Tensor2D {
  if (isCrossentropy(loss)) return tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(y instanceof Int32Array ? y : Int32Array.from(y), 'int32'), outputs), 'float32') as tf.Tensor2D);
  return tf.tensor2d(y instanceof Float32Array ? y : Float32Array.from(y), [rows, outputs], 'float32');
}

/** Mean over examples (and over target columns for the per-value losses, as Keras averages the last axis). */
export function lossFunction(loss: LossName, huberDelta = 1): LossFn {
  switch (loss) {
    case 'sparse-categorical-crossentropy':
    case 'categorical-crossentropy':
      return (p, y) => scalar(tf.neg(tf.mean(tf.sum(tf.mul(y, tf.log(tf.clipByValue(p, EPS, 1 - EPS))), -1))));
    case 'binary-crossentropy':
      return (p, y) => {
        const q = tf.clipByValue(p, EPS, 1 - EPS);
        return scalar(tf.neg(tf.mean(tf.add(tf.mul(y, tf.log(q)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, q)))))));
      };
    case 'mse':
      return (p, y) => scalar(tf.mean(tf.squaredDifference(p, y)));
    case 'mae':
      return (p, y) => scalar(tf.mean(tf.abs(tf.sub(p, y))));
    case 'huber':
      // 0.5·e² inside ±delta, delta·(|e| - delta/2) outside, written with minimum so no branch can produce a NaN gradient.
      return (p, y) => {
        const abs = tf.abs(tf.sub(p, y));
        const quad = tf.minimum(abs, huberDelta);
        return scalar(tf.mean(tf.add(tf.mul(0.5, tf.square(quad)), tf.mul(huberDelta, tf.sub(abs, quad)))));
      };
    default:
      throw new ValidationError(`task.loss: unknown loss "${String(loss)}"; use one of ${LOSSES.join(', ')}`);
  }
}
