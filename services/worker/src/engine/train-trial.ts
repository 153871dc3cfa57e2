import * as tf from '@tensorflow/tfjs';
import type { Backbone } from './backbones/backbone.js';
import { loadBackbone } from './backbones/registry.js';
import { enforceBatchNormSemantics } from './batchnorm.js';
import { classWeightsFor } from './class-weights.js';
import { cutForUnfreeze } from './clean-cuts.js';
import type { EarlyStopReport } from './early-stopping.js';
import { EngineConfigError } from './errors.js';
import { mulberry32, mulberry32FromState } from '../data/prng.js';
import { checkpointFingerprint, CheckpointSession, restorePhase, resumeProgress } from './checkpoint/checkpoint-session.js';
import type { TrialCheckpointing } from './checkpoint/trial-checkpoint.js';
import { createHead, type Head } from './head.js';
import { createOptimizer, keepSlotsPerVariable } from './optimizer.js';
import { parseRecipe, type Recipe, type RecipeViolation, type UnfreezeSpec } from './recipe-options.js';
import { runPhase, type PhaseEpoch, type PhaseProgress } from './run-phase.js';
import { trainingTargets, type TrainingTargets } from './training-targets.js';
import { resolveUnfreeze, stageAt, unfreezeStages } from './unfreeze.js';
import { releaseLayers } from './tail-model.js';
import { computeTrialFeatures, mapSplits, type FeatureMemoRef, type Splits } from './trial-features.js';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { WeightsAccess } from './weights/read-weights.js';
import { exportFullModel, type ExportedModel } from './export-model.js';
import type { AugmentationConfig } from './augment-config.js';
import { passInput } from './augmented-passes.js';
import { evaluateClassifier, type ClassificationMetrics } from './metrics.js';
import { PhaseTimer, type PhaseSeconds } from './phase-timer.js';
import { PerEpochFeatures, type FrozenPrefixMode } from './per-epoch-features.js';
import type { GraphBackboneSpec } from './backbones/graph-backbone-spec.js';

/**
 * One trial's recipe (Keras transfer-learning guide: train the head, then
 * fine-tune the top). The optional recipe knobs (optimizer, schedule, early
 * stopping, ...) default to RECIPE_DEFAULTS; see recipe-options.ts.
 */
export interface TrialHyperparams extends Partial<Recipe> {
  /** A name from KNOWN_BACKBONES. */
  backbone: string;
  /** Square input size; the backbone's default when absent. Images are resized if they differ. */
  imageSize?: number;
  /**
   * What fine-tunes in phase 2: N layers from the top (Keras `base_model.layers[-N:]`; 0 skips
   * phase 2), `{ blocks: N }` or `{ fineTuneAt: layer }` (see unfreeze.ts).
   */
  unfreeze: UnfreezeSpec;
  /** Learning rate of phase 1 (head), before the schedule. */
  learningRate: number;
  /** Dropout rate of the head. */
  dropout: number;
  /** Units of the head's hidden Dense layer. */
  headUnits: number;
  headEpochs: number;
  fineTuneEpochs: number;
  /** Phase 2 learning rate = learningRate × fineTuneLrFactor. */
  fineTuneLrFactor: number;
  batchSize: number;
  /** Seeds initializers, dropout masks and shuffling. */
  seed: number;
  /** Backbone weights to load instead of its own (a ref, see weights/weights-ref.ts). @default the backbone's own */
  weightsRef?: string;
  /** Training-split augmentation in passes (augmented-passes.ts); val and test are never augmented. @default none */
  augmentation?: AugmentationConfig | null;
  /** The GraphModel of a `graph:` backbone (frozen: unfreeze must be 0). @default none (a catalog backbone) */
  graph?: GraphBackboneSpec;
}

export interface EpochReport {
  phase: 'head' | 'finetune';
  /** 1-based over both phases. */
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number;
  valAccuracy: number;
  seconds: number;
  /** Learning rate of this epoch, after the schedule. */
  learningRate?: number;
  /** Backbone layers trainable in this epoch (0 in the head phase). */
  trainableLayers?: number;
}

export type Decision = 'CONTINUE' | 'STOP';

export type TrialPhase = 'features' | 'head' | 'finetune' | 'evaluate';

export interface TrainHooks {
  /** After every epoch; 'STOP' ends the trial early (scheduler decision). */
  onEpoch(r: EpochReport): Promise<Decision> | Decision;
  onPhase?(phase: TrialPhase): void;
  /**
   * Sees each model as it is ready: the frozen backbone, then each compiled
   * training model. The trial owns and disposes them; read them only during
   * hooks (for logging and tests).
   */
  onModel?(stage: 'backbone' | 'head' | 'finetune', model: tf.LayersModel): void;
}

/** How a trial may share work with other trials in this process. */
export interface TrainOptions {
  /** Reuse frozen-prefix features computed by earlier trials on the same data (see feature-memo.ts). @default none */
  featureMemo?: FeatureMemoRef;
  /** How `objstore:` weights refs are read. @default none */
  weightsAccess?: WeightsAccess;
  /** Serialise the trained full model (backbone + head) into `TrialOutcome.model` (export-model.ts). @default false */
  exportModel?: boolean;
  /** Save a checkpoint after every epoch and resume from the last one (checkpoint/trial-checkpoint.ts). @default none */
  checkpoint?: TrialCheckpointing;
  /** `every-epoch` runs the frozen prefix again on every epoch, as Keras does (a baseline; per-epoch-features.ts); the feature memo is then not used. @default 'once' */
  frozenPrefix?: FrozenPrefixMode;
}

export interface TrialOutcome {
  valAccuracy: number;
  valLoss: number;
  testAccuracy: number;
  testLoss: number;
  /** Epochs run over both phases. */
  epochs: number;
  seconds: number;
  /** True when onEpoch returned 'STOP'. */
  stopped: boolean;
  pretrained: boolean;
  weightsSource: string;
  backend: string;
  /** Parameters of backbone + head. */
  totalParams: number;
  /** Of those, trainable in the last phase run. */
  trainableParams: number;
  /** Layer whose (cached) output fed phase 2; the backbone's last layer when phase 2 did not run. */
  cutLayer: string;
  /** Backbone layers the unfreeze depth resolved to (the final depth under gradual unfreezing). */
  unfreezeLayers: number;
  /** What early stopping did, one entry per phase it watched. */
  earlyStops: EarlyStopReport[];
  history: EpochReport[];
  /** The trained full model, when `TrainOptions.exportModel` asked for it. */
  model?: ExportedModel;
  /** The final model on the test split: accuracy, top-5, per class, confusion matrix (metrics.ts). */
  testMetrics: ClassificationMetrics;
  /** Wall seconds per phase. */
  phaseSeconds: PhaseSeconds;
  /** Epochs taken from a checkpoint instead of trained in this run (0 when it started afresh). */
  resumedEpochs: number;
}

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new EngineConfigError(`${name} must be an integer >= ${min}; got ${value}`);
  }
}

function requirePositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new EngineConfigError(`${name} must be a positive number; got ${value}`);
}

export function validate(hp: TrialHyperparams, data: LoadedDataset): Recipe {
  requireInteger('headUnits', hp.headUnits, 1);
  requireInteger('headEpochs', hp.headEpochs, 1);
  requireInteger('fineTuneEpochs', hp.fineTuneEpochs, 0);
  requireInteger('batchSize', hp.batchSize, 1);
  requireInteger('seed', hp.seed, 0);
  requirePositive('learningRate', hp.learningRate);
  requirePositive('fineTuneLrFactor', hp.fineTuneLrFactor);
  if (!(hp.dropout >= 0 && hp.dropout < 1)) throw new EngineConfigError(`dropout must be in [0, 1); got ${hp.dropout}`);
  if (data.classNames.length < 2) throw new EngineConfigError(`dataset needs at least 2 classes; got ${data.classNames.length}`);
  for (const split of ['train', 'val', 'test'] as const) {
    const n = data[split].x.shape[0];
    if (n === 0) throw new EngineConfigError(`dataset split '${split}' is empty`);
    if (data[split].y.shape[0] !== n) {
      throw new EngineConfigError(`dataset split '${split}' has ${n} images but ${data[split].y.shape[0]} labels`);
    }
  }
  const violations: RecipeViolation[] = [];
  const recipe = parseRecipe(hp as unknown as Record<string, unknown>, violations);
  if (violations.length > 0) throw new EngineConfigError(violations.map((x) => `${x.field}: ${x.message}`).join('; '));
  if (recipe.binaryHead === 'sigmoid' && data.classNames.length !== 2) {
    throw new EngineConfigError(`binaryHead 'sigmoid' needs exactly 2 classes; the dataset has ${data.classNames.length}`);
  }
  return recipe;
}

/** Frozen-feature caches and everything else a trial creates, so one place frees them. */
export class TrialResources {
  readonly tensors: tf.Tensor[] = [];
  readonly optimizers: tf.Optimizer[] = [];
  readonly layers: tf.layers.Layer[] = [];

  keep<T extends tf.Tensor>(t: T): T {
    this.tensors.push(t);
    return t;
  }

  release(): void {
    tf.dispose(this.tensors);
    for (const o of this.optimizers) o.dispose();
    releaseLayers(this.layers);
  }
}

export function countParams(layers: readonly tf.layers.Layer[]): { total: number; trainable: number } {
  let total = 0;
  let trainable = 0;
  for (const layer of new Set(layers)) {
    // Unused layers (the head's pooling when phase 2 did not run) are never built and hold nothing.
    if (!layer.built) continue;
    total += layer.countParams();
    for (const w of layer.trainableWeights) trainable += w.read().size;
  }
  return { total, trainable };
}

export function compile(model: tf.LayersModel, optimizer: tf.Optimizer, targets: TrainingTargets): void {
  model.compile({ optimizer, loss: targets.loss, metrics: ['accuracy'] });
}

export function newOptimizer(recipe: Recipe, learningRate: number, res: TrialResources): tf.Optimizer {
  const optimizer = createOptimizer(recipe.optimizer, learningRate, recipe.momentum);
  res.optimizers.push(optimizer);
  return optimizer;
}

export async function evaluate(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, batchSize: number): Promise<{ loss: number; accuracy: number }> {
  const out = model.evaluate(x, y, { batchSize }) as tf.Scalar[];
  try {
    const [loss, accuracy] = await Promise.all(out.map((t) => t.data()));
    return { loss: loss[0], accuracy: accuracy[0] };
  } finally {
    tf.dispose(out);
  }
}

/** Sets Keras-style trainability: layers with index >= firstTrainable train, all others are frozen. */
export function setTrainableFrom(backbone: Backbone, firstTrainable: number): void {
  // The saved nsfwjs topology marks some layers trainable: false already; set every flag.
  backbone.model.layers.forEach((layer, i) => {
    layer.trainable = i >= firstTrainable;
  });
}

/**
 * Trains one trial: phase 1 trains the head on pooled features of the frozen
 * backbone (computed once, in inference mode); phase 2 fine-tunes the top
 * `unfreeze` backbone layers with the head, on activations cached at the
 * deepest clean cut below them. The cache-then-tail split is exact because
 * the frozen prefix runs in inference mode and augmentation comes before it
 * (augmented-passes.ts); the
 * cache is computed with BatchNorm folded into the convolutions
 * (folded-inference.ts), which changes it only by float rounding.
 *
 * `data` stays owned by the caller; every tensor the trial creates is freed.
 */
export async function trainTrial(hp: TrialHyperparams, data: LoadedDataset, hooks: TrainHooks, opts: TrainOptions = {}): Promise<TrialOutcome> {
  const started = performance.now();
  const timer = new PhaseTimer();
  hooks = timer.wrap(hooks);
  const recipe = validate(hp, data);
  const backbone = await loadBackbone(hp.backbone, { imageSize: hp.imageSize, seed: hp.seed, weightsRef: hp.weightsRef, weightsAccess: opts.weightsAccess, graph: hp.graph });
  const layerCount = backbone.model.layers.length;
  let depth: ReturnType<typeof resolveUnfreeze>;
  let classWeight: Record<number, number> | undefined;
  try {
    depth = resolveUnfreeze(hp.unfreeze, backbone);
    if (recipe.classWeights) classWeight = classWeightsFor(recipe.classWeights, await data.train.y.data(), data.classNames);
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
  const res = new TrialResources();
  res.layers.push(...backbone.model.layers);
  const fineTune = depth.layers > 0 && hp.fineTuneEpochs > 0;
  const batchNorm = { trainBatchNorm: recipe.trainBatchNorm };
  const targets = trainingTargets(recipe.binaryHead, data.classNames.length, recipe.labelSmoothing);
  const session = opts.checkpoint ? new CheckpointSession(opts.checkpoint, checkpointFingerprint(hp, data)) : null;
  const saved = session ? await session.load().catch(() => null) : null;
  // A resumed trial continues the shuffle stream where the checkpoint left it.
  const random = saved ? mulberry32FromState(saved.rngState) : mulberry32(hp.seed);
  const history: EpochReport[] = saved ? [...saved.history] : [];
  const earlyStops: EarlyStopReport[] = saved ? [...saved.earlyStops] : [];
  let stopped = false;
  const perEpoch = opts.frozenPrefix === 'every-epoch';
  let recompute: PerEpochFeatures | null = null;
  try {
    setTrainableFrom(backbone, layerCount);
    enforceBatchNormSemantics(backbone.model.layers, batchNorm);
    hooks.onModel?.('backbone', backbone.model);

    // Features: the frozen part runs once. With fine-tuning ahead, cache the
    // clean cut's activations (below the final depth) and pool the tail's output from them.
    hooks.onPhase?.('features');
    const y = mapSplits((s) => res.keep(targets.encode(data[s].y)));
    const cut = fineTune ? cutForUnfreeze(backbone.model, depth.layers) : null;
    const augment = hp.augmentation ? { config: hp.augmentation, seed: hp.seed } : null;
    const { pooled, tail, trainPasses } = await computeTrialFeatures(backbone, data, { batchSize: hp.batchSize, cut, memo: perEpoch ? undefined : opts.featureMemo, augment, firstPassOnly: perEpoch }, (t) => res.keep(t));
    // Baseline mode: the first epoch trains on what was just computed, every later one computes its own inputs again.
    if (perEpoch) recompute = new PerEpochFeatures(backbone, data, { batchSize: hp.batchSize, cut, augment });
    const fresh = (what: 'pooled' | 'activations', firstEpochOfTrial: number, cached: tf.Tensor | ((epoch: number) => tf.Tensor), cachedVal: tf.Tensor) => {
      if (!recompute) return { x: cached, validation: [cachedVal, y.val] as [tf.Tensor, tf.Tensor] };
      let now: { train: tf.Tensor; val: tf.Tensor } | null = null;
      const at = (epoch: number) => (typeof cached === 'function' ? cached(epoch) : cached);
      return {
        x: (epoch: number) => now?.train ?? at(epoch),
        validation: () => [now?.val ?? cachedVal, y.val] as [tf.Tensor, tf.Tensor],
        prepareEpoch: async (epoch: number) => {
          if (firstEpochOfTrial + epoch === 0) return;
          now = await recompute!.compute(what, firstEpochOfTrial + epoch);
        },
      };
    };

    // Phase 1: the head alone, on pooled features.
    hooks.onPhase?.('head');
    const head: Head = createHead({
      units: hp.headUnits, classes: data.classNames.length, dropout: hp.dropout, seed: hp.seed, l2: recipe.l2, binaryHead: recipe.binaryHead,
    });
    res.layers.push(head.pool, head.hidden, head.dropout, head.output);
    const pooledInput = tf.input({ shape: [pooled.train.shape[1] as number], name: 'pooled_features' });
    const headModel = tf.model({ inputs: pooledInput, outputs: head.applyToPooled(pooledInput), name: 'head' });
    const headOptimizer = newOptimizer(recipe, hp.learningRate, res);
    compile(headModel, headOptimizer, targets);
    hooks.onModel?.('head', headModel);
    const report = async (phase: EpochReport['phase'], m: PhaseEpoch): Promise<Decision> => {
      const r: EpochReport = { phase, epoch: history.length + 1, ...m };
      history.push(r);
      return hooks.onEpoch(r);
    };
    const common = { batchSize: hp.batchSize, random, classWeight, schedule: recipe.lrSchedule, earlyStopping: recipe.earlyStopping };
    const checkpointing = (phase: 'head' | 'finetune', model: tf.LayersModel, optimizer: tf.Optimizer) =>
      session ? { afterEpoch: (p: PhaseProgress) => session.save({ phase, model, optimizer, head, random, history, earlyStops }, p) } : {};
    // A checkpoint taken in phase 2 skips phase 1 (its weights are in the checkpoint); one in phase 1 continues it.
    const resumeHead = saved?.phase === 'head' ? resumeProgress(saved) : null;
    if (resumeHead) await restorePhase(saved!, headModel, headOptimizer, head);
    const phase1 = saved?.phase === 'finetune' ? { epochs: hp.headEpochs, stopped: false, earlyStop: null } : await runPhase({
      ...common,
      ...checkpointing('head', headModel, headOptimizer),
      resume: resumeHead?.progress,
      phase: 'head',
      model: headModel,
      optimizer: headOptimizer,
      ...fresh('pooled', 0, passInput(trainPasses.pooled, 0), pooled.val),
      y: y.train,
      epochs: hp.headEpochs,
      baseLearningRate: hp.learningRate,
      firstEpoch: 1,
      beforeEpoch: () => 0,
      report: (m) => report('head', m),
    }).finally(() => resumeHead?.release());
    stopped = phase1.stopped;
    if (phase1.earlyStop) earlyStops.push(phase1.earlyStop);

    // Phase 2: fine-tune the top of the backbone with the same head layers.
    let finalModel = headModel;
    let finalInputs: Splits<tf.Tensor> = pooled;
    let cutLayer = backbone.model.layers[layerCount - 1].name;
    if (tail && !stopped) {
      hooks.onPhase?.('finetune');
      const stages = recipe.gradualUnfreeze ? unfreezeStages(backbone.blockStarts, depth.firstTrainable) : [depth.firstTrainable];
      const everyEpochs = recipe.gradualUnfreeze?.everyEpochs ?? 1;
      const fineTuneModel = tf.model({ inputs: tail.input, outputs: head.apply(tail.output), name: 'finetune' });
      const fineTuneLr = hp.learningRate * hp.fineTuneLrFactor;
      // One optimizer for the whole phase; gradual unfreezing adds variables to it, each with its own slots.
      const optimizer = keepSlotsPerVariable(newOptimizer(recipe, fineTuneLr, res));
      let stage = -1;
      const headEpochsRun = history.filter((e) => e.phase === 'head').length;
      const resumeTail = saved?.phase === 'finetune' ? resumeProgress(saved) : null;
      if (resumeTail) await restorePhase(saved!, fineTuneModel, optimizer, head);
      const phase2 = await runPhase({
        ...common,
        ...checkpointing('finetune', fineTuneModel, optimizer),
        resume: resumeTail?.progress,
        phase: 'finetune',
        model: fineTuneModel,
        optimizer,
        // Phase 2's epochs continue the augmented passes after phase 1's (resumed or not).
        ...fresh('activations', headEpochsRun, passInput(trainPasses.activations!, headEpochsRun), tail.activations.val),
        y: y.train,
        epochs: hp.fineTuneEpochs,
        baseLearningRate: fineTuneLr,
        firstEpoch: headEpochsRun + 1,
        beforeEpoch: (epoch) => {
          const next = stageAt(epoch, everyEpochs, stages.length);
          if (next !== stage) {
            stage = next;
            setTrainableFrom(backbone, stages[stage]);
            enforceBatchNormSemantics(backbone.model.layers, batchNorm);
            // tfjs collects the trainable weights at compile time only.
            compile(fineTuneModel, optimizer, targets);
            if (stage === 0) hooks.onModel?.('finetune', fineTuneModel);
          }
          return layerCount - stages[stage];
        },
        report: (m) => report('finetune', m),
      }).finally(() => resumeTail?.release());
      stopped = phase2.stopped;
      if (phase2.earlyStop) earlyStops.push(phase2.earlyStop);
      finalModel = fineTuneModel;
      finalInputs = tail.activations;
      cutLayer = backbone.model.layers[tail.cut].name;
    }

    hooks.onPhase?.('evaluate');
    const val = await evaluate(finalModel, finalInputs.val, y.val, hp.batchSize);
    const test = await evaluate(finalModel, finalInputs.test, y.test, hp.batchSize);
    const testMetrics = await evaluateClassifier(finalModel, finalInputs.test, data.test.y, data.classNames, hp.batchSize);
    const params = countParams([...backbone.model.layers, head.pool, head.hidden, head.dropout, head.output]);
    // A GraphModel cannot be written in the layers format: graph-backbone trials keep no model.
    const model = opts.exportModel && !backbone.graph ? await exportFullModel(backbone, head, data.classNames) : undefined;
    return {
      valAccuracy: val.accuracy,
      valLoss: val.loss,
      testAccuracy: test.accuracy,
      testLoss: test.loss,
      epochs: history.length,
      seconds: (performance.now() - started) / 1000,
      stopped,
      pretrained: backbone.pretrained,
      weightsSource: backbone.weightsSource,
      backend: tf.getBackend(),
      totalParams: params.total,
      trainableParams: params.trainable,
      cutLayer,
      unfreezeLayers: depth.layers,
      earlyStops,
      history,
      ...(model ? { model } : {}),
      testMetrics,
      phaseSeconds: timer.stop(),
      resumedEpochs: saved?.epochsDone ?? 0,
    };
  } finally {
    try {
      // The last checkpoint is stored before the trial's end is reported (see CheckpointSession);
      // a failed write was reported to onSaveError already and must not mask the trial's own outcome.
      await session?.flush().catch(() => {});
    } finally {
      recompute?.dispose();
      res.release();
    }
  }
}
