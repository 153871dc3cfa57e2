import type { EpochReport } from '../../worker/src/engine/train-trial.js';
import type { SweepSpec, TrialConfig } from './spec/sweep-spec.js';

/** Lifecycle of a trial. Terminal: completed, failed, stopped, cancelled. */
export type TrialStatus = 'pending' | 'queued' | 'running' | 'completed' | 'failed' | 'stopped' | 'cancelled';
export const TRIAL_STATUSES: readonly TrialStatus[] = ['pending', 'queued', 'running', 'completed', 'failed', 'stopped', 'cancelled'];
export const TERMINAL_TRIAL_STATUSES: ReadonlySet<TrialStatus> = new Set(['completed', 'failed', 'stopped', 'cancelled']);

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
  error: string;
  /** Stream sequence of the queued message, so a cancel can delete it. */
  queueSeq: number;
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

/** The message a worker pulls from the trial queue. */
export interface TrialTask {
  /** Format version of this message. */
  v: 1;
  config: TrialConfig;
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
    error: '',
    queueSeq: 0,
    createdAtMs: now,
    updatedAtMs: now,
  };
}
