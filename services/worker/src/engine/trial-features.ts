import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { mapInBatches, predictInBatches } from './feature-cache.js';
import { foldedInference } from './folded-inference.js';
import { applyLayersAfterCut, cutInput } from './tail-model.js';

export type Split = 'train' | 'val' | 'test';
export type Splits<T> = Record<Split, T>;

export function mapSplits<T>(f: (split: Split) => T): Splits<T> {
  return { train: f('train'), val: f('val'), test: f('test') };
}

/** What the frozen part of the backbone contributes to a trial, computed once. */
export interface TrialFeatures {
  /** Global average pool of the backbone's last feature map, [n, C] per split: phase 1's input. */
  pooled: Splits<tf.Tensor>;
  /** Present when phase 2 will run: its cached input and the tail graph after the cut. */
  tail: {
    cut: number;
    /** Output of layer `cut`, per split. */
    activations: Splits<tf.Tensor>;
    /** A fresh input shaped like the cut, and the backbone's layers after it applied to it. */
    input: tf.SymbolicTensor;
    output: tf.SymbolicTensor;
  } | null;
}

/**
 * Runs the frozen layers once, in inference mode, over every split. Without a
 * cut the whole backbone runs (BatchNorm folded) and is pooled. With a cut the
 * prefix runs (folded) to the cut, and the pooled features come from the tail
 * applied to those activations, so the prefix is not run twice.
 *
 * @param keep registers each created tensor with the caller, who frees it.
 */
export function computeTrialFeatures(
  backbone: Backbone,
  data: LoadedDataset,
  opts: { batchSize: number; cut: number | null },
  keep: <T extends tf.Tensor>(t: T) => T,
): TrialFeatures {
  const { batchSize, cut } = opts;
  const imageOpts = { batchSize, inputSize: backbone.inputSize, preprocess: backbone.preprocess };
  const upTo = cut ?? backbone.model.layers.length - 1;
  const prefix = foldedInference(backbone.model, upTo);
  let computed: Splits<tf.Tensor>;
  try {
    computed = mapSplits((s) => keep(mapInBatches(data[s].x, { ...imageOpts, pool: cut === null }, prefix.run)));
  } finally {
    prefix.dispose();
  }
  if (cut === null) return { pooled: computed, tail: null };

  const activations = computed;
  const input = cutInput(backbone.model, cut);
  const output = applyLayersAfterCut(backbone.model, cut, input);
  // Shares the tail's layer applications with the fine-tune model built on
  // `output` later; releaseLayers frees them however many models use them.
  const tailFeatures = tf.model({ inputs: input, outputs: output });
  const pooled = mapSplits((s) => keep(predictInBatches(tailFeatures, activations[s] as tf.Tensor4D, { batchSize, pool: true })));
  return { pooled, tail: { cut, activations, input, output } };
}
