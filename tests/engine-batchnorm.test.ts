/**
 * Keras BatchNormalization semantics on tfjs: frozen (and, by default,
 * unfrozen) BN layers run in inference mode during training.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { enforceBatchNormSemantics, selectBackend } from '../services/worker/src/engine/index.js';

/** input → BatchNormalization with non-trivial statistics. */
function bnModel(): { model: tf.LayersModel; bn: tf.layers.Layer } {
  const input = tf.input({ shape: [4, 4, 3] });
  const bn = tf.layers.batchNormalization({ name: 'bn' });
  const model = tf.model({ inputs: input, outputs: bn.apply(input) as tf.SymbolicTensor });
  bn.setWeights([tf.tensor1d([1.5, 0.5, 2]), tf.tensor1d([0.1, -0.2, 0.3]), tf.tensor1d([0.4, -1, 2]), tf.tensor1d([0.5, 2, 4])]);
  return { model, bn };
}

const x = () => tf.randomNormal([8, 4, 4, 3], 1, 2, 'float32', 11);

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** One SGD step of a loss on the model's output in training mode. */
function trainStep(model: tf.LayersModel, input: tf.Tensor): void {
  const optimizer = tf.train.sgd(0.1);
  optimizer.minimize(() => tf.mean(tf.square(model.apply(input, { training: true }) as tf.Tensor)) as tf.Scalar);
  optimizer.dispose();
}

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('enforceBatchNormSemantics', () => {
  it('tfjs alone uses batch statistics in a frozen layer (the trap)', () => {
    const { model, bn } = bnModel();
    bn.trainable = false;
    const input = x();
    const training = model.apply(input, { training: true }) as tf.Tensor;
    const inference = model.predict(input) as tf.Tensor;
    expect(maxDiff(training, inference)).toBeGreaterThan(0.1);
    tf.dispose([input, training, inference]);
    model.dispose();
  });

  it('runs a frozen layer in inference mode and leaves its statistics alone', () => {
    const { model, bn } = bnModel();
    bn.trainable = false;
    expect(enforceBatchNormSemantics(model.layers)).toBe(1);
    const input = x();
    const stats = bn.getWeights().map((w) => w.clone());
    const training = model.apply(input, { training: true }) as tf.Tensor;
    const inference = model.predict(input) as tf.Tensor;
    expect(maxDiff(training, inference)).toBe(0);
    // Same function as tfjs' own inference-mode batchNorm op.
    const [gamma, beta, mean, variance] = stats;
    const op = tf.batchNorm(input, mean, variance, beta, gamma, 1e-3);
    expect(maxDiff(op, inference)).toBeLessThan(1e-5);
    // A training-mode call would have moved the moving averages.
    bn.getWeights().forEach((w, k) => expect(maxDiff(w, stats[k])).toBe(0));
    tf.dispose([input, training, inference, op, ...stats]);
    model.dispose();
  });

  it('by default trains an unfrozen layer’s gamma/beta in inference mode', () => {
    const { model, bn } = bnModel();
    enforceBatchNormSemantics(model.layers);
    const input = x();
    const [gamma, beta, mean, variance] = bn.getWeights().map((w) => w.clone());
    const training = model.apply(input, { training: true }) as tf.Tensor;
    const inference = model.predict(input) as tf.Tensor;
    expect(maxDiff(training, inference)).toBe(0);
    trainStep(model, input);
    const after = bn.getWeights();
    expect(maxDiff(after[0], gamma)).toBeGreaterThan(0);
    expect(maxDiff(after[1], beta)).toBeGreaterThan(0);
    expect(maxDiff(after[2], mean)).toBe(0);
    expect(maxDiff(after[3], variance)).toBe(0);
    tf.dispose([input, training, inference, gamma, beta, mean, variance]);
    model.dispose();
  });

  it('with trainBatchNorm, an unfrozen layer uses batch statistics and updates them; freezing it later still wins', () => {
    const { model, bn } = bnModel();
    enforceBatchNormSemantics(model.layers, { trainBatchNorm: true });
    const input = x();
    const mean = bn.getWeights()[2].clone();
    const training = model.apply(input, { training: true }) as tf.Tensor;
    const inference = model.predict(input) as tf.Tensor;
    expect(maxDiff(training, inference)).toBeGreaterThan(0.1);
    expect(maxDiff(bn.getWeights()[2], mean)).toBeGreaterThan(0);
    // The flag is read at call time.
    bn.trainable = false;
    const frozen = model.apply(input, { training: true }) as tf.Tensor;
    const inferenceNow = model.predict(input) as tf.Tensor;
    expect(maxDiff(frozen, inferenceNow)).toBe(0);
    tf.dispose([input, mean, training, inference, frozen, inferenceNow]);
    model.dispose();
  });
});
