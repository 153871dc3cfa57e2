import type { TrialConfig } from '../../../coordinator/src/index.js';
import { datasetCacheKey, disposeDataset, loadDatasetCached, type LoadedDataset } from '../data/load-dataset.js';
import { backboneInputSize } from '../engine/backbones/registry.js';
import { trainTrial, type Decision, type EpochReport, type TrialHyperparams, type TrialOutcome, type TrainOptions } from '../engine/train-trial.js';
import { fusionBlocker, trainFusedTrials } from '../engine/fused-trials.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import { TrialError } from '../errors.js';

export interface RunTrialHooks {
  onEpoch(r: EpochReport): Promise<Decision>;
  onPhase?(phase: string): void;
  /** Once the dataset is loaded: images per split (metrics turn epoch times into images/s). */
  onDataset?(sizes: { train: number; val: number; test: number }): void;
}

/** A trial config as the engine takes it, and the input size it resolved to. */
function hyperparamsOf(config: TrialConfig): { hp: TrialHyperparams; size: [number, number] } {
  let size: [number, number];
  try {
    size = backboneInputSize(config.backbone, config.imageSize ?? undefined);
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
    // Trials queued before the recipe knobs existed carry none: the engine's defaults apply.
    ...config.recipe,
    augmentation: config.augmentation ?? null,
  };
  return { hp, size };
}

/**
 * Loads the dataset of `config` at the backbone's input size (decoded images
 * are cached per process), runs `train` on it, disposes it. Trials of one
 * work unit share the dataset, split and size, so the first config stands for all.
 */
async function withDataset<T>(config: TrialConfig, hooks: Pick<RunTrialHooks, 'onPhase' | 'onDataset'>, featureMemo: FeatureMemo | undefined,
  train: (data: LoadedDataset, opts: TrainOptions) => Promise<T>): Promise<T> {
  const { size } = hyperparamsOf(config);
  hooks.onPhase?.('dataset');
  const split = { valFraction: config.split.valFraction, testFraction: config.split.testFraction, seed: config.seed };
  const data = await loadDatasetCached(config.dataset, { imageSize: size, split });
  hooks.onDataset?.({ train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0] });
  // Everything that decides which pixels land in which split: trials with equal keys see identical data.
  const dataKey = `${datasetCacheKey(config.dataset)}|${JSON.stringify(split)}|${size.join('x')}`;
  try {
    return await train(data, { featureMemo: featureMemo && featureMemo.maxBytes > 0 ? { memo: featureMemo, dataKey } : undefined });
  } finally {
    disposeDataset(data);
  }
}

/**
 * Runs one trial end to end on this worker: resolve the backbone's input
 * size, load the dataset at that size, train, dispose. Configuration errors are unrecoverable.
 */
export async function runTrial(config: TrialConfig, hooks: RunTrialHooks, featureMemo?: FeatureMemo): Promise<TrialOutcome> {
  const { hp } = hyperparamsOf(config);
  return withDataset(config, hooks, featureMemo, (data, opts) => trainTrial(hp, data, { onEpoch: hooks.onEpoch, onPhase: hooks.onPhase }, opts));
}

/**
 * Runs a fusable group of trials (planner fusableGroups) together on one
 * dataset load (engine/fused-trials.ts); `hooks[k]` belong to `configs[k]`.
 */
export async function runFusedTrials(configs: readonly TrialConfig[], hooks: readonly RunTrialHooks[], featureMemo?: FeatureMemo): Promise<TrialOutcome[]> {
  const hps = configs.map((c) => hyperparamsOf(c).hp);
  const shared = { onPhase: (p: string) => hooks.forEach((h) => h.onPhase?.(p)), onDataset: (s: { train: number; val: number; test: number }) => hooks.forEach((h) => h.onDataset?.(s)) };
  return withDataset(configs[0], shared, featureMemo, (data, opts) =>
    trainFusedTrials(hps, data, { onEpoch: (k, r) => hooks[k].onEpoch(r), onPhase: shared.onPhase }, opts));
}

/** Whether these configs can train fused (else they run one by one). */
export function canFuse(configs: readonly TrialConfig[]): boolean {
  return configs.length > 1 && fusionBlocker(configs.map((c) => hyperparamsOf(c).hp)) === null;
}
