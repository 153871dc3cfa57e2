/**
 * Names shared by the coordinator (which creates them) and workers (which
 * consume). One place so they cannot drift apart.
 */
export const TRIAL_STREAM = 'TLSWEEP_TRIALS';
export const TRIAL_SUBJECT_PREFIX = 'tlsweep.trials';
/** Subject a sweep's trials are published on. */
export const trialSubject = (sweepId: string) => `${TRIAL_SUBJECT_PREFIX}.${sweepId}`;
export const WORKER_CONSUMER = 'tlsweep-workers';
export const SWEEPS_BUCKET = 'tlsweep-sweeps';
export const TRIALS_BUCKET = 'tlsweep-trials';
/** The coordinator's own settings that must survive a restart (the lease secret). Workers have no access. */
export const COORDINATOR_BUCKET = 'tlsweep-coordinator';
/** The epoch log: each epoch report of a running trial, appended (store/epoch-log.ts). Coordinator only. */
export const EPOCH_STREAM = 'TLSWEEP_EPOCHS';
export const EPOCH_SUBJECT_PREFIX = 'tlsweep.epochs';
export const epochSubject = (sweepId: string, trialId: string) => `${EPOCH_SUBJECT_PREFIX}.${sweepId}.${trialId}`;
