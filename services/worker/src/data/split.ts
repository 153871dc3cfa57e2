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
