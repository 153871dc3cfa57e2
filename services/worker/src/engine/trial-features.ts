import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { mapInBatches, predictInBatches } from './batched-inference.js';
import { foldedInference } from './folded-inference.js';
import type { FeatureMemo } from './feature-memo.js';
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

/** Where to look up and store a trial's frozen-prefix features across trials. */
export interface FeatureMemoRef {
  memo: FeatureMemo;
  /** Identifies the data exactly: dataset spec, split fractions and seed, image size. */
  dataKey: string;
}

/**
 * Runs the frozen layers once, in inference mode, over every split. Without a
 * cut the whole backbone runs (BatchNorm folded) and is pooled. With a cut the
 * prefix runs (folded) to the cut, and the pooled features come from the tail
 * applied to those activations, so the prefix is not run twice. With a memo,
 * a trial whose key was computed before (same backbone weights, cut and
 * data) reuses those tensors instead.
 *
 * @param keep registers a tensor the trial owns (and frees); memo-owned tensors are not passed to it.
 */
export async function computeTrialFeatures(
  backbone: Backbone,
  data: LoadedDataset,
  opts: { batchSize: number; cut: number | null; memo?: FeatureMemoRef },
  keep: <T extends tf.Tensor>(t: T) => T,
): Promise<TrialFeatures> {
  const { batchSize, cut, memo } = opts;
  const key = memo ? `${backbone.name}|${backbone.weightsSource}|${backbone.inputSize.join('x')}|cut=${cut ?? 'none'}|${memo.dataKey}` : '';
  let features = memo?.memo.get(key);
  if (!features) {
    const imageOpts = { batchSize, inputSize: backbone.inputSize, preprocess: backbone.preprocess };
    const upTo = cut ?? backbone.model.layers.length - 1;
    const prefix = foldedInference(backbone.model, upTo);
    const computed: Partial<Splits<tf.Tensor>> = {};
    try {
      for (const s of ['train', 'val', 'test'] as const) computed[s] = await mapInBatches(data[s].x, { ...imageOpts, pool: cut === null }, prefix.run);
    } catch (err) {
      tf.dispose(Object.values(computed));
      throw err;
    } finally {
      prefix.dispose();
    }
    const out = computed as Splits<tf.Tensor>;
    if (cut === null) {
      features = { pooled: out, activations: null };
    } else {
      // The tail's layers are still frozen pretrained weights here, so pooling through them is part of the prefix.
      const tailInput = cutInput(backbone.model, cut);
      const tailFeatures = tf.model({ inputs: tailInput, outputs: applyLayersAfterCut(backbone.model, cut, tailInput) });
      const pooled: Partial<Splits<tf.Tensor>> = {};
      for (const s of ['train', 'val', 'test'] as const) pooled[s] = await predictInBatches(tailFeatures, out[s] as tf.Tensor4D, { batchSize, pool: true });
      features = { pooled: pooled as Splits<tf.Tensor>, activations: out };
    }
    if (!memo || !memo.memo.put(key, features)) {
      mapSplits((s) => keep(features!.pooled[s]));
      if (features.activations) mapSplits((s) => keep(features!.activations![s]));
    }
  }
  if (cut === null) return { pooled: features.pooled, tail: null };
  const input = cutInput(backbone.model, cut);
  const output = applyLayersAfterCut(backbone.model, cut, input);
  return { pooled: features.pooled, tail: { cut, activations: features.activations!, input, output } };
}
