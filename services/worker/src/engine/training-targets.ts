import * as tf from '@tensorflow/tfjs';
import type { BinaryHead } from './recipe-options.js';

type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

/** What the head outputs, how labels are fed to it, and the loss it trains on. */
export interface TrainingTargets {
  /** Units of the output layer: the class count, or 1 for the sigmoid head. */
  units: number;
  activation: 'softmax' | 'sigmoid';
  /**
   * tfjs picks the 'accuracy' metric from the loss and output shape:
   * sparse-categorical for the sparse loss, categorical for one-hot, binary for one unit.
   */
  loss: string | LossFn;
  /** Integer labels → the targets `loss` expects. Call inside a tidy or dispose the result. */
  encode(labels: tf.Tensor1D): tf.Tensor2D;
}

/**
 * - softmax, no smoothing: integer labels [n, 1] with sparse categorical
 *   cross-entropy (bit-identical to the engine before label smoothing existed);
 * - softmax with smoothing s: one-hot targets y·(1 − s) + s/K with categorical
 *   cross-entropy (Keras CategoricalCrossentropy(label_smoothing=s));
 * - sigmoid (2 classes): one unit, 0/1 targets and binary cross-entropy; with
 *   smoothing the loss sees y·(1 − s) + s/2 (Keras BinaryCrossentropy), while
 *   the targets stay 0/1 so that accuracy and class weights read them.
 */
export function trainingTargets(head: BinaryHead, classes: number, labelSmoothing: number): TrainingTargets {
  const s = labelSmoothing;
  if (head === 'sigmoid') {
    const loss: string | LossFn = s === 0
      ? 'binaryCrossentropy'
      : (yTrue, yPred) => tf.tidy(() => tf.metrics.binaryCrossentropy(tf.add(tf.mul(yTrue, 1 - s), 0.5 * s), yPred));
    return { units: 1, activation: 'sigmoid', loss, encode: (y) => tf.tidy(() => y.cast('float32').reshape([-1, 1]) as tf.Tensor2D) };
  }
  if (s === 0) {
    return { units: classes, activation: 'softmax', loss: 'sparseCategoricalCrossentropy', encode: (y) => tf.tidy(() => y.cast('float32').reshape([-1, 1]) as tf.Tensor2D) };
  }
  return {
    units: classes,
    activation: 'softmax',
    loss: 'categoricalCrossentropy',
    encode: (y) => tf.tidy(() => tf.add(tf.mul(tf.oneHot(y.cast('int32'), classes), 1 - s), s / classes) as tf.Tensor2D),
  };
}
