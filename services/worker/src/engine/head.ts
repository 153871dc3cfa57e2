import * as tf from '@tensorflow/tfjs';
import { EngineConfigError } from './errors.js';

/** Shape and regularisation of the classification head. */
export interface HeadOptions {
  /** Units of the hidden Dense(relu) layer. */
  units: number;
  /** Number of classes (units of the softmax layer). */
  classes: number;
  /** Dropout rate between the two Dense layers, in [0, 1). */
  dropout: number;
  /** Seeds the initializers and the dropout masks. */
  seed: number;
  /** L2 factor of a kernel regulariser on both Dense layers (Keras `regularizers.l2`: l2·Σw²). @default 0 */
  l2?: number;
  /** With 2 classes, 'sigmoid' makes the output one sigmoid unit (for binary cross-entropy). @default 'softmax' */
  binaryHead?: 'softmax' | 'sigmoid';
}

/**
 * GlobalAveragePooling2D → Dense(units, relu) → Dropout(rate) → Dense(classes, softmax)
 * (or Dense(1, sigmoid) for the binary sigmoid head).
 * The same layer objects can be applied to several inputs, so weights learnt
 * on pooled features carry over to a model that pools a feature map.
 */
export interface Head {
  pool: tf.layers.Layer;
  hidden: tf.layers.Layer;
  dropout: tf.layers.Layer;
  output: tf.layers.Layer;
  /** Dense → Dropout → Dense on already pooled features [null, C]. */
  applyToPooled(pooled: tf.SymbolicTensor): tf.SymbolicTensor;
  /** The whole head on a feature map [null, H, W, C]. */
  apply(featureMap: tf.SymbolicTensor): tf.SymbolicTensor;
}

export function validateHeadOptions(opts: HeadOptions): void {
  if (!Number.isInteger(opts.units) || opts.units < 1) throw new EngineConfigError(`headUnits must be a positive integer; got ${opts.units}`);
  if (!Number.isInteger(opts.classes) || opts.classes < 2) throw new EngineConfigError(`classes must be an integer >= 2; got ${opts.classes}`);
  if (!(opts.dropout >= 0 && opts.dropout < 1)) throw new EngineConfigError(`dropout must be in [0, 1); got ${opts.dropout}`);
  if (!Number.isInteger(opts.seed) || opts.seed < 0) throw new EngineConfigError(`seed must be a non-negative integer; got ${opts.seed}`);
  const l2 = opts.l2 ?? 0;
  if (!(l2 >= 0 && l2 <= 1)) throw new EngineConfigError(`l2 must be a number in [0, 1]; got ${opts.l2}`);
  if (opts.binaryHead === 'sigmoid' && opts.classes !== 2) {
    throw new EngineConfigError(`binaryHead 'sigmoid' needs exactly 2 classes; the dataset has ${opts.classes}`);
  }
}

/**
 * tfjs' Dropout passes one fixed `seed` to every call, which would repeat the
 * same mask each batch; without a seed it draws from Math.random. Advance the
 * seed on every call instead: different masks, reproducible runs.
 */
function seedDropoutPerCall(layer: tf.layers.Layer, seed: number): void {
  const target = layer as unknown as { seed?: number; call: (inputs: unknown, kwargs: unknown) => unknown };
  const original = target.call.bind(layer);
  dropoutCalls.set(layer, 0);
  target.call = (inputs, kwargs) => {
    const calls = (dropoutCalls.get(layer) ?? 0) + 1;
    dropoutCalls.set(layer, calls);
    // Seeds must be non-zero: tfjs treats 0 as "unseeded".
    target.seed = seed * 1_000_003 + calls;
    return original(inputs, kwargs);
  };
}

/** Calls made so far to each head's dropout layer: the position of its mask stream. */
const dropoutCalls = new WeakMap<tf.layers.Layer, number>();

/** The position of a head's dropout mask stream (a checkpoint stores it to resume the same masks). */
export function dropoutCallCount(head: Head): number {
  return dropoutCalls.get(head.dropout) ?? 0;
}

/** Puts a head's dropout mask stream back at a position read by {@link dropoutCallCount}. */
export function setDropoutCallCount(head: Head, calls: number): void {
  dropoutCalls.set(head.dropout, calls);
}

/** Builds a head with seeded initializers; its layers are built on first use. */
export function createHead(opts: HeadOptions): Head {
  validateHeadOptions(opts);
  const base = opts.seed * 7919;
  const l2 = opts.l2 ?? 0;
  // No regulariser object at 0: nothing is added to the loss, as before l2 existed.
  const kernelRegularizer = l2 > 0 ? tf.regularizers.l2({ l2 }) : undefined;
  const sigmoid = opts.binaryHead === 'sigmoid';
  const pool = tf.layers.globalAveragePooling2d({ name: 'head_pool' });
  const hidden = tf.layers.dense({
    name: 'head_dense',
    units: opts.units,
    activation: 'relu',
    kernelInitializer: tf.initializers.heNormal({ seed: base + 1 }),
    kernelRegularizer,
  });
  const dropout = tf.layers.dropout({ name: 'head_dropout', rate: opts.dropout });
  seedDropoutPerCall(dropout, base + 2);
  const output = tf.layers.dense({
    name: 'head_output',
    units: sigmoid ? 1 : opts.classes,
    activation: sigmoid ? 'sigmoid' : 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: base + 3 }),
    kernelRegularizer,
  });
  const applyToPooled = (pooled: tf.SymbolicTensor): tf.SymbolicTensor =>
    output.apply(dropout.apply(hidden.apply(pooled))) as tf.SymbolicTensor;
  return {
    pool,
    hidden,
    dropout,
    output,
    applyToPooled,
    apply: (featureMap) => applyToPooled(pool.apply(featureMap) as tf.SymbolicTensor),
  };
}
