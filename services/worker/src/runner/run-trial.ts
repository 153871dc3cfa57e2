import type { TrialConfig } from '../../../coordinator/src/index.js';
import { datasetCacheKey, disposeDataset, loadDatasetCached, type LoadedDataset } from '../data/load-dataset.js';
import { backboneInputSize } from '../engine/backbones/registry.js';
import type { FeatureMemoRef } from '../engine/trial-features.js';
import { trainTrial, type Decision, type EpochReport, type TrialHyperparams, type TrialOutcome, type TrainOptions } from '../engine/train-trial.js';
import { fusionBlocker, trainFusedTrials } from '../engine/fused-trials.js';
import { FeatureMemo } from '../engine/feature-memo.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';
import type { FeatureCacheListener } from '../engine/feature-cache/tiered-lookup.js';
import { TrialError } from '../errors.js';
import type { WeightsAccess } from '../engine/weights/read-weights.js';
import type { TrialCheckpointing } from '../engine/checkpoint/trial-checkpoint.js';

/** What the worker lends a trial besides its config. */
export interface RunTrialOptions {
  /** How `objstore:` weights are read (the worker's NATS connection). @default none */
  weightsAccess?: WeightsAccess;
  /** Epoch checkpoints of this trial (runTrial; runFusedTrials takes one per trial in `checkpoints`). @default none */
  checkpoint?: TrialCheckpointing;
  /** Epoch checkpoints of a fused group's trials, `checkpoints[k]` for `configs[k]` (runFusedTrials only). @default none */
  checkpoints?: ReadonlyArray<TrialCheckpointing | undefined>;
  /** Where each trial's frozen-prefix output comes from (engine/per-epoch-features.ts); `every-epoch` runs trials one by one. @default 'once' */
  frozenPrefix?: FrozenPrefixMode;
}
import { NOOP_BACKBONE, runNoopTrial } from './noop-runner.js';
import type { FrozenPrefixMode } from '../engine/per-epoch-features.js';

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

export interface DatasetSizes { train: number; val: number; test: number; skipped: number }

type FeatureCacheArg = FeatureMemo | WorkerFeatureCache | undefined;

/** A trial config as the engine takes it, and the input size it resolved to. */
function hyperparamsOf(config: TrialConfig): { hp: TrialHyperparams; size: [number, number] } {
  let size: [number, number];
  try {
    size = backboneInputSize(config.backbone, config.imageSize ?? undefined, config.graph);
  } catch (err) {
    throw new TrialError('INVALID_TRIAL', (err as Error).message, { retryable: false, cause: err });
  }
  const hp: TrialHyperparams = {
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
    ...(config.weights ? { weightsRef: config.weights } : {}),
    ...(config.graph ? { graph: config.graph } : {}),
    // Trials queued before the recipe knobs existed carry none: the engine's defaults apply.
    ...config.recipe,
    augmentation: config.augmentation ?? null,
  };
  return { hp, size };
}

function featureMemoRef(featureCache: FeatureCacheArg, dataKey: string): FeatureMemoRef | undefined {
  const cache: WorkerFeatureCache = featureCache instanceof FeatureMemo ? { memo: featureCache } : (featureCache ?? {});
  const memo = cache.memo && cache.memo.maxBytes > 0 ? cache.memo : undefined;
  const stores = cache.stores ?? [];
  if (!memo && stores.length === 0) return undefined;
  // A zero-byte memo stores nothing: the trial keeps and frees what it computes or reads.
  return { memo: memo ?? new FeatureMemo(0), dataKey, stores, onEvent: cache.onEvent };
}

/**
 * Loads the dataset of `config` at the backbone's input size (decoded images
 * are cached per process), runs `train` on it, disposes it. Trials of one
 * work unit share the dataset, split and size, so the first config stands for all.
 */
async function withDataset<T>(config: TrialConfig, hooks: Pick<RunTrialHooks, 'onPhase' | 'onDataset'>, featureCache: FeatureCacheArg, opts: RunTrialOptions,
  train: (data: LoadedDataset, opts: Omit<TrainOptions, 'checkpoint'>) => Promise<T>): Promise<T> {
  const { size } = hyperparamsOf(config);
  hooks.onPhase?.('dataset');
  const split = { valFraction: config.split.valFraction, testFraction: config.split.testFraction, seed: config.seed };
  const data = await loadDatasetCached(config.dataset, { imageSize: size, split });
  hooks.onDataset?.({ train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0], skipped: data.skippedImages });
  // Everything that decides which pixels land in which split: trials with equal keys see identical data.
  // A folder is keyed by its files' digest too: the same path with edited images is other data.
  const content = data.contentDigest ? `|content=${data.contentDigest}` : '';
  const dataKey = `${datasetCacheKey(config.dataset)}${content}|${JSON.stringify(split)}|${size.join('x')}`;
  try {
    return await train(data, { featureMemo: featureMemoRef(featureCache, dataKey), weightsAccess: opts.weightsAccess, exportModel: config.exportModel ?? false, frozenPrefix: opts.frozenPrefix });
  } finally {
    disposeDataset(data);
  }
}

/**
 * Runs one trial end to end on this worker: resolve the backbone's input
 * size, load the dataset at that size, train, dispose. Configuration errors are unrecoverable.
 */
export async function runTrial(config: TrialConfig, hooks: RunTrialHooks, featureCache?: FeatureCacheArg, opts: RunTrialOptions = {}): Promise<TrialOutcome> {
  // Control-plane benchmark mode (accepted only by a coordinator that allows it): nothing is trained.
  if (config.backbone === NOOP_BACKBONE) return runNoopTrial(config, hooks);
  const { hp } = hyperparamsOf(config);
  return withDataset(config, hooks, featureCache, opts, (data, o) => trainTrial(hp, data, { onEpoch: hooks.onEpoch, onPhase: hooks.onPhase }, { ...o, checkpoint: opts.checkpoint }));
}

/**
 * Runs a fusable group of trials (planner fusableGroups) together on one
 * dataset load (engine/fused-trials.ts); `hooks[k]` and `opts.checkpoints[k]` belong to `configs[k]`.
 */
export async function runFusedTrials(configs: readonly TrialConfig[], hooks: readonly RunTrialHooks[], featureCache?: FeatureCacheArg, opts: RunTrialOptions = {}): Promise<TrialOutcome[]> {
  const hps = configs.map((c) => hyperparamsOf(c).hp);
  const shared = { onPhase: (p: string) => hooks.forEach((h) => h.onPhase?.(p)), onDataset: (s: DatasetSizes) => hooks.forEach((h) => h.onDataset?.(s)) };
  // Each member saves and resumes its own checkpoint (engine/fused-trials.ts: members at different epochs join as they catch up).
  return withDataset(configs[0], shared, featureCache, opts, (data, o) =>
    trainFusedTrials(hps, data, { onEpoch: (k, r) => hooks[k].onEpoch(r), onPhase: shared.onPhase }, { ...o, checkpoints: opts.checkpoints }));
}

/** Whether these configs can train fused (else they run one by one). */
export function canFuse(configs: readonly TrialConfig[], opts: RunTrialOptions = {}): boolean {
  if (configs.some((c) => c.backbone === NOOP_BACKBONE)) return false;
  // Fused trials share one computation of the frozen prefix: that is what every-epoch mode measures without.
  if (opts.frozenPrefix === 'every-epoch') return false;
  return configs.length > 1 && fusionBlocker(configs.map((c) => hyperparamsOf(c).hp)) === null;
}
