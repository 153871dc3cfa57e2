import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from './recipe-options.js';
import { fuseAdamOnWasm } from './wasm-kernels/adam-update.js';

/**
 * An optimizer with Keras' defaults: adam (β1 0.9, β2 0.999, ε 1e-7), sgd
 * (with `momentum`: tfjs' momentum optimizer, which equals Keras' SGD while
 * the learning rate is constant), rmsprop (ρ 0.9, no momentum, ε 1e-7).
 * tfjs' ε default is the backend's float32 epsilon, 1e-7, as in Keras.
 */
export function createOptimizer(name: OptimizerName, learningRate: number, momentum = 0): tf.Optimizer {
  switch (name) {
    case 'adam':
      // On wasm one kernel per variable instead of 13 (wasm-kernels/adam-update.ts): tfjs' moments, the step rounded once.
      return fuseAdamOnWasm(tf.train.adam(learningRate, 0.9, 0.999));
    case 'sgd':
      return momentum > 0 ? freeRateOnDispose(tf.train.momentum(learningRate, momentum)) : tf.train.sgd(learningRate);
    case 'rmsprop':
      return tf.train.rmsprop(learningRate, 0.9, 0);
  }
}

/**
 * tfjs 4.22's MomentumOptimizer.dispose frees its momentum scalar but not the
 * learning-rate scalar its SGD base keeps (`c`): one tensor leaked per trial.
 */
function freeRateOnDispose(optimizer: tf.Optimizer): tf.Optimizer {
  const o = optimizer as unknown as { c?: tf.Tensor; dispose(): void };
  const original = o.dispose.bind(optimizer);
  o.dispose = () => {
    original();
    o.c?.dispose();
  };
  return optimizer;
}

/**
 * Changes the learning rate for the next steps. SGD (and momentum) keep the
 * rate as a scalar tensor made in setLearningRate; adam and rmsprop read the
 * `learningRate` field at every step.
 */
export function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  const o = optimizer as unknown as { learningRate: number; setLearningRate?: (lr: number) => void };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(learningRate);
  else o.learningRate = learningRate;
}

export function learningRateOf(optimizer: tf.Optimizer): number {
  return (optimizer as unknown as { learningRate: number }).learningRate;
}

/**
 * tfjs optimizers keep their slots (Adam moments, momentum, RMS averages) by
 * the position of a variable in the gradient map, not by its name. When a
 * re-compile adds trainable variables (gradual unfreezing) they come first in
 * layer order and would shift every slot onto another variable. This keeps the
 * first-seen order and appends new variables, so each keeps its own state and
 * new ones start from zero, as with a Keras optimizer (slots per variable).
 * Variables must only be added, never removed, while the optimizer is in use.
 */
export function keepSlotsPerVariable(optimizer: tf.Optimizer): tf.Optimizer {
  const order: string[] = [];
  slotOrders.set(optimizer, order);
  const original = optimizer.applyGradients.bind(optimizer);
  optimizer.applyGradients = (grads: tf.NamedTensorMap | Array<{ name: string; tensor: tf.Tensor }>) => {
    const map: tf.NamedTensorMap = Array.isArray(grads) ? Object.fromEntries(grads.map((g) => [g.name, g.tensor])) : grads;
    for (const name of Object.keys(map)) if (!order.includes(name)) order.push(name);
    const sorted: tf.NamedTensorMap = {};
    for (const name of order) {
      if (!(name in map)) throw new Error(`optimizer lost variable '${name}': trainable variables may only be added`);
      sorted[name] = map[name];
    }
    original(sorted);
  };
  return optimizer;
}

const slotOrders = new WeakMap<tf.Optimizer, string[]>();

/**
 * The variable names in slot order of an optimizer wrapped by
 * keepSlotsPerVariable (null for a plain one, whose order is the gradient
 * map's). A checkpoint stores it with the slots.
 */
export function slotOrderOf(optimizer: tf.Optimizer): readonly string[] | null {
  return slotOrders.get(optimizer) ?? null;
}

/** Restores the slot order of a wrapped optimizer (before its first step), e.g. from a checkpoint. */
export function setSlotOrder(optimizer: tf.Optimizer, names: readonly string[]): void {
  const order = slotOrders.get(optimizer);
  if (!order) throw new Error('setSlotOrder needs an optimizer wrapped by keepSlotsPerVariable');
  order.splice(0, order.length, ...names);
}
