import type { TrialConfig } from '../../../coordinator/src/index.js';
import { datasetCacheKey, disposeDataset, loadDatasetCached } from '../data/load-dataset.js';
import { backboneInputSize } from '../engine/backbones/registry.js';
import type { FeatureMemoRef } from '../engine/trial-features.js';
import { trainTrial, type Decision, type EpochReport, type TrialOutcome } from '../engine/train-trial.js';
import { FeatureMemo } from '../engine/feature-memo.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';
import type { FeatureCacheListener } from '../engine/feature-cache/tiered-lookup.js';
import { TrialError } from '../errors.js';
import type { TrialCheckpointing } from '../engine/checkpoint/trial-checkpoint.js';

export interface RunTrialHooks {
  onEpoch(r: EpochReport): Promise<Decision>;
  onPhase?(phase: string): void;
  /** Once the dataset is loaded: images per split (metrics turn epoch times into images/s) and corrupt ones skipped. */
  onDataset?(sizes: { train: number; val: number; test: number; skipped: number }): void;
}

/** This worker's frozen-prefix feature tiers: the in-process memo, then disk and Object Store (see README: Feature cache). */
export interface WorkerFeatureCache {
  /** @default none */
  memo?: FeatureMemo;
  /** Fastest first. @default none */
  stores?: readonly FeatureStore[];
  /** Hears hits, computations and store failures. @default ignore */
  onEvent?: FeatureCacheListener;
}

/**
 * Runs one trial end to end on this worker: resolve the backbone's input
 * size, load the dataset at that size (decoded images are cached per
 * process), train, dispose. Configuration errors are unrecoverable.
 */
export async function runTrial(config: TrialConfig, hooks: RunTrialHooks, featureCache?: FeatureMemo | WorkerFeatureCache, checkpoint?: TrialCheckpointing): Promise<TrialOutcome> {
  const cache: WorkerFeatureCache = featureCache instanceof FeatureMemo ? { memo: featureCache } : (featureCache ?? {});
  let size: [number, number];
  try {
    size = backboneInputSize(config.backbone, config.imageSize ?? undefined);
  } catch (err) {
    throw new TrialError('INVALID_TRIAL', (err as Error).message, { retryable: false, cause: err });
  }
  hooks.onPhase?.('dataset');
  const split = { valFraction: config.split.valFraction, testFraction: config.split.testFraction, seed: config.seed };
  const data = await loadDatasetCached(config.dataset, { imageSize: size, split });
  hooks.onDataset?.({ train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0], skipped: data.skippedImages });
  // Everything that decides which pixels land in which split: trials with equal keys see identical data.
  const dataKey = `${datasetCacheKey(config.dataset)}|${JSON.stringify(split)}|${size.join('x')}`;
  try {
    return await trainTrial(
      {
        backbone: config.backbone,
        imageSize: size[0],
        unfreeze: config.unfreeze,
        learningRate: config.learningRate,
        dropout: config.dropout,
        headUnits: config.headUnits,
        headEpochs: config.headEpochs,
        fineTuneEpochs: config.fineTuneEpochs,
        fineTuneLrFactor: config.fineTuneLrFactor,
        batchSize: config.batchSize,
        seed: config.seed,
        // Trials queued before the recipe knobs existed carry none: the engine's defaults apply.
        ...config.recipe,
        augmentation: config.augmentation ?? null,
      },
      data,
      { onEpoch: hooks.onEpoch, onPhase: hooks.onPhase },
      { featureMemo: featureMemoRef(cache, dataKey), checkpoint },
    );
  } finally {
    disposeDataset(data);
  }
}

function featureMemoRef(cache: WorkerFeatureCache, dataKey: string): FeatureMemoRef | undefined {
  const memo = cache.memo && cache.memo.maxBytes > 0 ? cache.memo : undefined;
  const stores = cache.stores ?? [];
  if (!memo && stores.length === 0) return undefined;
  // A zero-byte memo stores nothing: the trial keeps and frees what it computes or reads.
  return { memo: memo ?? new FeatureMemo(0), dataKey, stores, onEvent: cache.onEvent };
}
