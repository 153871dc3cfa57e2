import type { EarlyStopReport } from '../early-stopping.js';
import type { EarlyStoppingState } from '../early-stopping.js';
import type { EpochReport } from '../train-trial.js';

/** A tensor's values outside tfjs, so a checkpoint owns no tensors and survives any backend. */
export interface TensorData {
  shape: number[];
  dtype: 'float32' | 'int32';
  values: Float32Array | Int32Array;
}

/** Named tensors: model weights by LayerVariable originalName, optimizer slots by `<originalName>/<slot>` (and `iter`). */
export type NamedTensorData = Array<[string, TensorData]>;

/** PhaseProgress as plain data (run-phase.ts). */
export interface SavedPhaseProgress {
  epochsDone: number;
  ended: boolean;
  earlyStopping: (Omit<EarlyStoppingState, 'bestWeights'> & { bestWeights: NamedTensorData | null }) | null;
}

/**
 * Everything a trial needs to continue after its last finished epoch as if
 * it had never stopped: the phase and how far it got, the weights of the
 * model being trained (head, and the unfrozen tail in phase 2), the
 * optimizer's slots (Adam m/v and iterations, momentum, RMS), the shuffle
 * stream's position, the dropout mask stream's position, early stopping's
 * state and the history so far. The learning rate is a function of the
 * phase epoch (lr-schedule.ts), so the epoch count is its position.
 */
export interface TrialCheckpoint {
  /** Format version of this object. */
  v: 1;
  /** Hyperparameters and data this was taken with; a checkpoint of anything else is ignored. */
  fingerprint: string;
  phase: 'head' | 'finetune';
  /** Epochs over both phases so far (= history.length). */
  epochsDone: number;
  /** The current phase's progress (its epochs, whether early stopping ended it, its state). */
  progress: SavedPhaseProgress;
  history: EpochReport[];
  /** Early-stopping reports of the phases already finished. */
  earlyStops: EarlyStopReport[];
  /** mulberry32 state of the shuffle stream after the last epoch's permutation. */
  rngState: number;
  /** Calls made to the head's dropout layer (its mask stream's position). */
  dropoutCalls: number;
  /** Learning rate of the last epoch (for logs; the schedule recomputes it). */
  learningRate: number;
  /** Every weight of the phase's model (trainable or not: BatchNorm statistics too). */
  weights: NamedTensorData;
  optimizer: {
    /** optimizer.getWeights(), variable names replaced by originalNames. */
    weights: NamedTensorData;
    /** keepSlotsPerVariable's order (phase 2), as originalNames; null for a plain optimizer. */
    slotOrder: string[] | null;
  };
}

/**
 * Where checkpoints live (the NATS Object Store on workers, memory in
 * tests): one per trial, overwritten each epoch, deleted once the trial is
 * terminal. `load` answers null when there is none or it cannot be read
 * (a bad checkpoint only costs the retraining).
 */
export interface Checkpointer {
  load(trialId: string): Promise<TrialCheckpoint | null>;
  save(trialId: string, checkpoint: TrialCheckpoint): Promise<void>;
  delete(trialId: string): Promise<void>;
  /** Resolves once the writes started so far have ended, or after `maxMs` (a process about to hand its trial back and exit). @default resolves at once */
  idle?(maxMs: number): Promise<void>;
}

/** A trial's checkpointing as the engine sees it (TrainOptions.checkpoint). */
export interface TrialCheckpointing {
  trialId: string;
  store: Checkpointer;
  /** Already loaded by the caller (e.g. to tell the coordinator before training); undefined = load it here. */
  resumeFrom?: TrialCheckpoint | null;
  /** A save failed: training goes on (the next epoch tries again). @default ignore */
  onSaveError?(err: unknown): void;
}

/** A Checkpointer in this process's memory (tests, single-process runs). */
export class MemoryCheckpointer implements Checkpointer {
  private readonly items = new Map<string, TrialCheckpoint>();
  /** Number of saves so far (tests). */
  saves = 0;

  async load(trialId: string): Promise<TrialCheckpoint | null> {
    return this.items.get(trialId) ?? null;
  }
  async save(trialId: string, checkpoint: TrialCheckpoint): Promise<void> {
    this.saves += 1;
    this.items.set(trialId, structuredClone(checkpoint));
  }
  async delete(trialId: string): Promise<void> {
    this.items.delete(trialId);
  }
}
