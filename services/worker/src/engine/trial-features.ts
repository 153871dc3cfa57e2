import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { mapInBatches, predictInBatches } from './batched-inference.js';
import { foldedInference } from './folded-inference.js';
import { memoTensors, type FeatureMemo } from './feature-memo.js';
import { activeAugmentation, augmentedPassesKey, trainAugmenters, trainPassesOf, type PassAugmentation, type TrainPasses } from './augmented-passes.js';
import { applyLayersAfterCut, cutInput } from './tail-model.js';
import { featureKey } from './feature-cache/feature-key.js';
import type { FeatureStore } from './feature-cache/feature-store.js';
import { memoToRaw, rawToMemo } from './feature-cache/memo-entry.js';
import { readThrough, writeThrough, type FeatureCacheListener } from './feature-cache/tiered-lookup.js';

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
  /**
   * Slower tiers behind the memo, fastest first (local disk, then the NATS
   * Object Store): read on a memo miss, written when features are computed,
   * so other processes and workers reuse them. @default none
   */
  stores?: readonly FeatureStore[];
  /** Hears where features came from (memo, a store, computed) and store failures. @default ignore */
  onEvent?: FeatureCacheListener;
}

/**
 * What decides the frozen output besides name, size and cut: the weights,
 * and for a graph backbone also the node its features come from and its
 * preprocessing (a graph's label is the user's, so two specs may share one).
 */
function featureSourceOf(backbone: Backbone): string {
  return backbone.graph ? `${backbone.weightsSource}|graph=${backbone.graph.sha256}|output=${backbone.graph.output}|pre=${backbone.preprocessing}` : backbone.weightsSource;
}

/**
 * Runs the frozen layers once, in inference mode, over every split. Without a
 * cut the whole backbone runs (BatchNorm folded) and is pooled. With a cut the
 * prefix runs (folded) to the cut, and the pooled features come from the tail
 * applied to those activations, so the prefix is not run twice. With a memo,
 * a trial whose key was computed before (same backbone weights, cut, data
 * and augmentation) reuses those tensors instead; on a memo miss the
 * slower stores are asked in order (memory → disk → Object Store), and
 * computed features are written to all of them. With augmentation the
 * training split runs once per augmented pass; val and test never are.
 *
 * @param keep registers a tensor the trial owns (and frees); memo-owned tensors are not passed to it.
 */
export async function computeTrialFeatures(
  backbone: Backbone,
  data: LoadedDataset,
  opts: {
    batchSize: number; cut: number | null; memo?: FeatureMemoRef; augment?: PassAugmentation | null;
    /** Compute the training split's first augmented pass only (every-epoch mode computes the others per epoch); ignored with a memo, whose entries hold every pass. @default false */
    firstPassOnly?: boolean;
  },
  keep: <T extends tf.Tensor>(t: T) => T,
): Promise<TrialFeatures> {
  const { batchSize, cut, memo } = opts;
  const augment = activeAugmentation(opts.augment);
  const key = memo
    ? featureKey({ backbone: backbone.name, weightsSource: featureSourceOf(backbone), inputSize: backbone.inputSize, cut, dataKey: memo.dataKey, augment: augment ? augmentedPassesKey(augment) : null })
    : '';
  const emit: FeatureCacheListener = memo?.onEvent ?? (() => {});
  const stores = memo?.stores ?? [];
  let features = memo?.memo.get(key);
  if (features) emit({ type: 'hit', tier: 'memo', key });
  if (!features && stores.length > 0) {
    const raw = await readThrough(stores, key, emit);
    if (raw) {
      try {
        features = rawToMemo(raw);
      } catch (err) {
        // Verified bytes with the wrong content (an engine bug, not disk rot): compute instead.
        emit({ type: 'store_failed', tier: 'decode', op: 'get', key, error: (err as Error).message });
      }
      if (features && !memo!.memo.put(key, features)) memoTensors(features).forEach((t) => keep(t));
    }
  }
  if (!features) {
    const started = performance.now();
    const imageOpts = { batchSize, inputSize: backbone.inputSize, preprocess: backbone.preprocess };
    const upTo = cut ?? backbone.model.layers.length - 1;
    const prefix = foldedInference(backbone.model, upTo);
    const computed: tf.Tensor[][] = [];
    try {
      for (const s of ['train', 'val', 'test'] as const) {
        const all = s === 'train' ? trainAugmenters(augment, data.train.x) : [undefined];
        const views = opts.firstPassOnly && !memo ? all.slice(0, 1) : all;
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
    if (memo) emit({ type: 'computed', key, seconds: (performance.now() - started) / 1000 });
    if (stores.length > 0) {
      let raw: Awaited<ReturnType<typeof memoToRaw>> | null = null;
      try {
        raw = await memoToRaw(features);
      } catch (err) {
        memoTensors(features).forEach((t) => keep(t));
        throw err;
      }
      await writeThrough(stores, key, raw, emit);
    }
    if (!memo || !memo.memo.put(key, features)) memoTensors(features).forEach((t) => keep(t));
  }
  const trainPasses = trainPassesOf(features);
  if (cut === null) return { pooled: features.pooled, trainPasses, tail: null };
  const input = cutInput(backbone.model, cut);
  const output = applyLayersAfterCut(backbone.model, cut, input);
  return { pooled: features.pooled, trainPasses, tail: { cut, activations: features.activations!, input, output } };
}
