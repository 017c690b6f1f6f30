/** @fedge/ml: TensorFlow.js backend selection, built-in models, datasets, partitioners and local training. */
import * as tf from '@tensorflow/tfjs';

export { tf };
export * from './backend.js';
export { installWasmTrainingKernels } from './wasm-kernels.js';
export { createRng } from './rng.js';
export * from './models.js';
export * from './weights.js';
export * from './dataset.js';
export * from './mnist.js';
export * from './partition.js';
export * from './train.js';
export * from './model-dir.js';
export * from './loaders.js';
export * from './onnx/index.js';
export * from './task/index.js';
export * from './data/index.js';
