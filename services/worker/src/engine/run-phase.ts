import type * as tf from '@tensorflow/tfjs';
import { EarlyStopping, type EarlyStoppingState, type EarlyStopReport } from './early-stopping.js';
import { fitEpochs, type EpochMetrics } from './fit-epochs.js';
import { learningRateAt } from './lr-schedule.js';
import { setLearningRate } from './optimizer.js';
import type { EarlyStoppingOptions, LrSchedule } from './recipe-options.js';

/** One epoch of a phase as the phase runner reports it. */
export interface PhaseEpoch extends EpochMetrics {
  learningRate: number;
  /** Backbone layers trainable in this epoch. */
  trainableLayers: number;
}

export interface PhaseOptions {
  phase: EarlyStopReport['phase'];
  /** Compiled with `optimizer`. */
  model: tf.LayersModel;
  optimizer: tf.Optimizer;
  /** The training input, or one per phase epoch (0-based), e.g. augmented passes. */
  x: tf.Tensor | ((epoch: number) => tf.Tensor);
  y: tf.Tensor;
  validation: [tf.Tensor, tf.Tensor] | (() => [tf.Tensor, tf.Tensor]);
  epochs: number;
  batchSize: number;
  random: () => number;
  classWeight?: Record<number, number>;
  /** Rate of the phase's first epoch; the schedule decays from it. */
  baseLearningRate: number;
  schedule: LrSchedule;
  earlyStopping: EarlyStoppingOptions | null;
  /** Global number (1-based over both phases) of this phase's first epoch, for the early-stop report. */
  firstEpoch: number;
  /**
   * Before each epoch (0-based within the phase), after the learning rate is
   * set: may change trainability and re-compile (gradual unfreezing).
   * @returns the backbone layers trainable in that epoch.
   */
  beforeEpoch(epoch: number): number;
  /** Before each epoch (0-based within the phase), after beforeEpoch: e.g. recompute the inputs `x` and `validation` return. @default none */
  prepareEpoch?(epoch: number): Promise<void>;
  /** After each epoch: the trial's scheduler; 'STOP' ends the whole trial. */
  report(m: PhaseEpoch): Promise<'CONTINUE' | 'STOP'>;
  /** Continue a phase a checkpoint interrupted (weights, optimizer and `random` are restored by the caller). @default start afresh */
  resume?: PhaseProgress | null;
  /** After each epoch's report and early-stopping step, before the next epoch: where to take a checkpoint. @default none */
  afterEpoch?(p: PhaseProgress): Promise<void>;
}

/** How far a phase got: what a checkpoint needs to continue it. */
export interface PhaseProgress {
  /** Epochs of this phase run so far. */
  epochsDone: number;
  /** Early stopping ended the phase after the last of them. */
  ended: boolean;
  /** Early stopping's state (best loss, patience count, best weights), or null when off. */
  earlyStopping: EarlyStoppingState | null;
}

export interface PhaseResult {
  epochs: number;
  /** The trial's scheduler (report) said STOP; early stopping ends only the phase. */
  stopped: boolean;
  earlyStop: EarlyStopReport | null;
}

/**
 * Runs one training phase: per-epoch learning rate, the caller's per-epoch
 * trainability, reports, and early stopping on val_loss (with its weight
 * restore at the end of the phase, also when the scheduler stopped it).
 */
export async function runPhase(o: PhaseOptions): Promise<PhaseResult> {
  const early = o.earlyStopping ? new EarlyStopping(o.phase, o.model, o.earlyStopping) : null;
  if (early && o.resume?.earlyStopping) early.restore(o.resume.earlyStopping);
  let stopped = false;
  let learningRate = o.baseLearningRate;
  let trainableLayers = 0;
  try {
    const fit = await fitEpochs(o.model, o.x, o.y, {
      epochs: o.epochs,
      // A phase that early stopping ended runs nothing more: only its finish (the weight restore) is left.
      startEpoch: o.resume ? (o.resume.ended ? o.epochs : o.resume.epochsDone) : 0,
      batchSize: o.batchSize,
      random: o.random,
      validation: o.validation,
      classWeight: o.classWeight,
      beforeEpoch: async (epoch) => {
        learningRate = learningRateAt(o.schedule, o.baseLearningRate, epoch - 1, o.epochs);
        setLearningRate(o.optimizer, learningRate);
        trainableLayers = o.beforeEpoch(epoch - 1);
        await o.prepareEpoch?.(epoch - 1);
      },
      onEpoch: async (epoch, m) => {
        const decision = await o.report({ ...m, learningRate, trainableLayers });
        if (decision === 'STOP') stopped = true;
        const earlyStop = early?.onEpochEnd(o.firstEpoch + epoch - 1, m.valLoss) ?? false;
        await o.afterEpoch?.({ epochsDone: epoch, ended: earlyStop, earlyStopping: early?.state() ?? null });
        return stopped || earlyStop ? 'STOP' : 'CONTINUE';
      },
    });
    return { epochs: fit.epochs, stopped, earlyStop: early?.finish() ?? null };
  } finally {
    early?.dispose();
  }
}
