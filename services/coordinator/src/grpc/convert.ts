import type * as pb from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TrialCounts } from '../coordinator.js';
import { InvalidArgumentError } from '../errors.js';
import type { EpochRecord, SweepRecord, TrialRecord } from '../records.js';

/** Records → wire messages. Absent metrics travel as NaN (proto3 doubles have no null). */
export function trialToPb(t: TrialRecord, withHistory = true): pb.Trial {
  return {
    trialId: t.config.trialId,
    sweepId: t.config.sweepId,
    index: t.config.index,
    backbone: t.config.backbone,
    unfreeze: t.config.unfreeze,
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
    error: t.error,
    history: withHistory ? t.history.map(epochToPb) : [],
    configJson: JSON.stringify(t.config),
    weightsSource: t.weightsSource,
    totalParams: t.totalParams,
    trainableParams: t.trainableParams,
    modelRef: t.modelRef ?? '',
  };
}

export function epochToPb(e: EpochRecord): pb.EpochMetrics {
  return { ...e };
}

export function epochFromPb(e: pb.EpochMetrics | undefined): EpochRecord {
  if (!e) throw new InvalidArgumentError([{ field: 'metrics', message: 'required' }], 'invalid report');
  return {
    phase: e.phase === 'finetune' ? 'finetune' : 'head',
    epoch: e.epoch,
    loss: e.loss,
    accuracy: e.accuracy,
    valLoss: e.valLoss,
    valAccuracy: e.valAccuracy,
    seconds: e.seconds,
  };
}

export function sweepToPb(s: SweepRecord, counts: TrialCounts, best: TrialRecord | null): pb.Sweep {
  return {
    sweepId: s.sweepId,
    name: s.spec.name,
    status: s.status,
    counts,
    specJson: JSON.stringify(s.spec),
    createdAtMs: s.createdAtMs,
    finishedAtMs: s.finishedAtMs,
    bestTrialId: best?.config.trialId ?? '',
    bestValAccuracy: best?.valAccuracy ?? NaN,
    reason: s.reason,
    bestModelRef: best?.modelRef ?? '',
  };
}
