import type { LeaderboardGroup, Sweep } from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import type { TlsweepClient } from '../client.js';
import { toRow, type LeaderboardRow } from '../format.js';
import { plainStyle } from '../style.js';
import { renderTable, type Cell, type TableOptions } from '../table.js';

/** The hyperparameter axes compared value by value. */
export const COMPARE_AXES = ['backbone', 'unfreeze', 'learning_rate', 'dropout'] as const;

/** Metrics `compare` can rank by (the leaderboard sort metrics a row carries). */
export const COMPARE_METRICS = ['val_accuracy', 'test_accuracy', 'val_loss', 'seconds', 'epochs'] as const;

/** Metrics where a smaller value wins; the rest (accuracies) are bigger-is-better. */
const LOWER_IS_BETTER = new Set(['val_loss', 'test_loss', 'seconds', 'epochs']);

export interface CompareOptions {
  /** The leaderboard metric compared. @default 'val_accuracy' */
  metric?: string;
}

/** One side's numbers for one axis value; null when that sweep has no trial with the metric there. */
export interface AxisSide {
  count: number;
  best: number | null;
  mean: number | null;
  bestTrialId: string;
}

/** The shape of `tlsweep compare A B --json` (stable; scripts depend on it). */
export interface CompareView {
  metric: string;
  higherIsBetter: boolean;
  sweeps: Array<{ sweepId: string; name: string; status: string; total: number; finished: number; best: LeaderboardRow | null }>;
  /** The sweep whose best trial is better; null when neither has the metric or they tie. */
  winner: string | null;
  /** |best A − best B| of the metric; null when one side has none. */
  margin: number | null;
  /** Per axis, the values present in both sweeps. */
  axes: Array<{ axis: string; values: Array<{ key: string; a: AxisSide; b: AxisSide; /** B − A of the best values. */ deltaBest: number | null }> }>;
}

const fin = (x: number) => (Number.isFinite(x) ? x : null);
const side = (g: LeaderboardGroup): AxisSide => ({ count: g.count, best: fin(g.best), mean: fin(g.mean), bestTrialId: g.bestTrialId });

/** Fetches both sweeps' best trials and per-axis groups and puts them side by side. */
export async function compareSweeps(client: TlsweepClient, a: string, b: string, o: CompareOptions = {}): Promise<CompareView> {
  const metric = o.metric ?? 'val_accuracy';
  if (!(COMPARE_METRICS as readonly string[]).includes(metric)) throw new Error(`--sort-by: compare ranks by one of ${COMPARE_METRICS.join(', ')}; got ${JSON.stringify(metric)}`);
  const higherIsBetter = !LOWER_IS_BETTER.has(metric);
  const sweeps: Sweep[] = await Promise.all([client.get(a), client.get(b)]);
  const best = await Promise.all([a, b].map(async (id) => {
    const r = await client.query({ sweepId: id, sortBy: metric, limit: 1 });
    const top = r.rows[0];
    // The best row has the metric unless no trial has it yet (rows without it sort last).
    return top && metricValue(toRow(top, 1), metric) !== null ? toRow(top, 1) : null;
  }));
  const va = best[0] ? metricValue(best[0], metric) : null;
  const vb = best[1] ? metricValue(best[1], metric) : null;
  let winner: string | null = null;
  if (va !== null && vb !== null && va !== vb) winner = (va > vb) === higherIsBetter ? a : b;
  else if (va !== null && vb === null) winner = a;
  else if (vb !== null && va === null) winner = b;

  const axes: CompareView['axes'] = [];
  for (const axis of COMPARE_AXES) {
    const [ga, gb] = await Promise.all([a, b].map((id) => client.query({ sweepId: id, sortBy: metric, groupBy: axis, limit: 1 }).then((r) => r.groups)));
    const byKey = new Map(gb.map((g) => [g.key, g]));
    const values = ga.filter((g) => byKey.has(g.key)).map((g) => {
      const sa = side(g);
      const sb = side(byKey.get(g.key)!);
      return { key: g.key, a: sa, b: sb, deltaBest: sa.best !== null && sb.best !== null ? sb.best - sa.best : null };
    });
    if (values.length > 0) axes.push({ axis, values: values.sort((x, y) => compareKeys(x.key, y.key)) });
  }
  return {
    metric,
    higherIsBetter,
    sweeps: sweeps.map((s, i) => ({
      sweepId: s.sweepId, name: s.name, status: s.status, total: s.counts!.total,
      finished: s.counts!.completed + s.counts!.failed + s.counts!.stopped + s.counts!.cancelled + (s.counts!.diverged ?? 0), best: best[i],
    })),
    winner,
    margin: va !== null && vb !== null ? Math.abs(va - vb) : null,
    axes,
  };
}

// Numeric axis values (learning rates) in numeric order, names alphabetically.
function compareKeys(x: string, y: string): number {
  const nx = Number(x);
  const ny = Number(y);
  return Number.isFinite(nx) && Number.isFinite(ny) ? nx - ny : x.localeCompare(y);
}

/** The metric of a leaderboard row, by its leaderboard name. */
export function metricValue(r: LeaderboardRow, metric: string): number | null {
  switch (metric) {
    case 'val_accuracy': return r.valAccuracy;
    case 'test_accuracy': return r.testAccuracy;
    case 'val_loss': return r.valLoss;
    case 'seconds': return r.seconds > 0 ? r.seconds : null;
    case 'epochs': return r.epochs;
    default: return null;
  }
}

const isAccuracy = (m: string) => m.endsWith('accuracy');

/** The human-readable comparison. */
export function formatCompare(v: CompareView, o: TableOptions = {}): string {
  const style = o.style ?? plainStyle;
  const fmt = (x: number | null) => (x === null ? '-' : isAccuracy(v.metric) ? `${(x * 100).toFixed(1)}%` : x.toFixed(4));
  const delta = (x: number | null) => (x === null ? '-' : isAccuracy(v.metric) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} pt` : `${x >= 0 ? '+' : ''}${x.toFixed(4)}`);
  const [A, B] = v.sweeps;
  const out: string[] = [];
  out.push(`comparing by ${v.metric} (${v.higherIsBetter ? 'higher' : 'lower'} is better)`);
  out.push(renderTable(
    [{ header: '' }, { header: `A ${A.sweepId}`, minWidth: 12 }, { header: `B ${B.sweepId}`, minWidth: 12 }],
    [
      ['name', A.name, B.name],
      ['status', { text: A.status }, { text: B.status }],
      ['trials done', `${A.finished}/${A.total}`, `${B.finished}/${B.total}`],
      [`best ${v.metric}`, best(A.best), best(B.best)],
      ['best trial', A.best?.trialId ?? '-', B.best?.trialId ?? '-'],
      ['its config', A.best ? cfg(A.best) : '-', B.best ? cfg(B.best) : '-'],
    ],
    o,
  ));
  if (v.winner) {
    const w = v.winner === A.sweepId ? 'A' : 'B';
    out.push(style.paint('bold', `${w} (${v.winner}) wins by ${v.margin === null ? 'default (the other has no result)' : delta(v.margin).replace(/^\+/, '')} of ${v.metric}`));
  } else {
    out.push(v.margin === 0 ? 'a tie' : 'no winner yet: neither sweep has a result');
  }
  for (const ax of v.axes) {
    out.push('', `${ax.axis} (values in both sweeps):`);
    out.push(renderTable(
      [
        { header: ax.axis }, { header: 'A n', align: 'right' }, { header: 'A best', align: 'right' }, { header: 'A mean', align: 'right' },
        { header: 'B n', align: 'right' }, { header: 'B best', align: 'right' }, { header: 'B mean', align: 'right' }, { header: 'B−A best', align: 'right' },
      ],
      ax.values.map((x): Cell[] => {
        const better = x.deltaBest === null || x.deltaBest === 0 ? undefined : (x.deltaBest > 0) === v.higherIsBetter ? 'green' : 'red';
        return [x.key, String(x.a.count), fmt(x.a.best), fmt(x.a.mean), String(x.b.count), fmt(x.b.best), fmt(x.b.mean), { text: delta(x.deltaBest), color: better }];
      }),
      o,
    ).replace(/^/gm, '  '));
  }
  if (v.axes.length === 0) out.push('', 'the sweeps share no axis value');
  return out.join('\n');

  function best(r: LeaderboardRow | null): string {
    return r ? fmt(metricValue(r, v.metric)) : '-';
  }
  function cfg(r: LeaderboardRow): string {
    return `${r.backbone} unfreeze=${r.unfreeze} lr=${r.learningRate} dropout=${r.dropout}`;
  }
}

/** `tlsweep compare <sweepA> <sweepB> [--sort-by METRIC] [--json]`. */
export async function printCompare(client: TlsweepClient, a: string, b: string, o: CompareOptions & { json?: boolean; table?: TableOptions }, out: (s: string) => void = console.log): Promise<CompareView> {
  const view = await compareSweeps(client, a, b, o);
  out(o.json ? JSON.stringify(view, null, 2) : formatCompare(view, o.table));
  return view;
}
