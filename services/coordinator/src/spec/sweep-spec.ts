import type { DatasetSpec } from '../../../worker/src/data/dataset-spec.js';

export type { DatasetSpec };

/** How trials are chosen from the axes. */
export type SearchKind = 'grid' | 'random';

/**
 * A sweep as the user writes it (YAML or JSON). Every optional field has the
 * documented default, filled in by `withSpecDefaults`.
 */
export interface SweepSpecInput {
  /** Human name; 1–64 chars of letters, digits, `-`, `_`, `.`, space. */
  name: string;
  /** One dataset, or several (then the dataset is a fifth axis). */
  dataset: DatasetSpec | DatasetSpec[];
  /** Backbone names, e.g. `mobilenet_v2`, `tiny_cnn`. */
  backbones: string[];
  /** Unfreeze depths: fine-tune the top N layers of the backbone (Keras `base_model.layers[-N:]`); 0 = head only. */
  unfreeze: number[];
  /** Head-phase learning rates. */
  learningRates: number[];
  /** Dropout rates before the last Dense layer. */
  dropouts: number[];
  /** Epochs of the head phase. @default 5 */
  headEpochs?: number;
  /** Epochs of the fine-tune phase (trials with unfreeze 0 skip it). @default 3 */
  fineTuneEpochs?: number;
  /** Fine-tune learning rate = learning rate × this factor. @default 0.1 */
  fineTuneLrFactor?: number;
  /** @default 32 */
  batchSize?: number;
  /** Units of the head's hidden Dense layer. @default 128 */
  headUnits?: number;
  /** Square input size in pixels; the backbone's default when absent. */
  imageSize?: number;
  /** Seeds expansion, splits, initialisation and shuffling. @default 0 */
  seed?: number;
  /** @default 'grid' */
  search?: SearchKind;
  /** Random search: how many trials to draw (without replacement). Required for `random`. */
  maxTrials?: number;
  /** At most this many trials of the sweep queued or running at once. @default 4 */
  maxParallel?: number;
  /** Stratified split fractions. @default { valFraction: 0.15, testFraction: 0.15 } */
  split?: { valFraction?: number; testFraction?: number };
  /**
   * Backbone weights to load instead of the backbone's own, per backbone:
   * `{ tiny_cnn: 'objstore:my-weights' }` (forms: weights/weights-ref.ts).
   * @default {} (mobilenet_v2: nsfwjs weights; others: random init)
   */
  weights?: Record<string, string>;
  /** Keep the full models of the best N trials (by val accuracy) in the Object Store for `tlsweep export`; 0 keeps none. @default 1 */
  keepModels?: number;
}

/** A validated spec with every default filled in. */
export interface SweepSpec {
  name: string;
  datasets: DatasetSpec[];
  backbones: string[];
  unfreeze: number[];
  learningRates: number[];
  dropouts: number[];
  headEpochs: number;
  fineTuneEpochs: number;
  fineTuneLrFactor: number;
  batchSize: number;
  headUnits: number;
  imageSize: number | null;
  seed: number;
  search: SearchKind;
  maxTrials: number | null;
  maxParallel: number;
  split: { valFraction: number; testFraction: number };
  /** Absent in sweeps stored before weights existed. */
  weights?: Record<string, string>;
  /** Absent in sweeps stored before model export existed: read as SPEC_DEFAULTS.keepModels. */
  keepModels?: number;
}

export const SPEC_DEFAULTS = {
  headEpochs: 5,
  fineTuneEpochs: 3,
  fineTuneLrFactor: 0.1,
  batchSize: 32,
  headUnits: 128,
  seed: 0,
  search: 'grid' as SearchKind,
  maxParallel: 4,
  valFraction: 0.15,
  testFraction: 0.15,
  keepModels: 1,
} as const;

/** Hard limits that keep one sweep from swamping the cluster. */
export const SPEC_LIMITS = {
  maxTrialsPerSweep: 10_000,
  maxEpochs: 1000,
  maxBatchSize: 4096,
  maxHeadUnits: 65_536,
  minImageSize: 16,
  maxImageSize: 1024,
  maxParallel: 10_000,
} as const;

/** The hyperparameters of one trial: one point of the sweep. */
export interface TrialConfig {
  trialId: string;
  sweepId: string;
  index: number;
  backbone: string;
  unfreeze: number;
  learningRate: number;
  dropout: number;
  dataset: DatasetSpec;
  /** Short human label of the dataset, for tables. */
  datasetLabel: string;
  imageSize: number | null;
  headUnits: number;
  headEpochs: number;
  fineTuneEpochs: number;
  fineTuneLrFactor: number;
  batchSize: number;
  seed: number;
  split: { valFraction: number; testFraction: number };
  /** Weights ref for this trial's backbone (spec `weights`); absent: the backbone's own. */
  weights?: string;
  /** Ask the worker for the trained full model, so it can be kept if the trial ranks in the top `keepModels`. */
  exportModel?: boolean;
}

/** A short label for a dataset, e.g. `fashion-mnist:100/class`. */
export function datasetLabel(d: DatasetSpec): string {
  switch (d.kind) {
    case 'fashion-mnist':
      return `fashion-mnist:${d.perClass ?? 100}/class`;
    case 'folder':
      return `folder:${d.path}`;
    case 'synthetic':
      return `synthetic:${d.classes ?? 3}x${d.perClass ?? 40}`;
  }
}
