/** Checks that a task is consistent, a model fits it and a dataset fits both, with errors naming the layer, example and fix. */
import type * as tf from '@tensorflow/tfjs';
import { LOSSES_FOR, METRICS_FOR, ValidationError, type FeatureSpec, type LossName, type ResolvedTask } from '@fedge/proto';
import { targetWidth, type Dataset } from '../dataset.js';
import { checkOptimizer } from './optimizers.js';

/** A task as evaluation needs it: everything but the optimizer. */
export type EvalTask = Omit<ResolvedTask, 'optimizer'>;

/** Loss, metrics and (when given) optimizer options all belong to the task's type. */
export function checkTask(task: EvalTask & { optimizer?: ResolvedTask['optimizer'] }): void {
  const losses = LOSSES_FOR[task.type];
  if (!losses) throw new ValidationError(`task.type: unknown task type "${String(task.type)}"; use one of ${Object.keys(LOSSES_FOR).join(', ')}`);
  if (!losses.includes(task.loss)) throw new ValidationError(`task.loss: ${task.type} cannot train with ${task.loss}; use ${losses.join(' or ')}`);
  for (const m of task.metrics)
    if (!METRICS_FOR[task.type].includes(m)) throw new ValidationError(`task.metrics: ${m} does not apply to ${task.type}; use any of ${METRICS_FOR[task.type].join(', ')}`);
  if (task.type === 'binary' && task.outputs !== 1) throw new ValidationError(`task.outputs: binary has one output (the positive class's probability), got ${task.outputs}`);
  if (task.optimizer) checkOptimizer(task.optimizer);
}

/** The one input's per-example shape and the output width; fedge trains single-input, single-output models. */
export function modelShape(model: tf.LayersModel): { inShape: number[]; outputs: number } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    throw new ValidationError(`model "${model.name}" has ${model.inputs.length} inputs and ${model.outputs.length} outputs; fedge trains models with exactly one of each`);
  const out = model.outputs[0]!;
  if (out.shape.length !== 2)
    throw new ValidationError(`model output ${out.sourceLayer.name} has shape [${out.shape.join(', ')}]; fedge needs [batch, outputs]: end the model with a Flatten and a Dense layer`);
  return { inShape: model.inputs[0]!.shape.slice(1) as number[], outputs: out.shape[1]! };
}

const ACTIVATION_FOR: Record<LossName, string> = {
  'sparse-categorical-crossentropy': 'softmax',
  'categorical-crossentropy': 'softmax',
  'binary-crossentropy': 'sigmoid',
  mse: 'linear',
  mae: 'linear',
  huber: 'linear',
};
const ACTIVATION_LAYERS: Record<string, string> = { Softmax: 'softmax', ReLU: 'relu', LeakyReLU: 'leakyReLU', ELU: 'elu', PReLU: 'prelu', ThresholdedReLU: 'thresholdedReLU' };

/**
 * The activation applied last and the layer applying it: walks back from the output through layers without one
 * (Dropout, Flatten, Reshape), so an Activation layer after a linear Dense counts. A layer with several inputs
 * (Add, Concatenate) or the input itself ends the walk: no activation.
 */
function outputActivation(model: tf.LayersModel): { layer: string; activation: string } {
  let layer = model.outputs[0]!.sourceLayer;
  for (;;) {
    const cls = layer.getClassName();
    const known = ACTIVATION_LAYERS[cls];
    if (known) return { layer: layer.name, activation: known };
    const act = (layer.getConfig() as { activation?: unknown }).activation;
    if (typeof act === 'string') return { layer: layer.name, activation: act };
    const inbound = layer.inboundNodes[0]?.inboundLayers ?? [];
    if (cls === 'InputLayer' || inbound.length !== 1) return { layer: layer.name, activation: 'linear' };
    layer = inbound[0]!;
  }
}

function describeFeatures(features: readonly FeatureSpec[]): string {
  const one = (f: FeatureSpec) =>
    f.kind === 'numeric' ? f.name : f.kind === 'categorical' ? `${f.name} (one-hot ${f.values.length})` : `${f.name} (${f.width} values)`;
  const shown = features.slice(0, 8).map(one).join(', ');
  return features.length > 8 ? `${shown} and ${features.length - 8} more` : shown;
}

/**
 * Refuses a model that cannot train on the task: input width vs the encoded data (`features` only makes the message
 * name them; an image input [H, W, C] is compared by its size), output width vs task.outputs, and the output
 * activation vs the loss (softmax for the crossentropies, sigmoid for binary-crossentropy, none for regression).
 */
export function checkModelForTask(model: tf.LayersModel, task: Pick<ResolvedTask, 'type' | 'loss' | 'outputs'>, inputWidth: number, features?: readonly FeatureSpec[]): void {
  const { inShape, outputs } = modelShape(model);
  const width = inShape.reduce((a, b) => a * b, 1);
  if (width !== inputWidth) {
    const input = model.inputs[0]!.sourceLayer;
    const name = input.outboundNodes[0]?.outboundLayer.name ?? input.name;
    const expects = inShape.length > 1 ? `${inShape.join('x')} = ${width} values` : `${width} features`;
    throw new ValidationError(
      `model input ${name} expects ${expects}, the data encodes ${inputWidth}${features ? ` (features ${describeFeatures(features)})` : ''}; ` +
        `build the model with inputShape [${inputWidth}] (or an image shape of ${inputWidth} values), or change the run's features`,
    );
  }
  const out = outputActivation(model);
  if (outputs !== task.outputs) {
    const need = { classification: 'classes', binary: 'output (the probability of the positive class)', multilabel: 'labels', regression: 'targets' }[task.type];
    throw new ValidationError(
      `model output ${out.layer} has ${outputs} units, the ${task.type} task has ${task.outputs} ${need}; set units: ${task.outputs} on the last Dense layer`,
    );
  }
  checkOutputActivation(model, task.loss);
}

/** The output activation fits the loss (checkable before any data is seen: `fedge run start` refuses a mismatch at once). */
export function checkOutputActivation(model: tf.LayersModel, loss: ResolvedTask['loss']): void {
  const out = outputActivation(model);
  const need = ACTIVATION_FOR[loss];
  if (out.activation !== need)
    throw new ValidationError(
      `model output ${out.layer} uses activation ${out.activation}, loss ${loss} needs ${need === 'linear' ? 'linear (no activation)' : need}; ` +
        `set activation '${need}' on ${out.layer}`,
    );
}

/**
 * The dataset fits the model and the task: features vs model input, target columns vs model output, and every
 * label valid for the task (class index in range, 0/1, or a finite number), naming the first bad example.
 */
export function checkDataset(model: tf.LayersModel, ds: Dataset, task: Pick<ResolvedTask, 'type' | 'outputs'>): { inShape: number[]; outputs: number } {
  const { inShape, outputs } = modelShape(model);
  const features = inShape.reduce((a, b) => a * b, 1);
  if (features !== ds.features)
    throw new ValidationError(`dataset: ${ds.features} features per example, model "${model.name}" expects ${features}; encode the data to ${features} features or use a model built for ${ds.features}`);
  if (ds.x.length !== ds.n * ds.features) throw new ValidationError(`dataset: x holds ${ds.x.length} values, expected n x features = ${ds.n * ds.features}`);
  if (outputs !== task.outputs)
    throw new ValidationError(`model "${model.name}" has ${outputs} outputs, the task has ${task.outputs}; set units: ${task.outputs} on the model's last Dense layer`);
  const t = targetWidth(ds);
  if (ds.y.length !== ds.n * t) throw new ValidationError(`dataset: y holds ${ds.y.length} values, expected n x targets = ${ds.n * t}`);
  if (task.type === 'classification') {
    if (t !== 1)
      throw new ValidationError(`dataset: classification takes one class index per example, the dataset has ${t} target columns; for several 0/1 targets use task type multilabel`);
    for (let i = 0; i < ds.n; i++) {
      const l = ds.y[i]!;
      if (!(Number.isInteger(l) && l >= 0 && l < outputs))
        throw new ValidationError(`dataset: label ${l} of example ${i} is outside [0, ${outputs}); labels must be class indices 0..${outputs - 1} (the model has ${outputs} classes)`);
    }
    return { inShape, outputs };
  }
  if (t !== outputs)
    throw new ValidationError(`dataset: ${t} target columns per example, model "${model.name}" outputs ${outputs}; give the model one output per target (${task.type})`);
  for (let k = 0; k < ds.y.length; k++) {
    const v = ds.y[k]!;
    const where = `example ${Math.floor(k / t)}${t > 1 ? ` (target column ${k % t})` : ''}`;
    if (task.type === 'regression') {
      if (!Number.isFinite(v)) throw new ValidationError(`dataset: target ${v} of ${where} is not a finite number; drop or impute that example (--missing drop|mean)`);
    } else if (v !== 0 && v !== 1) throw new ValidationError(`dataset: target ${v} of ${where} must be 0 or 1 for ${task.type}; encode the positive class as 1 and the negative as 0`);
  }
  return { inShape, outputs };
}
