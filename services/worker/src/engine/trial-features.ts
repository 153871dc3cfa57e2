import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { mapInBatches, predictInBatches } from './batched-inference.js';
import { foldedInference } from './folded-inference.js';
import { memoTensors, type FeatureMemo } from './feature-memo.js';
import { activeAugmentation, augmentedPassesKey, trainAugmenters, trainPassesOf, type PassAugmentation, type TrainPasses } from './augmented-passes.js';
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
  /**
   * The training split's inputs per augmented pass (see augmented-passes.ts);
   * index 0 is `pooled.train` / `tail.activations.train`, and without
   * augmentation that is the only pass.
   */
  trainPasses: TrainPasses;
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
 * a trial whose key was computed before (same backbone weights, cut, data
 * and augmentation) reuses those tensors instead. With augmentation the
 * training split runs once per augmented pass; val and test never are.
 *
 * @param keep registers a tensor the trial owns (and frees); memo-owned tensors are not passed to it.
 */
export async function computeTrialFeatures(
  backbone: Backbone,
  data: LoadedDataset,
  opts: { batchSize: number; cut: number | null; memo?: FeatureMemoRef; augment?: PassAugmentation | null },
  keep: <T extends tf.Tensor>(t: T) => T,
): Promise<TrialFeatures> {
  const { batchSize, cut, memo } = opts;
  const augment = activeAugmentation(opts.augment);
  const key = memo ? `${backbone.name}|${backbone.weightsSource}|${backbone.inputSize.join('x')}|cut=${cut ?? 'none'}|${memo.dataKey}${augment ? `|${augmentedPassesKey(augment)}` : ''}` : '';
  let features = memo?.memo.get(key);
  if (!features) {
    const imageOpts = { batchSize, inputSize: backbone.inputSize, preprocess: backbone.preprocess };
    const upTo = cut ?? backbone.model.layers.length - 1;
    const prefix = foldedInference(backbone.model, upTo);
    const computed: tf.Tensor[][] = [];
    try {
      for (const s of ['train', 'val', 'test'] as const) {
        const views = s === 'train' ? trainAugmenters(augment, data.train.x) : [undefined];
        const outs: tf.Tensor[] = [];
        computed.push(outs);
        for (const view of views) outs.push(await mapInBatches(data[s].x, { ...imageOpts, pool: cut === null, augment: view }, prefix.run));
      }
    } catch (err) {
      tf.dispose(computed.flat());
      throw err;
    } finally {
      prefix.dispose();
    }
    const [train, [val], [test]] = computed;
    const out: Splits<tf.Tensor> = { train: train[0], val, test };
    if (cut === null) {
      features = { pooled: out, activations: null, extraTrainPasses: train.length > 1 ? { pooled: train.slice(1), activations: null } : undefined };
    } else {
      // The tail's layers are still frozen pretrained weights here, so pooling through them is part of the prefix.
      const tailInput = cutInput(backbone.model, cut);
      const tailFeatures = tf.model({ inputs: tailInput, outputs: applyLayersAfterCut(backbone.model, cut, tailInput) });
      const pool = (t: tf.Tensor) => predictInBatches(tailFeatures, t as tf.Tensor4D, { batchSize, pool: true });
      const pooledTrain: tf.Tensor[] = [];
      for (const t of train) pooledTrain.push(await pool(t));
      const pooled: Splits<tf.Tensor> = { train: pooledTrain[0], val: await pool(val), test: await pool(test) };
      features = { pooled, activations: out, extraTrainPasses: train.length > 1 ? { pooled: pooledTrain.slice(1), activations: train.slice(1) } : undefined };
    }
    if (!memo || !memo.memo.put(key, features)) memoTensors(features).forEach((t) => keep(t));
  }
  const trainPasses = trainPassesOf(features);
  if (cut === null) return { pooled: features.pooled, trainPasses, tail: null };
  const input = cutInput(backbone.model, cut);
  const output = applyLayersAfterCut(backbone.model, cut, input);
  return { pooled: features.pooled, trainPasses, tail: { cut, activations: features.activations!, input, output } };
}
