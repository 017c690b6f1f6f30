/** Built-in models: McMahan et al. 2017's (FedAvg) for MNIST, which take flat 784-vectors in [0,1], and an MLP for tabular tasks. */
import * as tf from '@tensorflow/tfjs';
import { ValidationError, type TaskType } from '@fedge/proto';
import { createRng } from './rng.js';

export const BUILTIN_MODELS = ['mnist-mlp', 'mnist-cnn'] as const;
export type BuiltinModel = (typeof BUILTIN_MODELS)[number];

export function isBuiltinModel(name: string): name is BuiltinModel {
  return (BUILTIN_MODELS as readonly string[]).includes(name);
}

/** Glorot-uniform initializers, one derived seed per layer: with `seed + i`, model seed 1 layer 0 would equal model seed 0 layer 1. */
function layerInitializers(seed: number): () => ReturnType<typeof tf.initializers.glorotUniform> {
  const rng = createRng(seed);
  return () => tf.initializers.glorotUniform({ seed: Math.floor(rng() * 2 ** 31) });
}

/**
 * Same seed => bit-identical initial weights on every process. Layer names are fixed (not tfjs' auto
 * `dense_Dense3`) because tensor names must match between coordinator and agents whatever else they built.
 * The CNN starts with a Reshape so both models share the dataset layout: rows of 784 features.
 */
export function createBuiltinModel(name: BuiltinModel, seed = 0): tf.LayersModel {
  const init = layerInitializers(seed);
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

export type OutputActivation = 'softmax' | 'sigmoid' | 'linear';

/** The output activation each task type's losses expect (checkModelForTask enforces the same pairing). */
export function outputActivationFor(type: TaskType): OutputActivation {
  switch (type) {
    case 'classification': return 'softmax';
    case 'binary': case 'multilabel': return 'sigmoid';
    case 'regression': return 'linear';
    default: throw new ValidationError(`task.type: unknown task type "${String(type)}"; use classification, binary, multilabel or regression`);
  }
}

export interface MlpOptions {
  /** Encoded features per example. */
  inputWidth: number;
  /** Units of each relu hidden layer (fc1, fc2, ...); empty for a linear or logistic model. */
  hidden: readonly number[];
  outputs: number;
  activation: OutputActivation;
  /** Same seed => bit-identical initial weights on every process, as the other built-ins. */
  seed: number;
}

/** The built-in tabular model: relu hidden layers fc1..fcN and an output layer `out`, names fixed as the other built-ins'. */
export function createMlp({ inputWidth, hidden, outputs, activation, seed }: MlpOptions): tf.LayersModel {
  const positive = (v: number) => Number.isInteger(v) && v >= 1 && v <= 1 << 24;
  if (!positive(inputWidth)) throw new ValidationError(`mlp: inputWidth must be a positive integer, got ${inputWidth}`);
  if (!positive(outputs)) throw new ValidationError(`mlp: outputs must be a positive integer, got ${outputs}`);
  hidden.forEach((u, i) => {
    if (!positive(u)) throw new ValidationError(`model.hidden[${i}]: layer sizes must be positive integers, got ${u}`);
  });
  if (!['softmax', 'sigmoid', 'linear'].includes(activation))
    throw new ValidationError(`mlp: activation must be softmax, sigmoid or linear, got ${String(activation)}`);
  const init = layerInitializers(seed);
  const layers = hidden.map((units, i) =>
    tf.layers.dense({ name: `fc${i + 1}`, ...(i === 0 ? { inputShape: [inputWidth] } : {}), units, activation: 'relu', kernelInitializer: init() }),
  );
  layers.push(tf.layers.dense({ name: 'out', ...(hidden.length === 0 ? { inputShape: [inputWidth] } : {}), units: outputs, activation, kernelInitializer: init() }));
  return tf.sequential({ name: 'mlp', layers });
}
