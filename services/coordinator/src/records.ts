import type { EarlyStopReport } from '../../worker/src/engine/early-stopping.js';
import type { EpochReport } from '../../worker/src/engine/train-trial.js';
import { unfreezeLabel } from '../../worker/src/engine/recipe-options.js';
import type { ClassificationMetrics } from '../../worker/src/engine/metrics.js';
import type { PhaseSeconds } from '../../worker/src/engine/phase-timer.js';
import type { SweepSpec, TrialConfig } from './spec/sweep-spec.js';

/**
 * Lifecycle of a trial. Terminal: completed, failed, stopped, cancelled,
 * diverged (its loss became NaN or exploded; never retried).
 */
export type TrialStatus = 'pending' | 'queued' | 'running' | 'completed' | 'failed' | 'stopped' | 'cancelled' | 'diverged';
export const TRIAL_STATUSES: readonly TrialStatus[] = ['pending', 'queued', 'running', 'completed', 'failed', 'stopped', 'cancelled', 'diverged'];
export const TERMINAL_TRIAL_STATUSES: ReadonlySet<TrialStatus> = new Set(['completed', 'failed', 'stopped', 'cancelled', 'diverged']);

export type SweepStatus = 'running' | 'completed' | 'cancelled' | 'failed';

/** One epoch as a worker reports it: exactly what the engine measures. */
export type EpochRecord = EpochReport;

/** A trial's durable state (JetStream KV `tlsweep-trials`, key `<sweepId>.<trialId>`). */
export interface TrialRecord {
  config: TrialConfig;
  status: TrialStatus;
  /** The delivery attempt that owns the trial now (JetStream delivery count); 0 before the first. */
  attempt: number;
  worker: string;
  backend: string;
  pretrained: boolean;
  weightsSource: string;
  history: EpochRecord[];
  valAccuracy: number | null;
  valLoss: number | null;
  testAccuracy: number | null;
  testLoss: number | null;
  epochs: number;
  seconds: number;
  totalParams: number;
  trainableParams: number;
  cutLayer: string;
  /**
   * Name of the trial's full model in the tlsweep-models bucket; '' (or
   * absent, in records older than model export) when none is stored.
   */
  modelRef?: string;
  /** The worker said it holds the trained model (TrialFinished has_model): only such trials compete for `keepModels`. */
  hasModel?: boolean;
  /** Backbone layers the unfreeze depth resolved to on the worker; 0 until the trial finishes. */
  unfreezeLayers: number;
  /** What early stopping did, per phase it watched (the epoch it stopped, the epoch restored). */
  earlyStops: EarlyStopReport[];
  /** The final model on the test split (per class, confusion matrix); null until finished (and in records stored before it existed, read as `?? null`). */
  testMetrics: ClassificationMetrics | null;
  /** Wall seconds per phase; null until finished. */
  phaseSeconds: PhaseSeconds | null;
  error: string;
  /** The error of the latest attempt that reported one, kept when a new attempt clears `error`: a trial whose deliveries run out fails naming it. @default absent */
  lastError?: string;
  /** Stream sequence of the queued message (its work unit's) in the shared queue, so a cancel can delete it; 0 while it waits in an inbox. */
  queueSeq: number;
  /**
   * Cache-affinity dispatch: the worker inbox (TLSWEEP_AFFINITY) the trial's unit was published to, and
   * the message's sequence there; null once it left the inbox (fallback to the shared queue). @default absent
   */
  inbox?: { worker: string; seq: number } | null;
  /**
   * Lowest attempt number the coordinator still accepts: set when a unit moves from an inbox to the shared
   * queue, so a late TrialStarted of the inbox delivery is refused (a trial never runs twice). @default absent (0)
   */
  minAttempt?: number;
  /** The work unit (queue message) the trial travels in (planner/plan-units.ts). Absent in older records: a unit of its own, id = trial id. */
  unitId?: string;
  /** Epochs later attempts took from epoch checkpoints instead of training again (absent in older records: 0). */
  resumedEpochs?: number;
  /** Epochs an earlier attempt had done that a later one trained again (no checkpoint covered them). */
  retrainedEpochs?: number;
  /** Corrupt or truncated images skipped while loading the dataset (set when the trial finishes). */
  skippedImages?: number;
  /** Times the coordinator re-published the trial because its message was lost (see reconcile); the queue message id carries it. */
  requeues?: number;
  /**
   * The scheduler's STOP for the current attempt: the epoch it was given at
   * and why. Stored with that epoch so a retried report gets the same answer.
   * Absent in records written before schedulers existed.
   */
  earlyStop?: { epoch: number; reason: string } | null;
  createdAtMs: number;
  updatedAtMs: number;
}

/** A sweep's durable state (JetStream KV `tlsweep-sweeps`, key `<sweepId>`). */
export interface SweepRecord {
  sweepId: string;
  spec: SweepSpec;
  status: SweepStatus;
  trialCount: number;
  reason: string;
  createdAtMs: number;
  finishedAtMs: number;
}

/** The message a worker pulls from the trial queue: one trial (v1, still read) or a work unit (v2). */
export type TrialTask = TrialTaskV1 | UnitTask;

export interface TrialTaskV1 {
  /** Format version of this message. */
  v: 1;
  config: TrialConfig;
  /** Deliveries the trial had before this message (an inbox delivery that failed): attempt = attemptBase + delivery count. @default 0 */
  attemptBase?: number;
}

/** A work unit: trials that share their frozen features, run by one worker (fusable ones together). */
export interface UnitTask {
  v: 2;
  /** The message id (duplicate window) and the unit every trial record names. */
  unitId: string;
  configs: TrialConfig[];
  /** As TrialTaskV1.attemptBase. @default 0 */
  attemptBase?: number;
}

/** The trials a queue message carries, whatever its version. */
export function configsOf(task: TrialTask): TrialConfig[] {
  return task.v === 1 ? [task.config] : task.configs;
}

/** The work unit a trial travels in. */
export function unitOf(t: TrialRecord): string {
  return t.unitId ?? t.config.trialId;
}

export function newTrialRecord(config: TrialConfig, now: number): TrialRecord {
  return {
    config,
    status: 'pending',
    attempt: 0,
    worker: '',
    backend: '',
    pretrained: false,
    weightsSource: '',
    history: [],
    valAccuracy: null,
    valLoss: null,
    testAccuracy: null,
    testLoss: null,
    epochs: 0,
    seconds: 0,
    totalParams: 0,
    trainableParams: 0,
    cutLayer: '',
    modelRef: '',
    unfreezeLayers: 0,
    earlyStops: [],
    testMetrics: null,
    phaseSeconds: null,
    error: '',
    queueSeq: 0,
    resumedEpochs: 0,
    retrainedEpochs: 0,
    skippedImages: 0,
    requeues: 0,
    earlyStop: null,
    createdAtMs: now,
    updatedAtMs: now,
  };
}

/**
 * The unfreeze depth as a number for sorting and the wire's `unfreeze` field:
 * a layer count as written, else the count it resolved to (0 until known).
 */
export function unfreezeLayersOf(t: TrialRecord): number {
  return typeof t.config.unfreeze === 'number' ? t.config.unfreeze : (t.unfreezeLayers ?? 0);
}

/** The unfreeze depth as written, for tables and group-by: `11`, `blocks:2`, `at:block_14_add`. */
export function unfreezeLabelOf(t: TrialRecord): string {
  return unfreezeLabel(t.config.unfreeze);
}
