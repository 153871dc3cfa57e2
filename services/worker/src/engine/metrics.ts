import * as tf from '@tensorflow/tfjs';
import { yieldToEventLoop } from './batched-inference.js';

/** One class's scores on a split (sklearn's classification_report). */
export interface ClassMetrics {
  name: string;
  /** Of the images predicted as this class, the share that are; 0 when none was predicted (sklearn zero_division=0). */
  precision: number;
  /** Of the images of this class, the share predicted as it; 0 when the split has none. */
  recall: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  /** Images of this class in the split. */
  support: number;
}

/** What a trial stores about its final model on the test split. */
export interface ClassificationMetrics {
  /** Images scored. */
  count: number;
  accuracy: number;
  /** Label among the 5 highest scores (Keras top_k_categorical_accuracy); null for 5 classes or fewer, where it is always 1. */
  top5Accuracy: number | null;
  perClass: ClassMetrics[];
  /** confusion[true][predicted]: image counts, classes × classes. */
  confusion: number[][];
}

/** Index of the highest score in each row of a row-major [n, classes] array; the first on ties (as argmax). */
export function argmaxRows(scores: ArrayLike<number>, classes: number): Int32Array {
  const n = scores.length / classes;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[i * classes + c] > scores[i * classes + best]) best = c;
    out[i] = best;
  }
  return out;
}

/**
 * Share of rows whose label scores among the k highest. A label counts when
 * fewer than k classes score strictly higher, so ties count in its favour
 * (TensorFlow's in_top_k).
 */
export function topKAccuracy(scores: ArrayLike<number>, labels: ArrayLike<number>, classes: number, k: number): number {
  const n = labels.length;
  if (n === 0) return Number.NaN;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const own = scores[i * classes + labels[i]];
    let higher = 0;
    for (let c = 0; c < classes && higher < k; c++) if (scores[i * classes + c] > own) higher++;
    if (higher < k) hits++;
  }
  return hits / n;
}

/** confusion[true][predicted] counts. @throws RangeError on a label or prediction outside 0..classes-1 */
export function confusionMatrix(labels: ArrayLike<number>, predicted: ArrayLike<number>, classes: number): number[][] {
  if (labels.length !== predicted.length) throw new RangeError(`confusionMatrix: ${labels.length} labels but ${predicted.length} predictions`);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i];
    const p = predicted[i];
    if (!(t >= 0 && t < classes && p >= 0 && p < classes)) throw new RangeError(`confusionMatrix: pair ${i} (${t}, ${p}) is outside 0..${classes - 1}`);
    m[t][p] += 1;
  }
  return m;
}

/** Precision, recall, F1 and support per class from a confusion matrix. */
export function perClassMetrics(confusion: number[][], classNames: readonly string[]): ClassMetrics[] {
  return classNames.map((name, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((s, v) => s + v, 0);
    const predicted = confusion.reduce((s, row) => s + row[c], 0);
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { name, precision, recall, f1, support };
  });
}

/** Every stored metric from class scores (row-major [n, classes]: probabilities or logits) and labels. */
export function classificationMetrics(scores: ArrayLike<number>, labels: ArrayLike<number>, classNames: readonly string[]): ClassificationMetrics {
  const classes = classNames.length;
  if (scores.length !== labels.length * classes) {
    throw new RangeError(`classificationMetrics: ${scores.length} scores for ${labels.length} labels × ${classes} classes`);
  }
  const predicted = argmaxRows(scores, classes);
  const confusion = confusionMatrix(labels, predicted, classes);
  const correct = confusion.reduce((s, row, c) => s + row[c], 0);
  return {
    count: labels.length,
    accuracy: labels.length === 0 ? Number.NaN : correct / labels.length,
    top5Accuracy: classes > 5 ? topKAccuracy(scores, labels, classes, 5) : null,
    perClass: perClassMetrics(confusion, classNames),
    confusion,
  };
}

/**
 * Scores `x` ([n, ...], images or cached features) with `model` in batches
 * (inference mode), yielding to the event loop between batches so lease
 * heartbeats keep firing, and computes {@link classificationMetrics}
 * against `labels` ([n] class ids).
 */
export async function evaluateClassifier(model: tf.LayersModel, x: tf.Tensor, labels: tf.Tensor, classNames: readonly string[], batchSize: number): Promise<ClassificationMetrics> {
  const n = x.shape[0];
  const classes = classNames.length;
  const scores = new Float32Array(n * classes);
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const out = tf.tidy(() => {
      const p = model.predict(x.slice([start], [size]), { batchSize: size }) as tf.Tensor;
      // The binary sigmoid head (recipe binaryHead) outputs P(class 1) alone.
      return p.shape[1] === 1 && classes === 2 ? tf.concat([tf.sub(1, p), p], 1) : p;
    });
    try {
      scores.set((await out.data()) as Float32Array, start * classes);
    } finally {
      out.dispose();
    }
    await yieldToEventLoop();
  }
  return classificationMetrics(scores, (await labels.data()) as Int32Array, classNames);
}
