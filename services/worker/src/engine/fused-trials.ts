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
import { createHead, dropoutCallCount, setDropoutCallCount, type Head } from './head.js';
import { learningRateAt } from './lr-schedule.js';
import { evaluateClassifier } from './metrics.js';
import { keepSlotsPerVariable, setLearningRate } from './optimizer.js';
import { PhaseTimer } from './phase-timer.js';
import { unfreezesAnything, type Recipe } from './recipe-options.js';
import { trainingTargets } from './training-targets.js';
import { applyLayersAfterCut, cutInput } from './tail-model.js';
import { computeTrialFeatures, mapSplits, type Splits } from './trial-features.js';
import { passInput } from './augmented-passes.js';
import { resolveUnfreeze } from './unfreeze.js';
import { mulberry32, mulberry32FromState, type SeededRng } from '../data/prng.js';
import { checkpointFingerprint, CheckpointSession, restorePhase, resumeProgress } from './checkpoint/checkpoint-session.js';
import type { TrialCheckpoint, TrialCheckpointing } from './checkpoint/trial-checkpoint.js';
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

/** TrainOptions of a fused run: checkpoints are per trial, one entry per trial of `hps`. */
export interface FusedTrainOptions extends Omit<TrainOptions, 'checkpoint'> {
  /** `checkpoints[k]`: trial k's epoch checkpoints (saved after each of its epochs, resumed from). @default none */
  checkpoints?: ReadonlyArray<TrialCheckpointing | undefined>;
}

type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

/** One trial's state inside a fused run. */
interface Member {
  k: number;
  hp: TrialHyperparams;
  backbone: Backbone;
  head: Head;
  random: SeededRng;
  history: EpochReport[];
  earlyStops: EarlyStopReport[];
  stopped: boolean;
  model: tf.LayersModel | null;
  optimizer: tf.Optimizer | null;
  /** Saves this trial's checkpoint after each of its epochs; null when it has no checkpointing. */
  session: CheckpointSession | null;
  /** The checkpoint this trial resumes from (its phase restores it), or null when it starts afresh. */
  saved: TrialCheckpoint | null;
  /**
   * Set on a phase-1 trainer (k < 0, no trial of its own): the trials whose
   * phase 1 it trains for them. Each gets the trainer's epoch reports as its
   * own, and its head (weights, shuffle and dropout streams) when it leaves.
   */
  riders?: Member[];
}

/** Whether a trial trains its head only: nothing unfrozen, or no fine-tune epochs. */
export function isHeadOnlyHp(hp: TrialHyperparams): boolean {
  return !unfreezesAnything(hp.unfreeze) || hp.fineTuneEpochs === 0;
}

/**
 * Whether `hps` can train fused: equal in everything but learning rate,
 * dropout and head units (the planner's fusion key guarantees it for a
 * unit's groups), except that head-only trials may join fine-tune trials
 * (fuse.shareHeads): phase 1 is the same for both, and they sit out phase 2.
 * Gradual unfreezing re-compiles per epoch and is left to separate runs.
 */
export function fusionBlocker(hps: readonly TrialHyperparams[]): string | null {
  const rest = (hp: TrialHyperparams) => JSON.stringify({ ...hp, learningRate: 0, dropout: 0, headUnits: 0 });
  const headRest = (hp: TrialHyperparams) => JSON.stringify({ ...hp, learningRate: 0, dropout: 0, headUnits: 0, unfreeze: 0, fineTuneEpochs: 0, fineTuneLrFactor: 0 });
  const tuners = hps.filter((hp) => !isHeadOnlyHp(hp));
  if (hps.some((hp) => headRest(hp) !== headRest(hps[0])) || tuners.some((hp) => rest(hp) !== rest(tuners[0]))) {
    return 'trials differ in more than learning rate, dropout and head units (and, for head-only trials, depth)';
  }
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
 * the fused batch; the others go on. Trials with the same head config train
 * phase 1 once (sharedHeadTrainers) — head-only trials among them, which sit
 * out phase 2 — and each fine-tunes from its fork of that head.
 */
export async function trainFusedTrials(hps: readonly TrialHyperparams[], data: LoadedDataset, hooks: FusedHooks, opts: FusedTrainOptions = {}): Promise<TrialOutcome[]> {
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
  let sessions: Array<CheckpointSession | null> = [];
  try {
    const backboneOpts = { imageSize: hp0.imageSize, seed: hp0.seed, weightsRef: hp0.weightsRef, weightsAccess: opts.weightsAccess, graph: hp0.graph };
    const first = await loadBackbone(hp0.backbone, backboneOpts);
    res.layers.push(...first.model.layers);
    // Head-only trials (fuse.shareHeads) ride along: the fine-tuning trials, all of one depth, decide the cut.
    const tuner = hps.find((hp) => !isHeadOnlyHp(hp)) ?? hp0;
    const depth = resolveUnfreeze(tuner.unfreeze, first);
    const fineTune = depth.layers > 0 && tuner.fineTuneEpochs > 0;
    const layerCount = first.model.layers.length;
    const batchNorm = { trainBatchNorm: recipe.trainBatchNorm };
    setTrainableFrom(first, layerCount);
    enforceBatchNormSemantics(first.model.layers, batchNorm);
    const classWeight = recipe.classWeights ? classWeightsFor(recipe.classWeights, await data.train.y.data(), data.classNames) : undefined;
    const targets = trainingTargets(recipe.binaryHead, data.classNames.length, recipe.labelSmoothing);

    enter('features');
    const y = mapSplits((s) => res.keep(targets.encode(data[s].y)));
    const cut = fineTune ? cutForUnfreeze(first.model, depth.layers) : null;
    const augment = hp0.augmentation ? { config: hp0.augmentation, seed: hp0.seed } : null;
    const { pooled, tail, trainPasses } = await computeTrialFeatures(first, data, { batchSize: hp0.batchSize, cut, memo: opts.featureMemo, augment }, (t) => res.keep(t));
    const labels = await data.train.y.data();

    // Each trial's own checkpoint, as trainTrial takes it (same fingerprint): one taken fused or alone resumes either way.
    sessions = hps.map((hp, k) => {
      const c = opts.checkpoints?.[k];
      return c ? new CheckpointSession(c, checkpointFingerprint(hp, data)) : null;
    });
    const saved = await Promise.all(sessions.map((s) => (s ? s.load().catch(() => null) : null)));

    enter('head');
    const newMember = (k: number, hp: TrialHyperparams, cp: TrialCheckpoint | null, session: CheckpointSession | null): Member => {
      const head = createHead({ units: hp.headUnits, classes: data.classNames.length, dropout: hp.dropout, seed: hp.seed, l2: recipe.l2, binaryHead: recipe.binaryHead });
      res.layers.push(head.pool, head.hidden, head.dropout, head.output);
      const input = tf.input({ shape: [pooled.train.shape[1] as number], name: 'pooled_features' });
      const model = tf.model({ inputs: input, outputs: head.applyToPooled(input), name: 'head' });
      const optimizer = newOptimizer(recipe, hp.learningRate, res);
      compile(model, optimizer, targets);
      if (k >= 0) hooks.onModel?.(k, 'head', model);
      // A resumed trial continues its shuffle stream, history and early-stopping reports where its checkpoint left them.
      return {
        k, hp, backbone: first, head, random: cp ? mulberry32FromState(cp.rngState) : mulberry32(hp.seed),
        history: cp ? [...cp.history] : [], earlyStops: cp ? [...cp.earlyStops] : [], stopped: false, model, optimizer, session, saved: cp,
      };
    };
    const members: Member[] = hps.map((hp, k) => newMember(k, hp, saved[k], sessions[k]));
    const phaseOpts = { recipe, y: y.train, yVal: y.val, labels, classWeight, hooks };
    // A trial checkpointed in phase 2 skips phase 1: its head's weights are in the checkpoint.
    const inHead = members.filter((m) => m.saved?.phase !== 'finetune');
    const headTrainers = sharedHeadTrainers(inHead, recipe, (m, i) => newMember(-1 - i, m.hp, m.saved, null));
    await fusedPhase({ ...phaseOpts, phase: 'head', members: headTrainers, epochs: hp0.headEpochs, x: () => passInput(trainPasses.pooled, 0), validation: pooled.val, baseRate: (m) => m.hp.learningRate, trainableLayers: 0 });
    // Trials still riding a trainer at the phase's end take its head.
    for (const t of headTrainers) for (const r of t.riders ?? []) forkHead(t, r);
    const headModels = members.map((m) => m.model!);

    let finalModels = headModels;
    let finalInputs: Splits<tf.Tensor> = pooled;
    let cutLayer = first.model.layers[layerCount - 1].name;
    const tuning = members.filter((m) => !m.stopped && !isHeadOnlyHp(m.hp));
    if (tail && tuning.length > 0) {
      enter('finetune');
      finalModels = [...headModels];
      // Each trial fine-tunes its own copy of the tail, loaded only now (most trials of a sweep with early
      // stopping never get here). The first may take the frozen backbone when no other trial keeps it
      // (head-only and stopped trials evaluate and export with it).
      const firstFree = tuning.length === members.length;
      for (const [i, m] of tuning.entries()) {
        if (i > 0 || !firstFree) {
          m.backbone = await loadBackbone(hp0.backbone, backboneOpts);
          res.layers.push(...m.backbone.model.layers);
        }
        const input = m.backbone === first ? tail.input : cutInput(m.backbone.model, tail.cut);
        const output = m.backbone === first ? tail.output : applyLayersAfterCut(m.backbone.model, tail.cut, input);
        setTrainableFrom(m.backbone, depth.firstTrainable);
        enforceBatchNormSemantics(m.backbone.model.layers, batchNorm);
        m.model = tf.model({ inputs: input, outputs: m.head.apply(output), name: 'finetune' });
        m.optimizer = keepSlotsPerVariable(newOptimizer(recipe, m.hp.learningRate * m.hp.fineTuneLrFactor, res));
        compile(m.model, m.optimizer, targets);
        hooks.onModel?.(m.k, 'finetune', m.model);
        finalModels[m.k] = m.model;
      }
      await fusedPhase({
        ...phaseOpts, phase: 'finetune', members: tuning, epochs: tuner.fineTuneEpochs, validation: tail.activations.val,
        // Phase 2's augmented passes continue after the trial's phase-1 epochs (resumed or not).
        x: (m) => passInput(trainPasses.activations!, m.history.filter((e) => e.phase === 'head').length), baseRate: (m) => m.hp.learningRate * m.hp.fineTuneLrFactor, trainableLayers: depth.layers,
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
        cutLayer: tuned ? cutLayer : first.model.layers[layerCount - 1].name, unfreezeLayers: isHeadOnlyHp(m.hp) ? resolveUnfreeze(m.hp.unfreeze, first).layers : depth.layers,
        earlyStops: m.earlyStops, history: m.history, testMetrics, phaseSeconds: { features: 0, head: 0, finetune: 0, evaluate: 0 },
        // A GraphModel cannot be written in the layers format: graph-backbone trials keep no model.
        model: opts.exportModel && !first.graph ? await exportFullModel(m.backbone, m.head, data.classNames) : undefined,
        resumedEpochs: m.saved?.epochsDone ?? 0,
      });
    }
    // The trials shared every second of the run: each reports the whole of it.
    const seconds = (performance.now() - started) / 1000;
    const phaseSeconds = timer.stop();
    return outcomes.map((o) => ({ ...o, seconds, phaseSeconds }));
  } finally {
    try {
      // Each member's last checkpoint is stored before the group's end is reported (see CheckpointSession);
      // failed writes went to onSaveError already.
      await Promise.all(sessions.map((s) => s?.flush().catch(() => {})));
    } finally {
      res.release();
    }
  }
}

/**
 * Phase 1's trainers: trials whose phase 1 is identical — equal learning
 * rate, dropout and head units (the rest is equal in a fused group), resumed
 * from the same point or not at all — share one trainer that trains the head
 * once for all of them (typically the same head config at several unfreeze
 * depths: phase 1 sees the pooled output of the whole frozen backbone
 * whatever the depth). A trial alone trains itself. With early stopping on,
 * every trial trains itself: its best-weights bookkeeping is per model.
 */
function sharedHeadTrainers(members: Member[], recipe: Recipe, newTrainer: (m: Member, i: number) => Member): Member[] {
  if (recipe.earlyStopping) return members;
  const sameStart = (cp: TrialCheckpoint | null) => (cp ? [cp.phase, cp.epochsDone, cp.progress.epochsDone, cp.progress.ended, cp.rngState, cp.dropoutCalls] : null);
  const groups = new Map<string, Member[]>();
  for (const m of members) {
    const key = JSON.stringify([m.hp.learningRate, m.hp.dropout, m.hp.headUnits, sameStart(m.saved)]);
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  return [...groups.values()].map((g, i) => {
    if (g.length === 1) return g[0];
    const t = newTrainer(g[0], i);
    t.riders = [...g];
    return t;
  });
}

/**
 * A trial leaves its phase-1 trainer (stopped, or the phase is over): its own
 * head takes the trainer's weights, shuffle stream and dropout-mask position —
 * what its separate run would hold at this epoch. Its optimizer is not
 * copied: phase 2 starts a fresh one, and its checkpoints were saved from the
 * trainer's.
 */
function forkHead(trainer: Member, rider: Member): void {
  const byName = new Map(trainer.model!.weights.map((w) => [w.originalName, w]));
  for (const w of rider.model!.weights) w.write(byName.get(w.originalName)!.read());
  rider.random = mulberry32FromState(trainer.random.state);
  setDropoutCallCount(rider.head, dropoutCallCount(trainer.head));
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

/**
 * One phase for the members still in it: per-epoch rates, fused batches, per-trial validation, reports, early stopping
 * and checkpoints.
 *
 * Members resumed from checkpoints may be at different epochs of the phase (a worker dies between two members'
 * saves, or a member's checkpoint is missing). Each member joins the phase loop at its own next epoch: the loop starts
 * at the earliest one, members that are ahead wait until the others catch up, then all train fused. Nothing about a
 * member depends on the others (no shared weights, its own shuffle stream and optimizer; the learning rate and the
 * augmented pass are functions of the phase epoch), so waiting changes no number; it costs only the laggards' epochs
 * trained with fewer members in the batch. Grouping by resume epoch would need several fused runs over the same
 * features; a member that is ahead skipping the group would have to train alone. Joining is the simplest of the three.
 */
async function fusedPhase(o: FusedPhaseOptions): Promise<void> {
  const { recipe } = o;
  const early = new Map(o.members.map((m) => [m, recipe.earlyStopping ? new EarlyStopping(o.phase, m.model!, recipe.earlyStopping) : null]));
  // Phase epoch (0-based) each member trains next: 0, or where its checkpoint of this phase left it.
  const startAt = new Map<Member, number>();
  try {
    for (const m of o.members) {
      const cp = m.saved?.phase === o.phase ? m.saved : null;
      startAt.set(m, cp ? (cp.progress.ended ? o.epochs : cp.progress.epochsDone) : 0);
      if (!cp) continue;
      await restorePhase(cp, m.model!, m.optimizer!, m.head);
      const resumed = resumeProgress(cp);
      try {
        if (resumed.progress.earlyStopping) early.get(m)?.restore(resumed.progress.earlyStopping);
      } finally {
        resumed.release();
      }
    }
  } catch (err) {
    for (const e of early.values()) e?.dispose();
    throw err;
  }
  // Global number (1-based over both phases) of the phase's first epoch, for early stopping's reports.
  const firstEpoch = new Map(o.members.map((m) => [m, m.history.length - startAt.get(m)! + 1]));
  // Fixed at the phase start: a member's augmented pass follows its own epoch count (passInput), as in its separate run.
  const inputs = new Map(o.members.map((m) => [m, o.x(m)]));
  let waiting = o.members.filter((m) => startAt.get(m)! < o.epochs);
  let active: Member[] = [];
  const yData = await o.y.data();
  const xData = new Map<tf.Tensor, tf.TypedArray | string[]>();
  try {
    const from = Math.min(o.epochs, ...waiting.map((m) => startAt.get(m)!));
    for (let epoch = from; epoch < o.epochs && active.length + waiting.length > 0; epoch++) {
      active.push(...waiting.filter((m) => startAt.get(m)! === epoch));
      waiting = waiting.filter((m) => startAt.get(m)! > epoch);
      const startedAt = performance.now();
      const rates = new Map(active.map((m) => [m, learningRateAt(recipe.lrSchedule, o.baseRate(m), epoch, o.epochs)]));
      for (const m of active) setLearningRate(m.optimizer!, rates.get(m)!);
      // Members whose input and shuffle agree share the batches; all of them do unless early stopping or a resume split their histories.
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
        if (m.riders) {
          // A trainer's epoch is each rider's own: reported, checkpointed (from the trainer's state) and stopped per rider.
          // The riders' reports and saves go out together (one round trip, not one per rider); nothing trains meanwhile.
          const riders = [...m.riders];
          for (const f of riders) {
            f.history.push({ ...r });
            // The rider's own model holds this epoch's head during its hook (onModel readers see what a separate run has).
            forkHead(m, f);
          }
          const decisions = await Promise.allSettled(riders.map(async (f) => o.hooks.onEpoch(f.k, { ...r })));
          // A rider whose report failed saves nothing for this epoch, as a trial alone would not; the others keep theirs.
          await Promise.all(riders.map(async (f, i) => {
            const d = decisions[i];
            if (d.status === 'rejected') return;
            if (d.value === 'STOP') f.stopped = true;
            await f.session?.save(
              { phase: o.phase, model: m.model!, optimizer: m.optimizer!, head: m.head, random: m.random, history: f.history, earlyStops: f.earlyStops },
              { epochsDone: epoch + 1, ended: false, earlyStopping: null },
            );
          }));
          const failed = decisions.find((d): d is PromiseRejectedResult => d.status === 'rejected');
          if (failed) throw failed.reason;
          m.riders = m.riders.filter((f) => !f.stopped);
          if (m.riders.length === 0) leaving.push(m);
          continue;
        }
        if ((await o.hooks.onEpoch(m.k, r)) === 'STOP') m.stopped = true;
        const es = early.get(m) ?? null;
        const stopPhase = es?.onEpochEnd(firstEpoch.get(m)! + epoch, val.loss) ?? false;
        // As trainTrial: after the report and early stopping's step, before the next epoch (a save failure never fails the trial).
        await m.session?.save(
          { phase: o.phase, model: m.model!, optimizer: m.optimizer!, head: m.head, random: m.random, history: m.history, earlyStops: m.earlyStops },
          { epochsDone: epoch + 1, ended: stopPhase, earlyStopping: es?.state() ?? null },
        );
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
