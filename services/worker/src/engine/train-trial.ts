import * as tf from '@tensorflow/tfjs';
import type { Backbone } from './backbones/backbone.js';
import { loadBackbone } from './backbones/registry.js';
import { enforceBatchNormSemantics } from './batchnorm.js';
import { cutForUnfreeze } from './clean-cuts.js';
import { EngineConfigError } from './errors.js';
import { fitEpochs } from './fit-epochs.js';
import { mulberry32 } from '../data/prng.js';
import { createHead, type Head } from './head.js';
import { releaseLayers } from './tail-model.js';
import { computeTrialFeatures, mapSplits, type FeatureMemoRef, type Splits } from './trial-features.js';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { WeightsAccess } from './weights/read-weights.js';
import { exportFullModel, type ExportedModel } from './export-model.js';

/** One trial's recipe (Keras transfer-learning guide: train the head, then fine-tune the top). */
export interface TrialHyperparams {
  /** A name from KNOWN_BACKBONES. */
  backbone: string;
  /** Square input size; the backbone's default when absent. Images are resized if they differ. */
  imageSize?: number;
  /** Layers to fine-tune in phase 2, counted from the top as Keras `base_model.layers[-N:]`; 0 skips phase 2. */
  unfreeze: number;
  /** Adam learning rate of phase 1 (head). */
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
  /** Let unfrozen BatchNormalization layers use batch statistics in phase 2 (see batchnorm.ts). @default false */
  trainBatchNorm?: boolean;
  /** Backbone weights to load (a ref, see weights/weights-ref.ts). @default the backbone's own */
  weights?: string;
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
  history: EpochReport[];
  /** The trained full model, when `TrainOptions.exportModel` asked for it. */
  model?: ExportedModel;
}

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new EngineConfigError(`${name} must be an integer >= ${min}; got ${value}`);
  }
}

function requirePositive(name: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new EngineConfigError(`${name} must be a positive number; got ${value}`);
}

function validate(hp: TrialHyperparams, data: LoadedDataset): void {
  requireInteger('unfreeze', hp.unfreeze, 0);
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
}

/** Labels as sparseCategoricalCrossentropy wants them: float32 [n, 1]. */
function sparseTargets(y: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => y.cast('float32').reshape([-1, 1]) as tf.Tensor2D);
}

/** Frozen-feature caches and everything else a trial creates, so one place frees them. */
class TrialResources {
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

function countParams(layers: readonly tf.layers.Layer[]): { total: number; trainable: number } {
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

function compile(model: tf.LayersModel, learningRate: number, res: TrialResources): void {
  const optimizer = tf.train.adam(learningRate);
  res.optimizers.push(optimizer);
  model.compile({ optimizer, loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
}

async function evaluate(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor, batchSize: number): Promise<{ loss: number; accuracy: number }> {
  const out = model.evaluate(x, y, { batchSize }) as tf.Scalar[];
  try {
    const [loss, accuracy] = await Promise.all(out.map((t) => t.data()));
    return { loss: loss[0], accuracy: accuracy[0] };
  } finally {
    tf.dispose(out);
  }
}

/** Sets Keras-style trainability: layers with index >= firstTrainable train, all others are frozen. */
function setTrainableFrom(backbone: Backbone, firstTrainable: number): void {
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
 * the frozen prefix runs in inference mode and there is no augmentation; the
 * cache is computed with BatchNorm folded into the convolutions
 * (folded-inference.ts), which changes it only by float rounding.
 *
 * `data` stays owned by the caller; every tensor the trial creates is freed.
 */
export async function trainTrial(hp: TrialHyperparams, data: LoadedDataset, hooks: TrainHooks, opts: TrainOptions = {}): Promise<TrialOutcome> {
  const started = performance.now();
  validate(hp, data);
  const backbone = await loadBackbone(hp.backbone, { imageSize: hp.imageSize, seed: hp.seed, weights: hp.weights, weightsAccess: opts.weightsAccess });
  const layerCount = backbone.model.layers.length;
  if (hp.unfreeze >= layerCount) {
    backbone.model.dispose();
    throw new EngineConfigError(
      `unfreeze must be < ${layerCount} (the layers of '${hp.backbone}', input included); got ${hp.unfreeze}`,
    );
  }
  const res = new TrialResources();
  res.layers.push(...backbone.model.layers);
  const fineTune = hp.unfreeze > 0 && hp.fineTuneEpochs > 0;
  const batchNorm = { trainBatchNorm: hp.trainBatchNorm ?? false };
  const random = mulberry32(hp.seed);
  const history: EpochReport[] = [];
  let stopped = false;
  try {
    setTrainableFrom(backbone, layerCount);
    enforceBatchNormSemantics(backbone.model.layers, batchNorm);
    hooks.onModel?.('backbone', backbone.model);

    // Features: the frozen part runs once. With fine-tuning ahead, cache the
    // clean cut's activations and pool the tail's output from them.
    hooks.onPhase?.('features');
    const y = mapSplits((s) => res.keep(sparseTargets(data[s].y)));
    const cut = fineTune ? cutForUnfreeze(backbone.model, hp.unfreeze) : null;
    const { pooled, tail } = await computeTrialFeatures(backbone, data, { batchSize: hp.batchSize, cut, memo: opts.featureMemo }, (t) => res.keep(t));

    // Phase 1: the head alone, on pooled features.
    hooks.onPhase?.('head');
    const head: Head = createHead({ units: hp.headUnits, classes: data.classNames.length, dropout: hp.dropout, seed: hp.seed });
    res.layers.push(head.pool, head.hidden, head.dropout, head.output);
    const pooledInput = tf.input({ shape: [pooled.train.shape[1] as number], name: 'pooled_features' });
    const headModel = tf.model({ inputs: pooledInput, outputs: head.applyToPooled(pooledInput), name: 'head' });
    compile(headModel, hp.learningRate, res);
    hooks.onModel?.('head', headModel);
    const report = async (phase: EpochReport['phase'], m: Omit<EpochReport, 'phase' | 'epoch'>): Promise<Decision> => {
      const r: EpochReport = { phase, epoch: history.length + 1, ...m };
      history.push(r);
      return hooks.onEpoch(r);
    };
    const phase1 = await fitEpochs(headModel, pooled.train, y.train, {
      epochs: hp.headEpochs,
      batchSize: hp.batchSize,
      random,
      validation: [pooled.val, y.val],
      onEpoch: (_, m) => report('head', m),
    });
    stopped = phase1.stopped;

    // Phase 2: fine-tune the top of the backbone with the same head layers.
    let finalModel = headModel;
    let finalInputs: Splits<tf.Tensor> = pooled;
    let cutLayer = backbone.model.layers[layerCount - 1].name;
    if (tail && !stopped) {
      hooks.onPhase?.('finetune');
      setTrainableFrom(backbone, layerCount - hp.unfreeze);
      enforceBatchNormSemantics(backbone.model.layers, batchNorm);
      const fineTuneModel = tf.model({ inputs: tail.input, outputs: head.apply(tail.output), name: 'finetune' });
      compile(fineTuneModel, hp.learningRate * hp.fineTuneLrFactor, res);
      hooks.onModel?.('finetune', fineTuneModel);
      const phase2 = await fitEpochs(fineTuneModel, tail.activations.train, y.train, {
        epochs: hp.fineTuneEpochs,
        batchSize: hp.batchSize,
        random,
        validation: [tail.activations.val, y.val],
        onEpoch: (_, m) => report('finetune', m),
      });
      stopped = phase2.stopped;
      finalModel = fineTuneModel;
      finalInputs = tail.activations;
      cutLayer = backbone.model.layers[tail.cut].name;
    }

    hooks.onPhase?.('evaluate');
    const val = await evaluate(finalModel, finalInputs.val, y.val, hp.batchSize);
    const test = await evaluate(finalModel, finalInputs.test, y.test, hp.batchSize);
    const params = countParams([...backbone.model.layers, head.pool, head.hidden, head.dropout, head.output]);
    const model = opts.exportModel ? await exportFullModel(backbone, head, data.classNames) : undefined;
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
      history,
      ...(model ? { model } : {}),
    };
  } finally {
    res.release();
  }
}
