import type * as pb from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TrialCounts } from '../coordinator.js';
import { InvalidArgumentError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import { unfreezeLabelOf, unfreezeLayersOf, type EpochRecord, type SweepRecord, type TrialRecord } from '../records.js';
import type { EarlyStopReport } from '../../../worker/src/engine/early-stopping.js';
import type { ClassificationMetrics } from '../../../worker/src/engine/metrics.js';

/** Records → wire messages. Absent metrics travel as NaN (proto3 doubles have no null). */
export function trialToPb(t: TrialRecord, withHistory = true): pb.Trial {
  return {
    trialId: t.config.trialId,
    sweepId: t.config.sweepId,
    index: t.config.index,
    backbone: t.config.backbone,
    unfreeze: unfreezeLayersOf(t),
    learningRate: t.config.learningRate,
    dropout: t.config.dropout,
    dataset: t.config.datasetLabel,
    status: t.status,
    valAccuracy: t.valAccuracy ?? NaN,
    testAccuracy: t.testAccuracy ?? NaN,
    valLoss: t.valLoss ?? NaN,
    testLoss: t.testLoss ?? NaN,
    epochs: t.epochs,
    seconds: t.seconds,
    attempt: t.attempt,
    worker: t.worker,
    backend: t.backend,
    pretrained: t.pretrained,
    error: redactSecrets(t.error),
    history: withHistory ? t.history.map(epochToPb) : [],
    // Readers see URLs without their credentials (redact.ts); the worker got the full config from the queue.
    configJson: redactSecrets(JSON.stringify(t.config)),
    weightsSource: redactSecrets(t.weightsSource),
    totalParams: t.totalParams,
    trainableParams: t.trainableParams,
    modelRef: t.modelRef ?? '',
    unfreezeLabel: unfreezeLabelOf(t),
    unfreezeLayers: t.unfreezeLayers ?? 0,
    // Records stored before early stopping existed have no list.
    earlyStops: (t.earlyStops ?? []).map((e) => ({ ...e })),
    stopReason: t.earlyStop?.reason ?? '',
    stoppedAtEpoch: t.earlyStop?.epoch ?? 0,
    testMetrics: t.testMetrics ? testMetricsToPb(t.testMetrics) : undefined,
    phaseSeconds: t.phaseSeconds ?? undefined,
    resumedEpochs: t.resumedEpochs ?? 0,
    retrainedEpochs: t.retrainedEpochs ?? 0,
    skippedImages: t.skippedImages ?? 0,
  };
}

/** Above this many classes the confusion matrix (classes² counts) is not stored: it would dominate the trial record. */
export const MAX_CONFUSION_CLASSES = 100;

/** Test metrics → wire: the confusion matrix flattened row-major, top-5 NaN when not applicable. */
export function testMetricsToPb(m: ClassificationMetrics): pb.TrialTestMetrics {
  return {
    count: m.count,
    accuracy: m.accuracy,
    top5Accuracy: m.top5Accuracy ?? NaN,
    classes: m.perClass.map((c) => ({ ...c })),
    confusion: m.perClass.length <= MAX_CONFUSION_CLASSES ? m.confusion.flat() : [],
  };
}

/** Wire → test metrics, checking the confusion matrix's shape. @throws InvalidArgumentError */
export function testMetricsFromPb(m: pb.TrialTestMetrics | undefined): ClassificationMetrics | null {
  if (!m) return null;
  const k = m.classes.length;
  if (m.confusion.length !== 0 && m.confusion.length !== k * k) {
    throw new InvalidArgumentError([{ field: 'test_metrics.confusion', message: `must hold classes² = ${k * k} counts (or none); got ${m.confusion.length}` }], 'invalid report');
  }
  return {
    count: m.count,
    accuracy: m.accuracy,
    top5Accuracy: Number.isNaN(m.top5Accuracy) ? null : m.top5Accuracy,
    perClass: m.classes.map((c) => ({ ...c })),
    confusion: m.confusion.length === 0 ? [] : Array.from({ length: k }, (_, i) => m.confusion.slice(i * k, (i + 1) * k)),
  };
}

export function epochToPb(e: EpochRecord): pb.EpochMetrics {
  return { ...e, learningRate: e.learningRate ?? NaN, trainableLayers: e.trainableLayers ?? 0 };
}

export function earlyStopFromPb(e: pb.EarlyStop): EarlyStopReport {
  return { phase: e.phase === 'finetune' ? 'finetune' : 'head', bestEpoch: e.bestEpoch, stoppedEpoch: e.stoppedEpoch, restored: e.restored };
}

export function epochFromPb(e: pb.EpochMetrics | undefined): EpochRecord {
  if (!e) throw new InvalidArgumentError([{ field: 'metrics', message: 'required' }], 'invalid report');
  const v: { field: string; message: string }[] = [];
  if (e.phase !== '' && e.phase !== 'head' && e.phase !== 'finetune') v.push({ field: 'metrics.phase', message: `must be head or finetune; got ${JSON.stringify(e.phase.slice(0, 40))}` });
  if (!(e.epoch >= 1)) v.push({ field: 'metrics.epoch', message: `must be an integer >= 1 (epochs count from 1); got ${e.epoch}` });
  // Losses and accuracies may be NaN (a diverged trial); time may not.
  if (!Number.isFinite(e.seconds) || e.seconds < 0) v.push({ field: 'metrics.seconds', message: `must be a finite number >= 0; got ${e.seconds}` });
  if (v.length > 0) throw new InvalidArgumentError(v, 'invalid report');
  return {
    phase: e.phase === 'finetune' ? 'finetune' : 'head',
    epoch: e.epoch,
    loss: e.loss,
    accuracy: e.accuracy,
    valLoss: e.valLoss,
    valAccuracy: e.valAccuracy,
    seconds: e.seconds,
    learningRate: e.learningRate,
    trainableLayers: e.trainableLayers,
  };
}

export function sweepToPb(s: SweepRecord, counts: TrialCounts, best: TrialRecord | null): pb.Sweep {
  return {
    sweepId: s.sweepId,
    name: s.spec.name,
    status: s.status,
    counts,
    specJson: redactSecrets(JSON.stringify(s.spec)),
    createdAtMs: s.createdAtMs,
    finishedAtMs: s.finishedAtMs,
    bestTrialId: best?.config.trialId ?? '',
    bestValAccuracy: best?.valAccuracy ?? NaN,
    reason: redactSecrets(s.reason),
    bestModelRef: best?.modelRef ?? '',
  };
}
