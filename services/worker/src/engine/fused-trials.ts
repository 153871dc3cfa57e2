import * as tf from '@tensorflow/tfjs';
import { exportFullModel } from './export-model.js';
import type { Backbone } from './backbones/backbone.js';
import { loadBackbone } from './backbones/registry.js';
import { enforceBatchNormSemantics } from './batchnorm.js';
import { classWeightsFor } from './class-weights.js';
import { cutForUnfreeze } from './clean-cuts.js';
import { EarlyStopping, type EarlyStopReport } from './early-stopping.js';
import { EngineConfigError } from './errors.js';
import { permutation, permuteRows } from './fit-epochs.js';
import { createHead, type Head } from './head.js';
import { learningRateAt } from './lr-schedule.js';
import { evaluateClassifier } from './metrics.js';
import { keepSlotsPerVariable, setLearningRate } from './optimizer.js';
import { PhaseTimer } from './phase-timer.js';
import type { Recipe } from './recipe-options.js';
import { trainingTargets } from './training-targets.js';
import { applyLayersAfterCut, cutInput } from './tail-model.js';
import { computeTrialFeatures, mapSplits, type Splits } from './trial-features.js';
import { passInput } from './augmented-passes.js';
import { resolveUnfreeze } from './unfreeze.js';
import { mulberry32 } from '../data/prng.js';
import type { LoadedDataset } from '../data/load-dataset.js';
import {
  compile, countParams, evaluate, newOptimizer, setTrainableFrom, TrialResources, validate,
  type Decision, type EpochReport, type TrainOptions, type TrialHyperparams, type TrialOutcome, type TrialPhase,
} from './train-trial.js';

/** Hooks of a fused run: epochs are reported per trial (its index in the `hps` given). */
export interface FusedHooks {
  /** After every epoch of trial `k`; 'STOP' ends that trial alone (it leaves the fused batch). */
  onEpoch(k: number, r: EpochReport): Promise<Decision> | Decision;
  onPhase?(phase: TrialPhase): void;
  /** Sees trial k's compiled model of each phase (as TrainHooks.onModel); read it only during hooks. */
  onModel?(k: number, stage: 'head' | 'finetune', model: tf.LayersModel): void;
}

type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

/** One trial's state inside a fused run. */
interface Member {
  k: number;
  hp: TrialHyperparams;
  backbone: Backbone;
  head: Head;
  random: () => number;
  history: EpochReport[];
  earlyStops: EarlyStopReport[];
  stopped: boolean;
  model: tf.LayersModel | null;
  optimizer: tf.Optimizer | null;
}

/**
 * Whether `hps` can train fused: equal in everything but learning rate,
 * dropout and head units (the planner's fusion key guarantees it for a
 * unit's groups). Gradual unfreezing re-compiles per epoch and is left to
 * separate runs.
 */
export function fusionBlocker(hps: readonly TrialHyperparams[]): string | null {
  const rest = (hp: TrialHyperparams) => JSON.stringify({ ...hp, learningRate: 0, dropout: 0, headUnits: 0 });
  if (hps.some((hp) => rest(hp) !== rest(hps[0]))) return 'trials differ in more than learning rate, dropout and head units';
  if (hps[0].gradualUnfreeze) return 'gradual unfreezing trains separately';
  return null;
}

/**
 * Trains K trials that differ only in learning rate, dropout or head units
 * together (HFTA-style horizontal fusion): the frozen features are computed
 * once; in each phase every batch goes forward through the K models (each
 * its own head, its own copy of the unfrozen tail, its own dropout layer
 * drawing masks as its separate run would),
 * one backward pass of the summed loss gives every trial its own gradients
 * (the K models share no weight, so ∂Σloss/∂θk = ∂loss_k/∂θk), and each
 * trial's own optimizer applies them. Batches, losses, class weights,
 * regularisation and metrics follow tfjs `fit` as trainTrial runs it, so a
 * fused trial equals its separate run up to float summation order. A trial
 * that is stopped (scheduler STOP, or early stopping for its phase) leaves
 * the fused batch; the others go on.
 */
export async function trainFusedTrials(hps: readonly TrialHyperparams[], data: LoadedDataset, hooks: FusedHooks, opts: TrainOptions = {}): Promise<TrialOutcome[]> {
  const started = performance.now();
  const timer = new PhaseTimer();
  const enter = (phase: TrialPhase) => {
    timer.enter(phase);
    hooks.onPhase?.(phase);
  };
  if (hps.length === 0) return [];
  const [recipe] = hps.map((hp) => validate(hp, data));
  const blocker = fusionBlocker(hps);
  if (blocker) throw new EngineConfigError(`cannot fuse these trials: ${blocker}`);
  const hp0 = hps[0];
  const res = new TrialResources();
  try {
    const backboneOpts = { imageSize: hp0.imageSize, seed: hp0.seed, weightsRef: hp0.weightsRef, weightsAccess: opts.weightsAccess, graph: hp0.graph };
    const first = await loadBackbone(hp0.backbone, backboneOpts);
    res.layers.push(...first.model.layers);
    const depth = resolveUnfreeze(hp0.unfreeze, first);
    const fineTune = depth.layers > 0 && hp0.fineTuneEpochs > 0;
    // Each trial fine-tunes its own copy of the tail; head-only trials share the frozen backbone.
    const backbones = [first];
    for (let k = 1; k < hps.length; k++) {
      if (!fineTune) break;
      const b = await loadBackbone(hp0.backbone, backboneOpts);
      res.layers.push(...b.model.layers);
      backbones.push(b);
    }
    const layerCount = first.model.layers.length;
    const batchNorm = { trainBatchNorm: recipe.trainBatchNorm };
    for (const b of backbones) {
      setTrainableFrom(b, layerCount);
      enforceBatchNormSemantics(b.model.layers, batchNorm);
    }
    const classWeight = recipe.classWeights ? classWeightsFor(recipe.classWeights, await data.train.y.data(), data.classNames) : undefined;
    const targets = trainingTargets(recipe.binaryHead, data.classNames.length, recipe.labelSmoothing);

    enter('features');
    const y = mapSplits((s) => res.keep(targets.encode(data[s].y)));
    const cut = fineTune ? cutForUnfreeze(first.model, depth.layers) : null;
    const augment = hp0.augmentation ? { config: hp0.augmentation, seed: hp0.seed } : null;
    const { pooled, tail, trainPasses } = await computeTrialFeatures(first, data, { batchSize: hp0.batchSize, cut, memo: opts.featureMemo, augment }, (t) => res.keep(t));
    const labels = await data.train.y.data();

    enter('head');
    const members: Member[] = hps.map((hp, k) => {
      const head = createHead({ units: hp.headUnits, classes: data.classNames.length, dropout: hp.dropout, seed: hp.seed, l2: recipe.l2, binaryHead: recipe.binaryHead });
      res.layers.push(head.pool, head.hidden, head.dropout, head.output);
      const input = tf.input({ shape: [pooled.train.shape[1] as number], name: 'pooled_features' });
      const model = tf.model({ inputs: input, outputs: head.applyToPooled(input), name: 'head' });
      const optimizer = newOptimizer(recipe, hp.learningRate, res);
      compile(model, optimizer, targets);
      hooks.onModel?.(k, 'head', model);
      return { k, hp, backbone: backbones[Math.min(k, backbones.length - 1)], head, random: mulberry32(hp.seed), history: [], earlyStops: [], stopped: false, model, optimizer };
    });
    const phaseOpts = { recipe, y: y.train, yVal: y.val, labels, classWeight, hooks };
    await fusedPhase({ ...phaseOpts, phase: 'head', members, epochs: hp0.headEpochs, x: () => passInput(trainPasses.pooled, 0), validation: pooled.val, baseRate: (m) => m.hp.learningRate, trainableLayers: 0 });
    const headModels = members.map((m) => m.model!);

    let finalModels = headModels;
    let finalInputs: Splits<tf.Tensor> = pooled;
    let cutLayer = first.model.layers[layerCount - 1].name;
    const tuning = members.filter((m) => !m.stopped);
    if (tail && tuning.length > 0) {
      enter('finetune');
      finalModels = [...headModels];
      for (const m of tuning) {
        const input = m.k === 0 ? tail.input : cutInput(m.backbone.model, tail.cut);
        const output = m.k === 0 ? tail.output : applyLayersAfterCut(m.backbone.model, tail.cut, input);
        setTrainableFrom(m.backbone, depth.firstTrainable);
        enforceBatchNormSemantics(m.backbone.model.layers, batchNorm);
        m.model = tf.model({ inputs: input, outputs: m.head.apply(output), name: 'finetune' });
        m.optimizer = keepSlotsPerVariable(newOptimizer(recipe, m.hp.learningRate * m.hp.fineTuneLrFactor, res));
        compile(m.model, m.optimizer, targets);
        hooks.onModel?.(m.k, 'finetune', m.model);
        finalModels[m.k] = m.model;
      }
      await fusedPhase({
        ...phaseOpts, phase: 'finetune', members: tuning, epochs: hp0.fineTuneEpochs, validation: tail.activations.val,
        x: (m) => passInput(trainPasses.activations!, m.history.length), baseRate: (m) => m.hp.learningRate * m.hp.fineTuneLrFactor, trainableLayers: depth.layers,
      });
      finalInputs = tail.activations;
      cutLayer = first.model.layers[tail.cut].name;
    }

    enter('evaluate');
    const outcomes: TrialOutcome[] = [];
    for (const m of members) {
      const model = finalModels[m.k];
      const tuned = model !== headModels[m.k];
      const inputs = tuned ? finalInputs : pooled;
      const val = await evaluate(model, inputs.val, y.val, m.hp.batchSize);
      const test = await evaluate(model, inputs.test, y.test, m.hp.batchSize);
      const testMetrics = await evaluateClassifier(model, inputs.test, data.test.y, data.classNames, m.hp.batchSize);
      const params = countParams([...m.backbone.model.layers, m.head.pool, m.head.hidden, m.head.dropout, m.head.output]);
      outcomes.push({
        valAccuracy: val.accuracy, valLoss: val.loss, testAccuracy: test.accuracy, testLoss: test.loss,
        epochs: m.history.length, seconds: 0, stopped: m.stopped, pretrained: first.pretrained, weightsSource: first.weightsSource,
        backend: tf.getBackend(), totalParams: params.total, trainableParams: params.trainable,
        cutLayer: tuned ? cutLayer : first.model.layers[layerCount - 1].name, unfreezeLayers: depth.layers,
        earlyStops: m.earlyStops, history: m.history, testMetrics, phaseSeconds: { features: 0, head: 0, finetune: 0, evaluate: 0 },
        // A GraphModel cannot be written in the layers format: graph-backbone trials keep no model.
        model: opts.exportModel && !first.graph ? await exportFullModel(m.backbone, m.head, data.classNames) : undefined,
        // Fused groups do not checkpoint: nothing is resumed.
        resumedEpochs: 0,
      });
    }
    // The trials shared every second of the run: each reports the whole of it.
    const seconds = (performance.now() - started) / 1000;
    const phaseSeconds = timer.stop();
    return outcomes.map((o) => ({ ...o, seconds, phaseSeconds }));
  } finally {
    res.release();
  }
}

interface FusedPhaseOptions {
  phase: EpochReport['phase'];
  members: Member[];
  recipe: Recipe;
  epochs: number;
  /** A member's training input, or one per phase epoch (augmented passes); asked once per phase. */
  x(m: Member): tf.Tensor | ((epoch: number) => tf.Tensor);
  y: tf.Tensor;
  /** Integer labels of the training split, for class weights. */
  labels: tf.TypedArray | string[];
  classWeight?: Record<number, number>;
  validation: tf.Tensor;
  yVal: tf.Tensor;
  baseRate(m: Member): number;
  trainableLayers: number;
  hooks: FusedHooks;
}

/** One phase for the members still in it: per-epoch rates, fused batches, per-trial validation, reports and early stopping. */
async function fusedPhase(o: FusedPhaseOptions): Promise<void> {
  const { recipe } = o;
  const early = new Map(o.members.map((m) => [m, recipe.earlyStopping ? new EarlyStopping(o.phase, m.model!, recipe.earlyStopping) : null]));
  const firstEpoch = new Map(o.members.map((m) => [m, m.history.length + 1]));
  // Fixed at the phase start: a member's augmented pass follows its own epoch count (passInput), as in its separate run.
  const inputs = new Map(o.members.map((m) => [m, o.x(m)]));
  let active = [...o.members];
  const yData = await o.y.data();
  const xData = new Map<tf.Tensor, tf.TypedArray | string[]>();
  try {
    for (let epoch = 0; epoch < o.epochs && active.length > 0; epoch++) {
      const startedAt = performance.now();
      const rates = new Map(active.map((m) => [m, learningRateAt(recipe.lrSchedule, o.baseRate(m), epoch, o.epochs)]));
      for (const m of active) setLearningRate(m.optimizer!, rates.get(m)!);
      // Members whose input and shuffle agree share the batches; all of them do unless early stopping split their histories.
      const batches: Array<{ x: tf.Tensor; order: Int32Array; members: Member[] }> = [];
      for (const m of active) {
        const xi = inputs.get(m)!;
        const x = typeof xi === 'function' ? xi(epoch) : xi;
        const order = permutation(x.shape[0], m.random);
        const same = batches.find((b) => b.x === x && b.order.every((v, i) => v === order[i]));
        if (same) same.members.push(m);
        else batches.push({ x, order, members: [m] });
      }
      const train = new Map<Member, { loss: number; accuracy: number }>();
      for (const b of batches) {
        if (!xData.has(b.x)) xData.set(b.x, await b.x.data());
        for (const [m, r] of await fusedEpoch(b.members, permuteRows(xData.get(b.x)!, b.x, b.order), permuteRows(yData, o.y, b.order), sampleWeights(o, b.order))) train.set(m, r);
      }
      const seconds = (performance.now() - startedAt) / 1000;
      const leaving: Member[] = [];
      for (const m of active) {
        const val = await evaluate(m.model!, o.validation, o.yVal, m.hp.batchSize);
        const r: EpochReport = {
          phase: o.phase, epoch: m.history.length + 1, ...train.get(m)!, valLoss: val.loss, valAccuracy: val.accuracy, seconds,
          learningRate: rates.get(m)!, trainableLayers: o.trainableLayers,
        };
        m.history.push(r);
        if ((await o.hooks.onEpoch(m.k, r)) === 'STOP') m.stopped = true;
        const stopPhase = early.get(m)?.onEpochEnd(firstEpoch.get(m)! + epoch, val.loss) ?? false;
        if (m.stopped || stopPhase) leaving.push(m);
      }
      active = active.filter((m) => !leaving.includes(m));
    }
    for (const m of o.members) {
      const report = early.get(m)?.finish();
      if (report) m.earlyStops.push(report);
    }
  } finally {
    for (const e of early.values()) e?.dispose();
  }
}

/** Per-example loss weights in batch order (tfjs `fit({ classWeight })`), or null. */
function sampleWeights(o: FusedPhaseOptions, order: Int32Array): tf.Tensor1D | null {
  if (!o.classWeight) return null;
  const w = new Float32Array(order.length);
  order.forEach((row, i) => (w[i] = o.classWeight![Number(o.labels[row])] ?? 1));
  return tf.tensor1d(w);
}

/**
 * One epoch over shuffled data for `members`: per batch, one forward per
 * model in training mode, one backward of the summed loss, each optimizer
 * applies its own trial's gradients. Returns each member's epoch loss and
 * accuracy as tfjs' BaseLogger averages them (batch means weighted by batch size).
 */
async function fusedEpoch(members: Member[], xs: tf.Tensor, ys: tf.Tensor, ws: tf.Tensor1D | null): Promise<Map<Member, { loss: number; accuracy: number }>> {
  const n = xs.shape[0];
  const batchSize = members[0].hp.batchSize;
  const sums = new Map(members.map((m) => [m, { loss: 0, accuracy: 0 }]));
  const fns = members.map((m) => {
    const internals = m.model as unknown as { lossFunctions: LossFn[]; metricsTensors: Array<[LossFn, number]> };
    return { loss: internals.lossFunctions[0], metric: internals.metricsTensors[0][0] };
  });
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const scalars: tf.Scalar[] = [];
      tf.tidy(() => {
        const xb = tf.slice(xs, start, size);
        const yb = tf.slice(ys, start, size);
        const wb = ws ? tf.slice(ws, start, size) : null;
        const trainable = members.map((m) => m.model!.trainableWeights.map((w) => w.read() as tf.Variable));
        const { value, grads } = tf.variableGrads(() => {
          let total: tf.Scalar | null = null;
          members.forEach((m, i) => {
            const yPred = m.model!.apply(xb, { training: true }) as tf.Tensor;
            const perExample = fns[i].loss(yb, yPred);
            let loss = tf.mean(wb ? tf.mul(perExample, wb) : perExample) as tf.Scalar;
            for (const r of m.model!.calculateLosses()) loss = tf.add(loss, r) as tf.Scalar;
            scalars.push(tf.keep(loss.clone()), tf.keep(tf.mean(fns[i].metric(yb, yPred)) as tf.Scalar));
            total = total ? (tf.add(total, loss) as tf.Scalar) : loss;
          });
          return total!;
        }, trainable.flat());
        members.forEach((m, i) => m.optimizer!.applyGradients(Object.fromEntries(trainable[i].map((v) => [v.name, grads[v.name]]))));
        tf.dispose([value, ...Object.values(grads)]);
      });
      const values = await Promise.all(scalars.map((s) => s.data()));
      tf.dispose(scalars);
      members.forEach((m, i) => {
        const s = sums.get(m)!;
        s.loss += values[2 * i][0] * size;
        s.accuracy += values[2 * i + 1][0] * size;
      });
      // Yield between batches as fit does (yieldEvery 'batch'), so lease heartbeats keep firing.
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    tf.dispose([xs, ys, ...(ws ? [ws] : [])]);
  }
  return new Map(members.map((m) => [m, { loss: sums.get(m)!.loss / n, accuracy: sums.get(m)!.accuracy / n }]));
}
