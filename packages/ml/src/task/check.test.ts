import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { FeatureSpec, ResolvedTask, TaskType } from '@fedge/proto';
import { initBackend } from '../backend.js';
import { createBuiltinModel, createMlp, outputActivationFor } from '../models.js';
import { getWeights } from '../weights.js';
import { checkModelForTask, checkTask } from './check.js';

beforeAll(async () => void (await initBackend('wasm')));

const task = (type: TaskType, outputs: number, loss = type === 'regression' ? 'mse' : type === 'classification' ? 'sparse-categorical-crossentropy' : 'binary-crossentropy'): ResolvedTask =>
  ({ type, loss, huberDelta: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, metrics: [], outputs }) as ResolvedTask;
const mlp = (type: TaskType, outputs: number, inputWidth = 12) =>
  createMlp({ inputWidth, hidden: [8], outputs, activation: outputActivationFor(type), seed: 1 });

describe('createMlp', () => {
  it('names layers fc1.., out and is seeded like the other built-ins', () => {
    const m = createMlp({ inputWidth: 5, hidden: [4, 3], outputs: 2, activation: 'sigmoid', seed: 7 });
    expect(m.layers.map((l) => l.name)).toEqual(['fc1', 'fc2', 'out']);
    expect(m.layers.map((l) => (l.getConfig() as { activation: string }).activation)).toEqual(['relu', 'relu', 'sigmoid']);
    expect(m.outputs[0]!.shape).toEqual([null, 2]);
    const again = createMlp({ inputWidth: 5, hidden: [4, 3], outputs: 2, activation: 'sigmoid', seed: 7 });
    const other = createMlp({ inputWidth: 5, hidden: [4, 3], outputs: 2, activation: 'sigmoid', seed: 8 });
    expect(getWeights(again).weights).toEqual(getWeights(m).weights);
    expect(getWeights(other).weights).not.toEqual(getWeights(m).weights);
    const linear = createMlp({ inputWidth: 3, hidden: [], outputs: 1, activation: 'linear', seed: 0 });
    expect(linear.layers.map((l) => l.name)).toEqual(['out']);
    expect(() => createMlp({ inputWidth: 3, hidden: [4, 0], outputs: 1, activation: 'linear', seed: 0 })).toThrow(/model.hidden\[1\]/);
    for (const x of [m, again, other, linear]) x.dispose();
  });

  it('maps task types to output activations', () => {
    expect((['classification', 'binary', 'multilabel', 'regression'] as const).map(outputActivationFor)).toEqual(['softmax', 'sigmoid', 'sigmoid', 'linear']);
  });
});

describe('checkModelForTask', () => {
  it('accepts each task with its matching MLP and the MNIST models for 10 classes', () => {
    for (const [type, outputs] of [['classification', 4], ['binary', 1], ['multilabel', 3], ['regression', 2]] as const) {
      const m = mlp(type, outputs);
      expect(() => checkModelForTask(m, task(type, outputs), 12)).not.toThrow();
      m.dispose();
    }
    const cnn = createBuiltinModel('mnist-cnn', 1);
    expect(() => checkModelForTask(cnn, task('classification', 10), 784)).not.toThrow();
    cnn.dispose();
  });

  it('names the input layer, the widths and the features on an input mismatch', () => {
    const m = mlp('regression', 1);
    const features: FeatureSpec[] = [
      { name: 'age', kind: 'numeric', shift: 0, scale: 1, mean: 0 },
      { name: 'city', kind: 'categorical', values: ['a', 'b', 'c'] },
    ];
    expect(() => checkModelForTask(m, task('regression', 1), 15, features)).toThrow(
      /^model input fc1 expects 12 features, the data encodes 15 \(features age, city \(one-hot 3\)\); build the model with inputShape \[15\]/,
    );
    m.dispose();
    const img = tf.sequential({ layers: [tf.layers.flatten({ name: 'flat', inputShape: [8, 8, 3] }), tf.layers.dense({ name: 'out', units: 2, activation: 'softmax' })] });
    expect(() => checkModelForTask(img, task('classification', 2), 64)).toThrow(/model input flat expects 8x8x3 = 192 values, the data encodes 64/);
    expect(() => checkModelForTask(img, task('classification', 2), 192)).not.toThrow();
    img.dispose();
  });

  it('refuses a wrong output width naming the layer and the fix', () => {
    const m = mlp('classification', 3);
    expect(() => checkModelForTask(m, task('classification', 5), 12)).toThrow(/model output out has 3 units, the classification task has 5 classes; set units: 5/);
    m.dispose();
  });

  it('refuses an output activation that does not fit the loss, counting an Activation layer after the Dense', () => {
    const cases: [TaskType, 'softmax' | 'sigmoid' | 'linear', RegExp][] = [
      ['regression', 'sigmoid', /model output out uses activation sigmoid, loss mse needs linear \(no activation\); set activation 'linear' on out/],
      ['binary', 'linear', /uses activation linear, loss binary-crossentropy needs sigmoid/],
      ['classification', 'sigmoid', /uses activation sigmoid, loss sparse-categorical-crossentropy needs softmax/],
    ];
    for (const [type, activation, message] of cases) {
      const m = createMlp({ inputWidth: 12, hidden: [], outputs: 2 - Number(type === 'binary'), activation, seed: 1 });
      expect(() => checkModelForTask(m, task(type, 2 - Number(type === 'binary')), 12)).toThrow(message);
      m.dispose();
    }
    const withActivation = tf.sequential({
      layers: [
        tf.layers.dense({ name: 'logits', inputShape: [12], units: 3 }),
        tf.layers.activation({ name: 'probs', activation: 'softmax' }),
        tf.layers.dropout({ name: 'drop', rate: 0.1 }),
      ],
    });
    expect(() => checkModelForTask(withActivation, task('classification', 3), 12)).not.toThrow();
    expect(() => checkModelForTask(withActivation, task('multilabel', 3), 12)).toThrow(/model output probs uses activation softmax/);
    withActivation.dispose();
  });
});

describe('checkTask', () => {
  it('refuses a loss, metric or outputs that do not belong to the type', () => {
    expect(() => checkTask(task('regression', 1, 'binary-crossentropy'))).toThrow(/task.loss: regression cannot train with binary-crossentropy; use mse or mae or huber/);
    expect(() => checkTask({ ...task('regression', 1), metrics: ['auc'] })).toThrow(/task.metrics: auc does not apply to regression/);
    expect(() => checkTask(task('binary', 2))).toThrow(/task.outputs: binary has one output/);
    expect(() => checkTask({ ...task('binary', 1), optimizer: { name: 'sgd', learningRate: 1, beta1: 0.5 } })).toThrow(/optimizer.beta1/);
  });
});
