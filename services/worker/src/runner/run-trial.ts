import type { TrialConfig } from '../../../coordinator/src/index.js';
import { datasetCacheKey, disposeDataset, loadDatasetCached } from '../data/load-dataset.js';
import { backboneInputSize } from '../engine/backbones/registry.js';
import { trainTrial, type Decision, type EpochReport, type TrialOutcome } from '../engine/train-trial.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import { TrialError } from '../errors.js';
import { NOOP_BACKBONE, runNoopTrial } from './noop-runner.js';

export interface RunTrialHooks {
  onEpoch(r: EpochReport): Promise<Decision>;
  onPhase?(phase: string): void;
  /** Once the dataset is loaded: images per split (metrics turn epoch times into images/s). */
  onDataset?(sizes: { train: number; val: number; test: number }): void;
}

/**
 * Runs one trial end to end on this worker: resolve the backbone's input
 * size, load the dataset at that size (decoded images are cached per
 * process), train, dispose. Configuration errors are unrecoverable.
 * A trial on the `noop` backbone (control-plane benchmark mode, accepted
 * only by a coordinator that allows it) runs noop-runner.ts instead.
 */
export async function runTrial(config: TrialConfig, hooks: RunTrialHooks, featureMemo?: FeatureMemo): Promise<TrialOutcome> {
  if (config.backbone === NOOP_BACKBONE) return runNoopTrial(config, hooks);
  let size: [number, number];
  try {
    size = backboneInputSize(config.backbone, config.imageSize ?? undefined);
  } catch (err) {
    throw new TrialError('INVALID_TRIAL', (err as Error).message, { retryable: false, cause: err });
  }
  hooks.onPhase?.('dataset');
  const split = { valFraction: config.split.valFraction, testFraction: config.split.testFraction, seed: config.seed };
  const data = await loadDatasetCached(config.dataset, { imageSize: size, split });
  hooks.onDataset?.({ train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0] });
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
        augmentation: config.augmentation ?? null,
      },
      data,
      { onEpoch: hooks.onEpoch, onPhase: hooks.onPhase },
      { featureMemo: featureMemo && featureMemo.maxBytes > 0 ? { memo: featureMemo, dataKey } : undefined },
    );
  } finally {
    disposeDataset(data);
  }
}
