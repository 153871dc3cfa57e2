import type { LeaderboardGroup, Sweep, Trial } from '../../../proto/generated/tlsweep/v1/tlsweep.js';

/** The row shape of `tlsweep leaderboard --json` (stable; scripts depend on it). */
export interface LeaderboardRow {
  rank: number;
  trialId: string;
  sweepId: string;
  backbone: string;
  /** Backbone layers fine-tuned: the count written, or what `unfreezeLabel` resolved to (0 until known). */
  unfreeze: number;
  /** The depth as written: `11`, `blocks:2`, `at:block_14_add`. */
  unfreezeLabel: string;
  /** Epoch (1-based over both phases) whose weights early stopping restored, per phase; empty when off. */
  restoredEpochs: number[];
  learningRate: number;
  dropout: number;
  dataset: string;
  status: string;
  valAccuracy: number | null;
  testAccuracy: number | null;
  valLoss: number | null;
  epochs: number;
  seconds: number;
  backend: string;
  pretrained: boolean;
  weightsSource: string;
  worker: string;
  error: string;
  /** Why the scheduler stopped the trial early; '' when it did not. */
  stopReason: string;
  /** The epoch at which the scheduler stopped it; 0 when it did not. */
  stoppedAtEpoch: number;
  /** Epochs later attempts took from checkpoints / trained again; images skipped as corrupt. */
  resumedEpochs: number;
  retrainedEpochs: number;
  skippedImages: number;
}

const nn = (x: number) => (Number.isFinite(x) ? x : null);

export function toRow(t: Trial, rank: number): LeaderboardRow {
  return {
    rank,
    trialId: t.trialId,
    sweepId: t.sweepId,
    backbone: t.backbone,
    unfreeze: t.unfreeze,
    unfreezeLabel: t.unfreezeLabel || String(t.unfreeze),
    restoredEpochs: t.earlyStops.filter((e) => e.restored).map((e) => e.bestEpoch),
    learningRate: t.learningRate,
    dropout: t.dropout,
    dataset: t.dataset,
    status: t.status,
    valAccuracy: nn(t.valAccuracy),
    testAccuracy: nn(t.testAccuracy),
    valLoss: nn(t.valLoss),
    epochs: t.epochs,
    seconds: Math.round(t.seconds * 10) / 10,
    backend: t.backend,
    pretrained: t.pretrained,
    weightsSource: t.weightsSource,
    worker: t.worker,
    error: t.error,
    stopReason: t.stopReason,
    stoppedAtEpoch: t.stoppedAtEpoch,
    resumedEpochs: t.resumedEpochs,
    retrainedEpochs: t.retrainedEpochs,
    skippedImages: t.skippedImages,
  };
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);

/** A plain-text table with right-aligned numbers, sized to its content. */
export function table(headers: string[], rows: string[][], rightAligned: Set<number> = new Set()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** `blocks:2 (19)`: the written depth and, when it was not a layer count, the layers it resolved to. */
function unfreezeCell(r: LeaderboardRow): string {
  return r.unfreezeLabel === String(r.unfreeze) || r.unfreeze === 0 ? r.unfreezeLabel : `${r.unfreezeLabel} (${r.unfreeze})`;
}

export function leaderboardTable(rows: LeaderboardRow[]): string {
  return table(
    ['#', 'trial', 'backbone', 'unfreeze', 'lr', 'dropout', 'status', 'val acc', 'test acc', 'epochs', 'seconds', 'backend'],
    rows.map((r) => [
      String(r.rank), r.trialId, r.backbone, unfreezeCell(r), String(r.learningRate), String(r.dropout), r.stoppedAtEpoch > 0 ? `${r.status}@${r.stoppedAtEpoch}` : r.status,
      pct(r.valAccuracy), pct(r.testAccuracy), String(r.epochs), r.seconds.toFixed(1), r.backend + (r.pretrained ? '' : ' (no pretrained weights)'),
    ]),
    new Set([0, 3, 4, 5, 7, 8, 9, 10]),
  );
}

export function groupsTable(axis: string, metric: string, groups: LeaderboardGroup[]): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '-');
  return table(
    [axis, 'count', `best ${metric}`, 'mean', 'std', 'best trial'],
    groups.map((g) => [g.key, String(g.count), f(g.best), f(g.mean), f(g.std), g.bestTrialId]),
    new Set([1, 2, 3, 4]),
  );
}

export function sweepLine(s: Sweep): string {
  const c = s.counts!;
  const done = c.completed + c.failed + c.stopped + c.cancelled;
  const best = Number.isFinite(s.bestValAccuracy) ? ` best val ${pct(s.bestValAccuracy)} (${s.bestTrialId})` : '';
  return `${s.sweepId}  ${s.name}  ${s.status}  ${done}/${c.total} done (running ${c.running}, queued ${c.queued}, failed ${c.failed})${best}${s.reason ? `  — ${s.reason}` : ''}`;
}

/** A one-line progress bar: `[#####.....] 5/10`. */
export function progressBar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}
