/** One finished trial of any contender, in the bench's terms. */
export interface BenchTrial {
  unfreeze: number;
  learningRate: number;
  dropout: number;
  /** completed | stopped | failed | … (torch trials are always completed). */
  status: string;
  valAccuracy: number;
  valLoss: number;
  testAccuracy: number;
  epochs: number;
  seconds: number;
  /** Trainable parameters in the last phase run (head included). */
  trainableParams: number;
  /** Wall seconds per engine phase (features, head, finetune, evaluate); tlsweep trials only. */
  phaseSeconds?: Record<string, number>;
}

/** A contender's run: its wall time and its trials. */
export interface ContenderRun {
  wallSeconds: number;
  trials: BenchTrial[];
}

/** What the last line says about a contender. */
export interface ContenderSummary {
  wallSeconds: number;
  /** Test accuracy of the trial with the best validation accuracy (ties: lower val loss, then the first listed). */
  bestTestAccuracy: number | null;
  bestValAccuracy: number | null;
  best: { unfreeze: number; learningRate: number; dropout: number; status: string } | null;
  /** The highest test accuracy of any trial (not a fair selection; for reference). */
  maxTestAccuracy: number | null;
  trials: number;
  byStatus: Record<string, number>;
  /** Epochs trained over all trials (early stopping shows here). */
  epochs: number;
  /** Trial-seconds per engine phase summed over trials (where the time went; absent for torch). */
  phaseSeconds?: Record<string, number>;
}

const usable = (t: BenchTrial) => (t.status === 'completed' || t.status === 'stopped') && Number.isFinite(t.valAccuracy);

/** Model selection as a user would do it: by validation accuracy, then reports that model's test accuracy. */
export function summarize(run: ContenderRun): ContenderSummary {
  const ok = run.trials.filter(usable);
  const best = ok.reduce<BenchTrial | null>((b, t) => {
    if (!b) return t;
    if (t.valAccuracy !== b.valAccuracy) return t.valAccuracy > b.valAccuracy ? t : b;
    return t.valLoss < b.valLoss ? t : b;
  }, null);
  const byStatus: Record<string, number> = {};
  for (const t of run.trials) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
  return {
    wallSeconds: round(run.wallSeconds, 1),
    bestTestAccuracy: best ? round(best.testAccuracy, 4) : null,
    bestValAccuracy: best ? round(best.valAccuracy, 4) : null,
    best: best ? { unfreeze: best.unfreeze, learningRate: best.learningRate, dropout: best.dropout, status: best.status } : null,
    maxTestAccuracy: ok.length ? round(Math.max(...ok.map((t) => t.testAccuracy)), 4) : null,
    trials: run.trials.length,
    byStatus,
    epochs: run.trials.reduce((n, t) => n + t.epochs, 0),
    ...(run.trials.some((t) => t.phaseSeconds) ? { phaseSeconds: sumPhases(run.trials) } : {}),
  };
}

function sumPhases(trials: readonly BenchTrial[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of trials) for (const [k, v] of Object.entries(t.phaseSeconds ?? {})) out[k] = (out[k] ?? 0) + v;
  for (const k of Object.keys(out)) out[k] = round(out[k], 1);
  return out;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Trainable parameters per unfreeze depth (first trial of each depth): the
 * same numbers in tlsweep and torch show that both train the same layers.
 */
export function trainableByDepth(run: ContenderRun): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of run.trials) if (t.status !== 'failed' && !(String(t.unfreeze) in out)) out[String(t.unfreeze)] = t.trainableParams;
  return out;
}
