import type { EpochRecord, TrialRecord } from '../records.js';

export type SchedulerDecision = 'CONTINUE' | 'STOP';

/** Which epoch metric a scheduler (or searcher) ranks trials by, and which way is better. */
export type SchedulerMetric = 'val_accuracy' | 'val_loss';

/** `val_accuracy` is maximised, `val_loss` minimised. */
export const metricMode = (m: SchedulerMetric): 'max' | 'min' => (m === 'val_loss' ? 'min' : 'max');

/** The metric's value in an epoch record. */
export const metricOf = (m: SchedulerMetric, r: EpochRecord): number => (m === 'val_loss' ? r.valLoss : r.valAccuracy);

/**
 * Ray Tune's trial-scheduler contract: called with every reported epoch,
 * answers whether the trial goes on. Early-stopping rules (ASHA, median)
 * implement it; the default FIFO scheduler never stops a trial.
 *
 * One instance serves one sweep. Its state must be a function of the results
 * it has seen, so replaying the stored histories through `onResult` after a
 * coordinator restart rebuilds it (decisions during the replay are ignored).
 */
export interface Scheduler {
  onResult(trial: TrialRecord, result: EpochRecord): SchedulerDecision;
  /** Why the last STOP for this trial was given (for logs and the trial record). */
  stopReason?(trialId: string): string;
  /** A new attempt of the trial starts from scratch: forget what its earlier attempt reported. */
  forget?(trialId: string): void;
}

/** Runs every trial to the end. */
export class FifoScheduler implements Scheduler {
  onResult(): SchedulerDecision {
    return 'CONTINUE';
  }
}
