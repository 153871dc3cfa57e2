import type { TrialCounts } from '../coordinator.js';
import { unfreezeLabelOf, type SweepRecord, type TrialRecord } from '../records.js';
import { unfreezeLabel } from '../../../worker/src/engine/recipe-options.js';
import { redactDeep, redactSecrets } from '../redact.js';

/**
 * What the dashboard's JSON API returns for sweeps and trials: plain objects
 * with finite numbers or null (JSON has no NaN), without the queue internals.
 */
export interface SweepView {
  sweepId: string;
  name: string;
  status: SweepRecord['status'];
  reason: string;
  createdAtMs: number;
  finishedAtMs: number;
  counts: TrialCounts;
  bestTrialId: string;
  bestValAccuracy: number | null;
  axes: { backbones: string[]; unfreeze: string[]; learningRates: unknown[]; dropouts: unknown[] };
}

export interface TrialRowView {
  trialId: string;
  index: number;
  status: TrialRecord['status'];
  backbone: string;
  /** As written in the spec: `11`, `blocks:2`, `at:block_14_add`. */
  unfreeze: string;
  learningRate: number;
  dropout: number;
  dataset: string;
  valAccuracy: number | null;
  testAccuracy: number | null;
  valLoss: number | null;
  testLoss: number | null;
  epochs: number;
  seconds: number;
  pretrained: boolean;
  backend: string;
  worker: string;
  error: string;
  /** Epoch at which the sweep's scheduler stopped the trial; 0 when it did not. */
  stoppedAtEpoch: number;
  /** Epochs taken from checkpoints by later attempts / trained again. */
  resumedEpochs: number;
  retrainedEpochs: number;
  /** Corrupt or truncated images skipped while loading the dataset. */
  skippedImages: number;
}

export interface TrialView extends TrialRowView {
  sweepId: string;
  attempt: number;
  weightsSource: string;
  totalParams: number;
  trainableParams: number;
  cutLayer: string;
  history: TrialRecord['history'];
  config: TrialRecord['config'];
  /** Whatever else the worker stored (metrics, confusion matrix …), passed through as is. */
  extra: Record<string, unknown>;
}

const finite = (v: number | null | undefined): number | null => (v !== null && v !== undefined && Number.isFinite(v) ? v : null);

export function sweepView(s: SweepRecord, counts: TrialCounts, best: TrialRecord | null): SweepView {
  const spec = s.spec as unknown as Record<string, unknown>;
  const list = (k: string): unknown[] => (Array.isArray(spec[k]) ? (spec[k] as unknown[]) : []);
  return {
    sweepId: s.sweepId,
    name: s.spec.name,
    status: s.status,
    reason: redactSecrets(s.reason),
    createdAtMs: s.createdAtMs,
    finishedAtMs: s.finishedAtMs,
    counts,
    bestTrialId: best?.config.trialId ?? '',
    bestValAccuracy: finite(best?.valAccuracy),
    axes: { backbones: s.spec.backbones, unfreeze: s.spec.unfreeze.map((u) => unfreezeLabel(u)), learningRates: list('learningRates'), dropouts: list('dropouts') },
  };
}

export function trialRowView(t: TrialRecord): TrialRowView {
  return {
    trialId: t.config.trialId,
    index: t.config.index,
    status: t.status,
    backbone: t.config.backbone,
    unfreeze: unfreezeLabelOf(t),
    learningRate: t.config.learningRate,
    dropout: t.config.dropout,
    dataset: t.config.datasetLabel,
    valAccuracy: finite(t.valAccuracy),
    testAccuracy: finite(t.testAccuracy),
    valLoss: finite(t.valLoss),
    testLoss: finite(t.testLoss),
    epochs: t.epochs,
    seconds: t.seconds,
    pretrained: t.pretrained,
    backend: t.backend,
    worker: t.worker,
    error: redactSecrets(t.error),
    stoppedAtEpoch: t.earlyStop?.epoch ?? 0,
    resumedEpochs: t.resumedEpochs ?? 0,
    retrainedEpochs: t.retrainedEpochs ?? 0,
    skippedImages: t.skippedImages ?? 0,
  };
}

const ROW_KEYS = new Set<string>(['config', 'status', 'attempt', 'worker', 'backend', 'pretrained', 'weightsSource', 'history', 'valAccuracy',
  'valLoss', 'testAccuracy', 'testLoss', 'epochs', 'seconds', 'totalParams', 'trainableParams', 'cutLayer', 'error', 'queueSeq', 'createdAtMs', 'updatedAtMs', 'resumedEpochs', 'retrainedEpochs', 'skippedImages']);

export function trialView(t: TrialRecord): TrialView {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(t)) if (!ROW_KEYS.has(k)) extra[k] = v;
  return {
    ...trialRowView(t),
    sweepId: t.config.sweepId,
    attempt: t.attempt,
    weightsSource: redactSecrets(t.weightsSource),
    totalParams: t.totalParams,
    trainableParams: t.trainableParams,
    cutLayer: t.cutLayer,
    history: t.history.map((e) => ({ ...e, loss: finite(e.loss) ?? NaN, valLoss: finite(e.valLoss) ?? NaN })),
    // Readers never see credentials in URLs (redact.ts).
    config: redactDeep(t.config),
    extra: redactDeep(extra),
  };
}

/**
 * JSON.stringify that writes non-finite numbers as null (a diverged trial's
 * NaN loss must not break the page's JSON.parse).
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
}
