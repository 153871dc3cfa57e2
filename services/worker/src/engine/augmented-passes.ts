import type * as tf from '@tensorflow/tfjs';
import { augmentationKey, augmentationProblem, isIdentityAugmentation, type AugmentationConfig } from './augment-config.js';
import { EngineConfigError } from './errors.js';
import { passAugmenter } from './augment.js';
import type { MemoFeatures } from './feature-memo.js';

/**
 * Augmentation with a frozen prefix that runs once: instead of a fresh view
 * per epoch (Keras' ImageDataGenerator), the training split goes through the
 * prefix `passes` times, each time augmented from (seed, pass), and epoch e
 * (1-based, over both phases) trains on pass (e − 1) mod passes. Every trial
 * with the same cache key sees identical views: fair between trials and
 * reproducible. Val and test are never augmented.
 */
export interface PassAugmentation {
  config: AugmentationConfig;
  /** The trial seed: views are drawn from (seed, pass, image index). */
  seed: number;
}

/** The training split's frozen-prefix output per pass. */
export interface TrainPasses {
  pooled: tf.Tensor[];
  /** The cut's activations per pass, when phase 2 runs. */
  activations: tf.Tensor[] | null;
}

/** null when nothing would change a pixel: then the trial is exactly a trial without augmentation (same cache key). */
export function activeAugmentation(a: PassAugmentation | null | undefined): PassAugmentation | null {
  if (!a || isIdentityAugmentation(a.config)) return null;
  const problem = augmentationProblem(a.config);
  if (problem) throw new EngineConfigError(problem);
  return a;
}

/** The part of a feature-cache key that names the augmented views. */
export function augmentedPassesKey(a: PassAugmentation): string {
  return `${augmentationKey(a.config)}|seed=${a.seed}`;
}

/** One augmenter per pass for the training images `x` ([undefined], one plain pass, without augmentation). */
export function trainAugmenters(a: PassAugmentation | null, x: tf.Tensor4D): Array<((batch: tf.Tensor4D, start: number) => tf.Tensor4D) | undefined> {
  if (!a) return [undefined];
  const size: [number, number] = [x.shape[1], x.shape[2]];
  return Array.from({ length: a.config.passes }, (_, pass) => passAugmenter(a.config, x.shape[0], size, a.seed, pass));
}

/** The passes of a computed (or memoized) feature set, pass 0 first. */
export function trainPassesOf(f: MemoFeatures): TrainPasses {
  const extra = f.extraTrainPasses;
  return {
    pooled: [f.pooled.train, ...(extra?.pooled ?? [])],
    activations: f.activations ? [f.activations.train, ...(extra?.activations ?? [])] : null,
  };
}

/**
 * fitEpochs' training input for a phase whose first epoch is the trial's
 * epoch `epochsBefore + 1`: the one tensor without augmentation, else the
 * pass of each epoch.
 */
export function passInput(passes: readonly tf.Tensor[], epochsBefore: number): tf.Tensor | ((epoch: number) => tf.Tensor) {
  if (passes.length === 1) return passes[0];
  return (epoch) => passes[(epochsBefore + epoch) % passes.length];
}
