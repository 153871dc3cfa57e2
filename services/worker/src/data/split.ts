import type { SplitOptions } from './dataset-spec.js';
import { DatasetError } from './errors.js';
import { mulberry32, shuffleInPlace } from './prng.js';

/** Indices (into the dataset's image list) of each split; each list is shuffled. */
export interface SplitIndices {
  train: number[];
  val: number[];
  test: number[];
}

/**
 * Checks split fractions: each finite and in [0, 1), together < 1; seed a
 * finite number.
 * @throws DatasetError DATASET_INVALID naming the field.
 */
export function validateSplitOptions(opts: SplitOptions): void {
  for (const field of ['valFraction', 'testFraction'] as const) {
    const v = opts[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) {
      throw new DatasetError('DATASET_INVALID', `split.${field}: expected a number in [0, 1), got ${JSON.stringify(v)}`);
    }
  }
  if (opts.valFraction + opts.testFraction >= 1) {
    throw new DatasetError(
      'DATASET_INVALID',
      `split: expected valFraction + testFraction < 1, got ${opts.valFraction} + ${opts.testFraction}`,
    );
  }
  if (typeof opts.seed !== 'number' || !Number.isFinite(opts.seed)) {
    throw new DatasetError('DATASET_INVALID', `split.seed: expected a finite number, got ${JSON.stringify(opts.seed)}`);
  }
}

/**
 * How many of a class's `n` images go to val and test:
 * `round(n * fraction)`, raised to 1 when the class has >= 3 images and the
 * fraction is > 0, then lowered (largest first) so that train keeps >= 1 image.
 */
export function splitCounts(n: number, valFraction: number, testFraction: number): { train: number; val: number; test: number } {
  let val = Math.round(n * valFraction);
  let test = Math.round(n * testFraction);
  if (n >= 3) {
    if (valFraction > 0) val = Math.max(1, val);
    if (testFraction > 0) test = Math.max(1, test);
  }
  while (n >= 1 && val + test > n - 1) {
    if (val >= test && val > 0) val--;
    else test--;
  }
  return { train: n - val - test, val, test };
}

/**
 * Stratified train/val/test split. Per class (in class-id order) the class's
 * indices are shuffled with a mulberry32 stream seeded by `opts.seed`, then
 * cut into val, test and train by {@link splitCounts}; finally each split is
 * shuffled with the same stream so classes are interleaved.
 * Deterministic: same labels and options → same split.
 *
 * @param labels class id of each image, in [0, numClasses).
 */
export function stratifiedSplit(labels: ArrayLike<number>, numClasses: number, opts: SplitOptions): SplitIndices {
  validateSplitOptions(opts);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) {
      throw new DatasetError('DATASET_INVALID', `dataset: label ${c} of image ${i} is outside [0, ${numClasses})`);
    }
    byClass[c].push(i);
  }
  const rng = mulberry32(opts.seed);
  const out: SplitIndices = { train: [], val: [], test: [] };
  for (const idx of byClass) {
    shuffleInPlace(idx, rng);
    const counts = splitCounts(idx.length, opts.valFraction, opts.testFraction);
    out.val.push(...idx.slice(0, counts.val));
    out.test.push(...idx.slice(counts.val, counts.val + counts.test));
    out.train.push(...idx.slice(counts.val + counts.test));
  }
  shuffleInPlace(out.train, rng);
  shuffleInPlace(out.val, rng);
  shuffleInPlace(out.test, rng);
  return out;
}

/**
 * A split fixed by the data source rather than drawn from one pool
 * (Fashion-MNIST with `test: official`): indices into the dataset's images.
 */
export interface Presplit {
  /** The whole test split, e.g. the official test files. */
  test: number[];
  /**
   * Per class, training-pool images in draw order: the first `trainPerClass`
   * are training images, validation takes the next ones.
   */
  poolByClass: number[][];
  trainPerClass: number;
}

/**
 * Splits a {@link Presplit}: per class, the first `trainPerClass` pool images
 * go to train and the next `round(trainPerClass × valFraction)` (at least 1
 * when valFraction > 0) to val; test is `presplit.test`. `testFraction` is
 * not used. Each split is shuffled with a mulberry32 stream seeded by
 * `opts.seed`, so classes are interleaved; membership does not depend on it.
 *
 * @throws DatasetError DATASET_INVALID when a class's pool is too small for
 *   its validation images.
 */
export function presplitIndices(presplit: Presplit, opts: SplitOptions): SplitIndices {
  validateSplitOptions(opts);
  const { trainPerClass } = presplit;
  const valPerClass = opts.valFraction > 0 ? Math.max(1, Math.round(trainPerClass * opts.valFraction)) : 0;
  const out: SplitIndices = { train: [], val: [], test: [...presplit.test] };
  presplit.poolByClass.forEach((pool, c) => {
    if (pool.length < trainPerClass + valPerClass) {
      throw new DatasetError(
        'DATASET_INVALID',
        `dataset.perClass: class ${c} has ${pool.length} training images, fewer than perClass (${trainPerClass}) + ` +
          `perClass × split.valFraction (${valPerClass}) for validation; lower perClass or split.valFraction`,
      );
    }
    out.train.push(...pool.slice(0, trainPerClass));
    out.val.push(...pool.slice(trainPerClass, trainPerClass + valPerClass));
  });
  const rng = mulberry32(opts.seed);
  shuffleInPlace(out.train, rng);
  shuffleInPlace(out.val, rng);
  shuffleInPlace(out.test, rng);
  return out;
}
