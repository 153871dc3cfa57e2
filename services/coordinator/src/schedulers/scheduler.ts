import type { EpochRecord, TrialRecord } from '../records.js';

export type SchedulerDecision = 'CONTINUE' | 'STOP';

/**
 * Ray Tune's trial-scheduler contract: called with every reported epoch,
 * answers whether the trial goes on. Early-stopping rules (ASHA, median)
 * implement it; the default FIFO scheduler never stops a trial.
 */
export interface Scheduler {
  onResult(trial: TrialRecord, result: EpochRecord): SchedulerDecision;
}

/** Runs every trial to the end. */
export class FifoScheduler implements Scheduler {
  onResult(): SchedulerDecision {
    return 'CONTINUE';
  }
}
