import type { Trial } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TlsweepClient } from '../client.js';
import { table } from '../format.js';

/** The shape of `tlsweep trial <id> --json` (stable; scripts depend on it). Missing metrics are null. */
export interface TrialView {
  trialId: string;
  sweepId: string;
  status: string;
  error: string;
  /** Every hyperparameter of the trial, as the coordinator stored it. */
  config: Record<string, unknown>;
  backend: string;
  pretrained: boolean;
  weightsSource: string;
  /** The stored full model ('' when none is kept): `tlsweep export <trialId> <dir>` fetches it. */
  modelRef: string;
  worker: string;
  totalParams: number;
  trainableParams: number;
  /** The unfreeze depth as written (`11`, `blocks:2`, `at:block_14_add`) and the backbone layers it resolved to (0 until known). */
  unfreezeLabel: string;
  unfreezeLayers: number;
  /** Recipe early stopping per phase: best epoch, the epoch it stopped after (0: ran all), whether the best weights were restored. */
  earlyStops: Array<{ phase: string; bestEpoch: number; stoppedEpoch: number; restored: boolean }>;
  valAccuracy: number | null;
  valLoss: number | null;
  testAccuracy: number | null;
  testLoss: number | null;
  epochs: number;
  seconds: number;
  phaseSeconds: { features: number; head: number; finetune: number; evaluate: number } | null;
  /** Epochs later attempts took from epoch checkpoints / trained again; images skipped as corrupt. */
  resumedEpochs: number;
  retrainedEpochs: number;
  skippedImages: number;
  history: Array<{
    phase: string; epoch: number; loss: number | null; accuracy: number | null; valLoss: number | null; valAccuracy: number | null; seconds: number;
    /** After the recipe's schedule; null from workers that did not report it. */
    learningRate: number | null;
    trainableLayers: number;
  }>;
  test: {
    count: number;
    accuracy: number | null;
    /** null for 5 classes or fewer. */
    top5Accuracy: number | null;
    perClass: Array<{ name: string; precision: number; recall: number; f1: number; support: number }>;
    /** confusion[true][predicted]; empty above 100 classes. */
    confusion: number[][];
  } | null;
}

const nn = (x: number) => (Number.isFinite(x) ? x : null);

export function toTrialView(t: Trial): TrialView {
  const m = t.testMetrics;
  const k = m?.classes.length ?? 0;
  return {
    trialId: t.trialId,
    sweepId: t.sweepId,
    status: t.status,
    error: t.error,
    config: t.configJson ? (JSON.parse(t.configJson) as Record<string, unknown>) : {},
    backend: t.backend,
    pretrained: t.pretrained,
    weightsSource: t.weightsSource,
    modelRef: t.modelRef,
    worker: t.worker,
    totalParams: t.totalParams,
    trainableParams: t.trainableParams,
    unfreezeLabel: t.unfreezeLabel || String(t.unfreeze),
    unfreezeLayers: t.unfreezeLayers,
    earlyStops: t.earlyStops.map((e) => ({ ...e })),
    valAccuracy: nn(t.valAccuracy),
    valLoss: nn(t.valLoss),
    testAccuracy: nn(t.testAccuracy),
    testLoss: nn(t.testLoss),
    epochs: t.epochs,
    seconds: t.seconds,
    phaseSeconds: t.phaseSeconds ? { ...t.phaseSeconds } : null,
    resumedEpochs: t.resumedEpochs,
    retrainedEpochs: t.retrainedEpochs,
    skippedImages: t.skippedImages,
    history: t.history.map((e) => ({ phase: e.phase, epoch: e.epoch, loss: nn(e.loss), accuracy: nn(e.accuracy), valLoss: nn(e.valLoss), valAccuracy: nn(e.valAccuracy), seconds: e.seconds,
      learningRate: nn(e.learningRate), trainableLayers: e.trainableLayers,
    })),
    test: m
      ? {
          count: m.count,
          accuracy: nn(m.accuracy),
          top5Accuracy: nn(m.top5Accuracy),
          perClass: m.classes.map((c) => ({ ...c })),
          confusion: m.confusion.length === k * k && k > 0 ? Array.from({ length: k }, (_, i) => m.confusion.slice(i * k, (i + 1) * k)) : [],
        }
      : null,
  };
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | null, digits = 4) => (x === null ? '-' : x.toFixed(digits));

// Config keys shown elsewhere (ids) or too long for the summary line.
const HIDDEN_CONFIG = new Set(['trialId', 'sweepId', 'index', 'dataset']);

/** The human-readable report of one trial: config, history summary, test metrics per class, confusion matrix. */
export function formatTrial(v: TrialView): string {
  const out: string[] = [];
  out.push(`trial ${v.trialId} (sweep ${v.sweepId}): ${v.status}${v.error ? ` — ${v.error}` : ''}`);
  const weights = v.pretrained ? `pretrained (${v.weightsSource || 'unknown source'})` : v.weightsSource || 'random init';
  out.push(`backend ${v.backend || '-'}, weights ${weights}, worker ${v.worker || '-'}`);
  out.push(`params ${v.totalParams.toLocaleString('en-US')} total, ${v.trainableParams.toLocaleString('en-US')} trainable`);
  if (v.unfreezeLayers > 0) out.push(`unfreeze ${v.unfreezeLabel}: ${v.unfreezeLayers} backbone layers`);
  if (v.modelRef) out.push(`model kept: \`tlsweep export ${v.trialId} <dir>\``);
  if (v.resumedEpochs > 0 || v.retrainedEpochs > 0) out.push(`recovery: ${v.resumedEpochs} epochs resumed from checkpoints, ${v.retrainedEpochs} retrained`);
  if (v.skippedImages > 0) out.push(`dataset: ${v.skippedImages} corrupt or truncated images skipped`);
  out.push('', 'config:');
  for (const [key, value] of Object.entries(v.config)) {
    if (HIDDEN_CONFIG.has(key) || value === null || value === undefined) continue;
    out.push(`  ${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
  }

  out.push('', `history (${v.epochs} epochs, ${v.seconds.toFixed(1)} s):`);
  if (v.history.length === 0) out.push('  (no epochs reported)');
  else {
    const best = v.history.reduce((b, e) => ((e.valAccuracy ?? -1) > (b.valAccuracy ?? -1) ? e : b));
    out.push(table(
      ['epoch', 'phase', 'loss', 'acc', 'val loss', 'val acc', 's'],
      v.history.map((e) => [String(e.epoch), e.phase, num(e.loss), pct(e.accuracy), num(e.valLoss), pct(e.valAccuracy), e.seconds.toFixed(1)]),
      new Set([0, 2, 3, 4, 5, 6]),
    ).replace(/^/gm, '  '));
    out.push(`  best val accuracy ${pct(best.valAccuracy)} at epoch ${best.epoch}`);
    if (v.history.some((e) => e.learningRate !== null)) {
      out.push(`  learning rate by epoch: ${v.history.map((e) => (e.learningRate === null ? '-' : e.learningRate.toPrecision(3))).join(', ')}`);
    }
    for (const e of v.earlyStops) {
      const stop = e.stoppedEpoch > 0 ? `stopped after epoch ${e.stoppedEpoch}` : 'ran all its epochs';
      out.push(`  early stopping (${e.phase}): best val loss at epoch ${e.bestEpoch}, ${stop}${e.restored ? `, weights of epoch ${e.bestEpoch} restored` : ''}`);
    }
  }
  if (v.phaseSeconds) {
    const p = v.phaseSeconds;
    out.push(`  seconds per phase: features ${p.features.toFixed(1)}, head ${p.head.toFixed(1)}, finetune ${p.finetune.toFixed(1)}, evaluate ${p.evaluate.toFixed(1)}`);
  }

  out.push('', `test: accuracy ${pct(v.testAccuracy)}, loss ${num(v.testLoss)}${v.test?.top5Accuracy != null ? `, top-5 ${pct(v.test.top5Accuracy)}` : ''}${v.test ? ` (${v.test.count} images)` : ''}`);
  if (!v.test) {
    out.push('  (no per-class metrics stored for this trial)');
    return out.join('\n');
  }
  const t = v.test;
  out.push(table(
    ['#', 'class', 'precision', 'recall', 'f1', 'support'],
    t.perClass.map((c, i) => [String(i), c.name, num(c.precision, 3), num(c.recall, 3), num(c.f1, 3), String(c.support)]),
    new Set([0, 2, 3, 4, 5]),
  ).replace(/^/gm, '  '));
  if (t.confusion.length > 0) {
    out.push('', 'confusion matrix (rows: true class #, columns: predicted class #):');
    out.push(table(
      ['', ...t.perClass.map((_, i) => String(i))],
      t.confusion.map((row, i) => [String(i), ...row.map(String)]),
      new Set(t.confusion.map((_, i) => i + 1).concat(0)),
    ).replace(/^/gm, '  '));
  }
  return out.join('\n');
}

/** `tlsweep trial <trialId> [--json]`. */
export async function printTrial(client: TlsweepClient, trialId: string, o: { json?: boolean }, out: (s: string) => void = console.log): Promise<TrialView> {
  const view = toTrialView(await client.getTrial(trialId));
  out(o.json ? JSON.stringify(view, null, 2) : formatTrial(view));
  return view;
}
