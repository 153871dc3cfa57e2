import type { DatasetSpec } from '../../../worker/src/data/dataset-spec.js';
import type { Recipe, UnfreezeSpec } from '../../../worker/src/engine/recipe-options.js';
import type { AugmentationConfig, AugmentationInput } from '../../../worker/src/engine/augment-config.js';
import type { GraphBackboneSpec } from '../../../worker/src/engine/backbones/graph-backbone-spec.js';

export type { DatasetSpec, GraphBackboneSpec, Recipe, UnfreezeSpec };

/** Early-stopping rule of a sweep: `fifo` never stops a trial. */
export type SchedulerKind = 'fifo' | 'asha' | 'median';

/** The epoch metric schedulers rank trials by; accuracy is maximised, loss minimised. */
export type SchedulerMetricName = 'val_accuracy' | 'val_loss';

/** `scheduler:` as the user writes it. Fields that do not apply to the kind are refused. */
export interface SchedulerSpecInput {
  /** @default 'fifo' */
  kind?: SchedulerKind;
  /** @default 'val_accuracy' */
  metric?: SchedulerMetricName;
  /** asha, median: epochs before any trial can be stopped (asha's first rung). @default 1 */
  gracePeriod?: number;
  /** asha: keep the top 1/reductionFactor at each rung (rungs at gracePeriod·rf^k). @default 3 */
  reductionFactor?: number;
  /** asha: the last epoch any trial may run. @default headEpochs + fineTuneEpochs (the longest trial) */
  maxT?: number;
  /** median: other trials that must have reached an epoch before the rule judges it. @default 3 */
  minSamples?: number;
}

/** A validated scheduler spec with defaults filled in (fields of other kinds keep their defaults). */
export interface SchedulerSpec {
  kind: SchedulerKind;
  metric: SchedulerMetricName;
  gracePeriod: number;
  reductionFactor: number;
  maxT: number;
  minSamples: number;
}

/** How trials are chosen from the axes. `tpe` suggests each trial from the results so far. */
export type SearchKind = 'grid' | 'random' | 'tpe';

/** A continuous axis (random and tpe only): values in [min, max], sampled on a log scale when `log`. */
export interface NumericRange {
  min: number;
  max: number;
  /** @default false */
  log: boolean;
}

/** `tpe:` settings (Optuna's TPESampler defaults). */
export interface TpeSpec {
  /** Trials drawn at random before the model is used; the model waits for all of them to end. @default 10 */
  nStartupTrials: number;
  /**
   * Fraction of finished trials (at most 25) that form the "good" group l(x).
   * 0.25 (hyperopt's) rather than Optuna's 0.1: sweeps here run tens of
   * trials, where a 10% group is one or two points and TPE barely beats random.
   * @default 0.25
   */
  gamma: number;
  /** Candidates drawn from l(x) per axis; the one maximising l(x)/g(x) is suggested. @default 24 */
  nEiCandidates: number;
  /** The trial result TPE optimises: accuracy is maximised, loss minimised. @default 'val_accuracy' */
  metric: SchedulerMetricName;
}

/**
 * A sweep as the user writes it (YAML or JSON). Every optional field has the
 * documented default, filled in by `withSpecDefaults`.
 */
export interface SweepSpecInput {
  /** Human name; 1–64 chars of letters, digits, `-`, `_`, `.`, space. */
  name: string;
  /** One dataset, or several (then the dataset is a fifth axis). */
  dataset: DatasetSpec | DatasetSpec[];
  /**
   * Backbone names, e.g. `mobilenet_v2`, `tiny_cnn`; or a TF Hub-style
   * feature-vector GraphModel, frozen (unfreeze must be 0): `graph:<ref>` or
   * `{ graph: <ref>, name?, inputSize?, preprocessing?, output? }` (see GraphBackboneInput).
   */
  backbones: Array<string | GraphBackboneInput>;
  /**
   * Unfreeze depths: N or `{ layers: N }` fine-tunes the top N layers of the backbone (Keras
   * `base_model.layers[-N:]`; 0 = head only); `{ blocks: N }` the top N whole blocks;
   * `{ fineTuneAt: <layer name or index> }` that layer and everything above it.
   */
  unfreeze: Array<number | { layers: number } | { blocks: number } | { fineTuneAt: string | number }>;
  /** Head-phase learning rates; or, for random and tpe, a range `{ min, max, log }`. */
  learningRates: number[] | { min: number; max: number; log?: boolean };
  /** Dropout rates before the last Dense layer; or, for random and tpe, a range `{ min, max }`. */
  dropouts: number[] | { min: number; max: number; log?: boolean };
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
  /** Random and tpe search: how many trials to run (random draws grid points without replacement). Required for both. */
  maxTrials?: number;
  /** TPE settings. @default { nStartupTrials: 10, gamma: 0.25, nEiCandidates: 24, metric: 'val_accuracy' } */
  tpe?: Partial<TpeSpec>;
  /** At most this many trials of the sweep queued or running at once. @default 4 */
  maxParallel?: number;
  /** Fail the sweep (cancelling the rest) once more than this many trials failed or diverged. @default none (never) */
  maxFailedTrials?: number;
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
  /** Recipe knobs (apply to every trial), see recipe-options.ts and README "Fine-tuning recipe". */
  l2?: number;
  binaryHead?: Recipe['binaryHead'];
  optimizer?: Recipe['optimizer'];
  momentum?: number;
  lrSchedule?: Recipe['lrSchedule'];
  earlyStopping?: Partial<NonNullable<Recipe['earlyStopping']>>;
  labelSmoothing?: number;
  classWeights?: Recipe['classWeights'];
  trainBatchNorm?: boolean;
  gradualUnfreeze?: Recipe['gradualUnfreeze'];
  /** Training-split augmentation (Keras ImageDataGenerator knobs), in passes through the frozen prefix. @default none */
  augmentation?: AugmentationInput;
  /** Early stopping (ASHA or the median rule). @default { kind: 'fifo' } (every trial runs all its epochs) */
  scheduler?: SchedulerSpecInput;
  /**
   * Work units and fused trials (planner/plan-units.ts): trials that share
   * their frozen features go to one worker as a unit of at most `maxTrials`,
   * and those that differ only in learning rate, dropout or head units train
   * together. `shareHeads: true`: a head-only trial joins the unit of a
   * fine-tune trial with the same phase 1 (same features, head, learning
   * rate, dropout, epochs), and that phase trains once for both.
   * `false`: one trial per unit. @default { maxTrials: 8 }
   */
  fuse?: boolean | { maxTrials?: number; shareHeads?: boolean };
}

/** A graph backbone as written in `backbones` (parsed by engine/backbones/graph-backbone-spec.ts). */
export interface GraphBackboneInput {
  /** model.json of a tfjs GraphModel: an absolute path (or its folder), file://…, http(s)://…/model.json, or objstore:<name> (`tlsweep weights push`). */
  graph: string;
  /** Label in tables: the backbone is called `graph:<name>`. @default the folder holding model.json, or the Object Store name */
  name?: string;
  /** Square input size the graph takes. @default the spec's imageSize, else 224 */
  inputSize?: number;
  /** `unit` (alias `none`; TF Hub's [0, 1] pixels), `tf`, `torch`, `caffe` or `raw255`. @default 'unit' */
  preprocessing?: string;
  /** Node the features come from (full name or a unique `/`-suffix); 4-D outputs are average-pooled. @default the graph's output */
  output?: string;
}

/** A validated `fuse:` (null when off). */
export interface FuseSpec {
  /** Trials per work unit at most (also capped at half of maxParallel). @default 8 */
  maxTrials: number;
  /**
   * Head-only trials join a fine-tune unit with the same phase-1 setup
   * (planner/plan-units.ts), where phase 1 trains once per distinct head
   * config and forks into each trial (engine/fused-trials.ts). Absent = off. @default false
   */
  shareHeads?: boolean;
}

/** A validated spec with every default filled in. */
export interface SweepSpec {
  name: string;
  datasets: DatasetSpec[];
  /** Names; a graph backbone's is `graph:<label>`, described in `graphBackbones`. */
  backbones: string[];
  /** The GraphModel of each `graph:` backbone, by name. Absent in sweeps stored before graph backbones existed. */
  graphBackbones?: Record<string, GraphBackboneSpec>;
  /** `{ layers: N }` is normalised to N. */
  unfreeze: UnfreezeSpec[];
  /** The learning-rate list; empty when `learningRateRange` is set. */
  learningRates: number[];
  /** The dropout list; empty when `dropoutRange` is set. */
  dropouts: number[];
  /** A continuous learning-rate axis (random, tpe); null when the axis is a list. Absent in older stored specs. */
  learningRateRange?: NumericRange | null;
  /** A continuous dropout axis (random, tpe); null when the axis is a list. Absent in older stored specs. */
  dropoutRange?: NumericRange | null;
  /** Set when search is tpe. */
  tpe?: TpeSpec | null;
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
  /** null: no limit (and in sweeps stored before it existed, read as `?? null`). */
  maxFailedTrials?: number | null;
  split: { valFraction: number; testFraction: number };
  /** Absent in sweeps stored before weights existed. */
  weights?: Record<string, string>;
  /** Absent in sweeps stored before model export existed: read as SPEC_DEFAULTS.keepModels. */
  keepModels?: number;
  /** Recipe knobs with defaults filled (RECIPE_DEFAULTS). */
  recipe: Recipe;
  augmentation: AugmentationConfig | null;
  /** Absent in sweeps stored before schedulers existed: read it as fifo. */
  scheduler: SchedulerSpec;
  /** null: off. Absent in sweeps stored before work units existed: their trials keep one unit each. */
  fuse?: FuseSpec | null;
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
  tpe: { nStartupTrials: 10, gamma: 0.25, nEiCandidates: 24, metric: 'val_accuracy' as SchedulerMetricName },
  scheduler: { kind: 'fifo' as SchedulerKind, metric: 'val_accuracy' as SchedulerMetricName, gracePeriod: 1, reductionFactor: 3, minSamples: 3 },
  fuse: { maxTrials: 8 },
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
  maxFuseTrials: 256,
} as const;

/** The hyperparameters of one trial: one point of the sweep. */
export interface TrialConfig {
  trialId: string;
  sweepId: string;
  index: number;
  backbone: string;
  unfreeze: UnfreezeSpec;
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
  /** The GraphModel of a `graph:` backbone (then `imageSize` is its inputSize); absent for catalog backbones. */
  graph?: GraphBackboneSpec;
  /** Ask the worker for the trained full model, so it can be kept if the trial ranks in the top `keepModels`. */
  exportModel?: boolean;
  /** Recipe knobs; absent in trials queued before they existed (then RECIPE_DEFAULTS). */
  recipe?: Recipe;
  /** Absent in trials stored before augmentation existed: read it as `?? null`. */
  augmentation?: AugmentationConfig | null;
}

/** A short label for a dataset, e.g. `fashion-mnist:100/class`. */
export function datasetLabel(d: DatasetSpec): string {
  switch (d.kind) {
    case 'fashion-mnist':
      return `fashion-mnist:${d.perClass ?? 100}/class${d.test === 'official' ? '+t10k' : ''}`;
    case 'folder':
      return `folder:${d.path}`;
    case 'synthetic':
      return `synthetic:${d.classes ?? 3}x${d.perClass ?? 40}`;
  }
}
