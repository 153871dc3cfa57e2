import type { LeaderboardGroup, Sweep, Trial } from '../../../proto/generated/tlsweep/v1/tlsweep.js';
import { toCsv } from './csv.js';
import { statusColor, type Color } from './style.js';
import { renderTable, type Cell, type Column, type TableOptions } from './table.js';

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
  /** Name of the trial's stored full model ('' when none is kept); `tlsweep export <trialId> <dir>` fetches it. */
  modelRef: string;
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
    modelRef: t.modelRef,
    stopReason: t.stopReason,
    stoppedAtEpoch: t.stoppedAtEpoch,
    resumedEpochs: t.resumedEpochs,
    retrainedEpochs: t.retrainedEpochs,
    skippedImages: t.skippedImages,
  };
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);

/** A plain-text table with right-aligned numbers, sized to its content (or fitted with `o.maxWidth`). */
export function table(headers: string[], rows: string[][], rightAligned: Set<number> = new Set(), o: TableOptions = {}): string {
  return renderTable(headers.map((header, i) => ({ header, align: rightAligned.has(i) ? 'right' : 'left' })), rows, o);
}

/** `blocks:2 (19)`: the written depth and, when it was not a layer count, the layers it resolved to. */
function unfreezeCell(r: LeaderboardRow): string {
  return r.unfreezeLabel === String(r.unfreeze) || r.unfreeze === 0 ? r.unfreezeLabel : `${r.unfreezeLabel} (${r.unfreeze})`;
}

const LEADERBOARD_COLUMNS: Column[] = [
  { header: '#', align: 'right' },
  { header: 'trial', minWidth: 10 },
  { header: 'backbone', minWidth: 10 },
  { header: 'unfreeze', align: 'right' },
  { header: 'lr', align: 'right' },
  { header: 'dropout', align: 'right' },
  { header: 'status', shrink: false },
  { header: 'val acc', align: 'right' },
  { header: 'test acc', align: 'right', optional: true },
  { header: 'epochs', align: 'right', optional: true },
  { header: 'seconds', align: 'right', optional: true },
  { header: 'backend', optional: true },
];

/** The leaderboard as a table; the best row is bold-green, statuses coloured when `o.style` paints. */
export function leaderboardTable(rows: LeaderboardRow[], o: TableOptions = {}): string {
  const best = rows.reduce<LeaderboardRow | null>((b, r) => (r.valAccuracy !== null && (b === null || r.valAccuracy > b.valAccuracy!) ? r : b), null);
  return renderTable(
    LEADERBOARD_COLUMNS,
    rows.map((r): Cell[] => [
      String(r.rank), { text: r.trialId, color: r === best ? 'green' : undefined }, r.backbone, unfreezeCell(r), String(r.learningRate), String(r.dropout),
      { text: r.stoppedAtEpoch > 0 ? `${r.status}@${r.stoppedAtEpoch}` : r.status, color: statusColor(r.status) },
      { text: pct(r.valAccuracy), color: r === best ? 'green' : undefined }, pct(r.testAccuracy), String(r.epochs), r.seconds.toFixed(1),
      r.backend + (r.pretrained ? '' : ' (no pretrained weights)'),
    ]),
    o,
  );
}

/** Columns of `tlsweep leaderboard --csv`, in order: every field of LeaderboardRow. */
export const LEADERBOARD_CSV_COLUMNS: ReadonlyArray<keyof LeaderboardRow> = [
  'rank', 'trialId', 'sweepId', 'backbone', 'unfreeze', 'unfreezeLabel', 'learningRate', 'dropout', 'dataset', 'status', 'valAccuracy', 'testAccuracy', 'valLoss',
  'epochs', 'seconds', 'backend', 'pretrained', 'weightsSource', 'worker', 'error', 'stopReason', 'stoppedAtEpoch',
];

/** The leaderboard as RFC 4180 CSV (missing metrics are empty fields). */
export function leaderboardCsv(rows: LeaderboardRow[]): string {
  return toCsv(LEADERBOARD_CSV_COLUMNS, rows.map((r) => LEADERBOARD_CSV_COLUMNS.map((k) => r[k])));
}

export function groupsTable(axis: string, metric: string, groups: LeaderboardGroup[], o: TableOptions = {}): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '-');
  return renderTable(
    [{ header: axis }, { header: 'count', align: 'right' }, { header: `best ${metric}`, align: 'right' }, { header: 'mean', align: 'right' }, { header: 'std', align: 'right' }, { header: 'best trial', optional: true }],
    groups.map((g) => [g.key, String(g.count), f(g.best), f(g.mean), f(g.std), g.bestTrialId]),
    o,
  );
}

/** `tlsweep status` with several sweeps: one row each. */
export function sweepsTable(sweeps: Sweep[], o: TableOptions = {}): string {
  return renderTable(
    [
      { header: 'sweep', minWidth: 10 }, { header: 'name', minWidth: 8 }, { header: 'status', shrink: false }, { header: 'done', align: 'right' },
      { header: 'running', align: 'right' }, { header: 'queued', align: 'right', optional: true }, { header: 'failed', align: 'right' },
      { header: 'best val', align: 'right' }, { header: 'best trial', optional: true }, { header: 'reason', optional: true },
    ],
    sweeps.map((s): Cell[] => {
      const c = s.counts!;
      const failedColor: Color | undefined = c.failed > 0 ? 'red' : undefined;
      return [
        s.sweepId, s.name, { text: s.status, color: statusColor(s.status) }, `${c.completed + c.failed + c.stopped + c.cancelled + (c.diverged ?? 0)}/${c.total}`,
        String(c.running), String(c.queued), { text: String(c.failed), color: failedColor },
        pct(Number.isFinite(s.bestValAccuracy) ? s.bestValAccuracy : null), s.bestTrialId, s.reason,
      ];
    }),
    o,
  );
}

export function sweepLine(s: Sweep): string {
  const c = s.counts!;
  const done = c.completed + c.failed + c.stopped + c.cancelled + (c.diverged ?? 0);
  const model = s.bestModelRef ? `, model kept` : '';
  const best = Number.isFinite(s.bestValAccuracy) ? ` best val ${pct(s.bestValAccuracy)} (${s.bestTrialId}${model})` : '';
  return `${s.sweepId}  ${s.name}  ${s.status}  ${done}/${c.total} done (running ${c.running}, queued ${c.queued}, failed ${c.failed})${best}${s.reason ? `  — ${s.reason}` : ''}`;
}

/** A one-line progress bar: `[#####.....] 5/10`. */
export function progressBar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}
