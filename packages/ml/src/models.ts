/** Built-in models from McMahan et al. 2017 (FedAvg) for MNIST; both take flat 784-vectors in [0,1]. */
import * as tf from '@tensorflow/tfjs';
import { ValidationError } from '@fedge/proto';
import { createRng } from './rng.js';

export const BUILTIN_MODELS = ['mnist-mlp', 'mnist-cnn'] as const;
export type BuiltinModel = (typeof BUILTIN_MODELS)[number];

export function isBuiltinModel(name: string): name is BuiltinModel {
  return (BUILTIN_MODELS as readonly string[]).includes(name);
}

/**
 * Same seed => bit-identical initial weights on every process. Layer names are fixed (not tfjs' auto
 * `dense_Dense3`) because tensor names must match between coordinator and agents whatever else they built.
 * The CNN starts with a Reshape so both models share the dataset layout: rows of 784 features.
 */
export function createBuiltinModel(name: BuiltinModel, seed = 0): tf.LayersModel {
  const rng = createRng(seed);
  // One derived seed per layer: with `seed + i`, model seed 1 layer 0 would equal model seed 0 layer 1.
  const init = () => tf.initializers.glorotUniform({ seed: Math.floor(rng() * 2 ** 31) });
  switch (name) {
    case 'mnist-mlp':
      return tf.sequential({
        name: 'mnist_mlp',
        layers: [
          tf.layers.dense({ name: 'fc1', inputShape: [784], units: 200, activation: 'relu', kernelInitializer: init() }),
          tf.layers.dense({ name: 'fc2', units: 200, activation: 'relu', kernelInitializer: init() }),
          tf.layers.dense({ name: 'out', units: 10, activation: 'softmax', kernelInitializer: init() }),
        ],
      });
    case 'mnist-cnn': {
      const conv = (n: string, filters: number) =>
        tf.layers.conv2d({ name: n, filters, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: init() });
      return tf.sequential({
        name: 'mnist_cnn',
        layers: [
          tf.layers.reshape({ name: 'image', inputShape: [784], targetShape: [28, 28, 1] }),
          conv('conv1', 32),
          tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2, strides: 2 }),
          conv('conv2', 64),
          tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2, strides: 2 }),
          tf.layers.flatten({ name: 'flatten' }),
          tf.layers.dense({ name: 'fc1', units: 512, activation: 'relu', kernelInitializer: init() }),
          tf.layers.dense({ name: 'out', units: 10, activation: 'softmax', kernelInitializer: init() }),
        ],
      });
    }
    default:
      throw new ValidationError(`model: unknown built-in model "${String(name)}"; expected one of ${BUILTIN_MODELS.join(', ')}`);
  }
}
