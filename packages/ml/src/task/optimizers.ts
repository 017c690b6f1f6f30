/** The task's optimizer as a tfjs Optimizer, built fresh for every round so local state (momenta, moments) never outlives one. */
import * as tf from '@tensorflow/tfjs';
import { OPTIMIZERS, ValidationError, type OptimizerName, type OptimizerSpec, type ResolvedTask } from '@fedge/proto';

/** Options each optimizer reads; any other is refused rather than silently ignored (momentum on sgd would be). */
const OPTIONS: Record<OptimizerName, readonly (keyof OptimizerSpec)[]> = {
  sgd: [],
  momentum: ['momentum', 'nesterov'],
  adam: ['beta1', 'beta2', 'epsilon'],
  rmsprop: ['rho', 'momentum', 'epsilon'],
  adagrad: ['initialAccumulatorValue'],
};

/** Refuses an unknown optimizer or an option it would ignore; pure, so the coordinator can check a run config without tfjs. */
export function checkOptimizer(spec: OptimizerSpec): void {
  const allowed = OPTIONS[spec.name] as readonly string[] | undefined;
  if (!allowed) throw new ValidationError(`optimizer.name: unknown optimizer "${String(spec.name)}"; use one of ${OPTIMIZERS.join(', ')}`);
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'name' || key === 'learningRate' || value === undefined || allowed.includes(key)) continue;
    const users = OPTIMIZERS.filter((o) => (OPTIONS[o] as readonly string[]).includes(key));
    throw new ValidationError(`optimizer.${key}: ${spec.name} does not use it (only ${users.join(', ')} do); remove it or pick one of those optimizers`);
  }
}

/** Defaults follow Keras: momentum 0.9, adam 0.9/0.999, rmsprop rho 0.9 momentum 0, adagrad initial accumulator 0.1. */
export function createOptimizer(spec: ResolvedTask['optimizer']): tf.Optimizer {
  checkOptimizer(spec);
  const lr = spec.learningRate;
  if (!(lr > 0 && Number.isFinite(lr))) throw new ValidationError(`optimizer.learningRate: expected a positive number, got ${lr}`);
  switch (spec.name) {
    case 'sgd':
      return tf.train.sgd(lr);
    case 'momentum':
      return tf.train.momentum(lr, spec.momentum ?? 0.9, spec.nesterov ?? false);
    case 'adam':
      // Undefined epsilon lets tfjs use the backend's (1e-7 on float32 backends, Keras' default).
      return tf.train.adam(lr, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon);
    case 'rmsprop':
      return tf.train.rmsprop(lr, spec.rho ?? 0.9, spec.momentum ?? 0, spec.epsilon);
    case 'adagrad':
      return tf.train.adagrad(lr, spec.initialAccumulatorValue ?? 0.1);
  }
}
