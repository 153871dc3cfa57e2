/**
 * Stored trial metrics: the pure functions on made-up numbers, the batched
 * model evaluation, and a tiny_cnn trial's outcome (cpu).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  argmaxRows, classificationMetrics, confusionMatrix, evaluateClassifier, perClassMetrics, topKAccuracy,
} from '../services/worker/src/engine/metrics.js';
import { selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

describe('metrics on made-up predictions', () => {
  it('confusion matrix, precision, recall and F1 per class', () => {
    //           true: 0 0 0 1 1 2 2 2 2
    //      predicted: 0 0 1 1 2 2 2 2 0
    const labels = [0, 0, 0, 1, 1, 2, 2, 2, 2];
    const predicted = [0, 0, 1, 1, 2, 2, 2, 2, 0];
    const m = confusionMatrix(labels, predicted, 3);
    expect(m).toEqual([
      [2, 1, 0],
      [0, 1, 1],
      [1, 0, 3],
    ]);
    const pc = perClassMetrics(m, ['a', 'b', 'c']);
    expect(pc.map((c) => c.support)).toEqual([3, 2, 4]);
    expect(pc[0].precision).toBeCloseTo(2 / 3);
    expect(pc[0].recall).toBeCloseTo(2 / 3);
    expect(pc[1].precision).toBeCloseTo(1 / 2);
    expect(pc[1].recall).toBeCloseTo(1 / 2);
    expect(pc[2].precision).toBeCloseTo(3 / 4);
    expect(pc[2].recall).toBeCloseTo(3 / 4);
    expect(pc[2].f1).toBeCloseTo(3 / 4);
    expect(() => confusionMatrix([0, 3], [0, 0], 3)).toThrow(RangeError);
  });

  it('a class never predicted has precision 0 (sklearn zero_division=0); one never present has recall 0', () => {
    const pc = perClassMetrics(confusionMatrix([0, 0, 1], [0, 0, 0], 3), ['a', 'b', 'c']);
    expect(pc[1]).toEqual({ name: 'b', precision: 0, recall: 0, f1: 0, support: 1 });
    expect(pc[2]).toEqual({ name: 'c', precision: 0, recall: 0, f1: 0, support: 0 });
    expect(pc[0].precision).toBeCloseTo(2 / 3);
    expect(pc[0].recall).toBe(1);
    expect(pc[0].f1).toBeCloseTo(0.8);
  });

  it('argmax takes the first of ties; top-k counts ties for the label', () => {
    expect(Array.from(argmaxRows([0.2, 0.5, 0.5, 0.9, 0.1, 0], 3))).toEqual([1, 0]);
    // Row scores over 7 classes; label rank (0 = best): 0, 4, 5, tied at 4.
    const scores = [
      [7, 6, 5, 4, 3, 2, 1],
      [7, 6, 5, 4, 3, 2, 1],
      [7, 6, 5, 4, 3, 2, 1],
      [7, 6, 5, 4, 3, 3, 1],
    ].flat();
    const labels = [0, 4, 5, 5];
    expect(topKAccuracy(scores, labels, 7, 5)).toBe(3 / 4);
    expect(topKAccuracy(scores, labels, 7, 1)).toBe(1 / 4);
  });

  it('classificationMetrics: top-5 only above 5 classes', () => {
    const three = classificationMetrics([0.9, 0.05, 0.05, 0.1, 0.1, 0.8], [0, 1], ['a', 'b', 'c']);
    expect(three).toMatchObject({ count: 2, accuracy: 0.5, top5Accuracy: null, confusion: [[1, 0, 0], [0, 0, 1], [0, 0, 0]] });
    const names = Array.from({ length: 7 }, (_, i) => `k${i}`);
    const seven = classificationMetrics([7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 6, 7], [6, 6], names);
    expect(seven.accuracy).toBe(0.5);
    expect(seven.top5Accuracy).toBe(0.5);
    expect(() => classificationMetrics([1, 2], [0, 1], ['a', 'b'])).toThrow(/2 scores for 2 labels × 2 classes/);
  });
});

describe('metrics from a model', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it('evaluateClassifier in batches equals one predict over all', async () => {
    const input = tf.input({ shape: [4] });
    const model = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 6, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor });
    const x = tf.randomNormal([23, 4], 0, 1, 'float32', 3);
    const y = tf.tensor1d([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4], 'int32');
    const before = tf.memory().numTensors;
    const m = await evaluateClassifier(model, x, y, ['a', 'b', 'c', 'd', 'e', 'f'], 5);
    expect(tf.memory().numTensors).toBe(before);
    const all = model.predict(x) as tf.Tensor;
    const expected = classificationMetrics(all.dataSync(), y.dataSync(), ['a', 'b', 'c', 'd', 'e', 'f']);
    expect(m).toEqual(expected);
    expect(m.count).toBe(23);
    expect(m.top5Accuracy).not.toBeNull();
    tf.dispose([x, y, all]);
    model.dispose();
  });

  it('a trial stores test metrics consistent with its test accuracy, and time per phase', async () => {
    const data = stripesDataset({ train: 48, val: 16, test: 20, size: 16, seed: 4 });
    const o = await trainTrial(
      { backbone: 'tiny_cnn', imageSize: 16, unfreeze: 13, learningRate: 0.01, dropout: 0.1, headUnits: 16, headEpochs: 2, fineTuneEpochs: 1, fineTuneLrFactor: 0.5, batchSize: 16, seed: 3 },
      data,
      { onEpoch: () => 'CONTINUE' },
    );
    const m = o.testMetrics;
    expect(m.count).toBe(20);
    expect(m.accuracy).toBeCloseTo(o.testAccuracy, 5);
    expect(m.top5Accuracy).toBeNull();
    expect(m.perClass.map((c) => c.name)).toEqual(data.classNames);
    expect(m.perClass.map((c) => c.support)).toEqual([7, 7, 6]);
    expect(m.confusion.flat().reduce((s, v) => s + v, 0)).toBe(20);
    for (const phase of ['features', 'head', 'finetune', 'evaluate'] as const) expect(o.phaseSeconds[phase]).toBeGreaterThan(0);
    const phases = o.phaseSeconds.features + o.phaseSeconds.head + o.phaseSeconds.finetune + o.phaseSeconds.evaluate;
    expect(phases).toBeLessThanOrEqual(o.seconds + 0.05);
    expect(o.totalParams).toBeGreaterThan(o.trainableParams);
    disposeData(data);
  }, 30_000);
});
