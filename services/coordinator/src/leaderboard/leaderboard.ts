import { InvalidArgumentError } from '../errors.js';
import { TRIAL_STATUSES, unfreezeLabelOf, unfreezeLayersOf, type TrialRecord, type TrialStatus } from '../records.js';

/** Metrics the leaderboard sorts and aggregates by. */
export const SORT_METRICS = ['val_accuracy', 'test_accuracy', 'val_loss', 'test_loss', 'seconds', 'epochs', 'learning_rate', 'dropout', 'unfreeze'] as const;
export type SortMetric = (typeof SORT_METRICS)[number];
/** Axes a query can group by. */
export const GROUP_AXES = ['backbone', 'unfreeze', 'learning_rate', 'dropout', 'dataset', 'status'] as const;
export type GroupAxis = (typeof GROUP_AXES)[number];

export interface LeaderboardQueryInput {
  sweepId?: string;
  backbone?: string;
  status?: string;
  /** @default 'val_accuracy' */
  sortBy?: string;
  /** Default: descending for accuracies, ascending for everything else. */
  order?: 'asc' | 'desc';
  /** Rows per page; 0/absent = 50, at most 1000. */
  limit?: number;
  /** Offset token from a previous page. */
  pageToken?: string;
  groupBy?: string;
}

export interface LeaderboardGroupRow {
  key: string;
  count: number;
  /** Rows of the group that have the metric. */
  withMetric: number;
  best: number | null;
  mean: number | null;
  std: number | null;
  bestTrialId: string;
}

export interface LeaderboardResult {
  rows: TrialRecord[];
  total: number;
  nextPageToken: string;
  groups: LeaderboardGroupRow[];
  sortBy: SortMetric;
}

/** The value of a metric for a trial, or null when it has none yet. */
export function metricOf(t: TrialRecord, m: SortMetric): number | null {
  // A diverged trial reports NaN: it has no usable value and sorts with the trials that have none.
  const v = rawMetric(t, m);
  return v !== null && Number.isFinite(v) ? v : null;
}

function rawMetric(t: TrialRecord, m: SortMetric): number | null {
  switch (m) {
    case 'val_accuracy': return t.valAccuracy;
    case 'test_accuracy': return t.testAccuracy;
    case 'val_loss': return t.valLoss;
    case 'test_loss': return t.testLoss;
    case 'seconds': return t.seconds > 0 ? t.seconds : null;
    case 'epochs': return t.epochs;
    case 'learning_rate': return t.config.learningRate;
    case 'dropout': return t.config.dropout;
    case 'unfreeze': return unfreezeLayersOf(t);
  }
}

function axisOf(t: TrialRecord, a: GroupAxis): string {
  switch (a) {
    case 'backbone': return t.config.backbone;
    case 'unfreeze': return unfreezeLabelOf(t);
    case 'learning_rate': return String(t.config.learningRate);
    case 'dropout': return String(t.config.dropout);
    case 'dataset': return t.config.datasetLabel;
    case 'status': return t.status;
  }
}

const higherIsBetter = (m: SortMetric) => m === 'val_accuracy' || m === 'test_accuracy';

/** A validated query: what every leaderboard implementation works from. */
export interface ParsedLeaderboardQuery {
  sortBy: SortMetric;
  desc: boolean;
  limit: number;
  offset: number;
  groupBy: GroupAxis | null;
}

/**
 * Checks a query and fills its defaults.
 * @throws InvalidArgumentError naming the bad field.
 */
export function parseLeaderboardQuery(q: LeaderboardQueryInput): ParsedLeaderboardQuery {
  const sortBy = (q.sortBy || 'val_accuracy') as SortMetric;
  if (!SORT_METRICS.includes(sortBy)) throw bad('sort_by', `must be one of: ${SORT_METRICS.join(', ')}; got ${JSON.stringify(q.sortBy)}`);
  if (q.status && !TRIAL_STATUSES.includes(q.status as TrialStatus)) throw bad('status', `must be one of: ${TRIAL_STATUSES.join(', ')}; got ${JSON.stringify(q.status)}`);
  const groupBy = q.groupBy ? (q.groupBy as GroupAxis) : null;
  if (groupBy && !GROUP_AXES.includes(groupBy)) throw bad('group_by', `must be one of: ${GROUP_AXES.join(', ')}; got ${JSON.stringify(q.groupBy)}`);
  const limit = q.limit && q.limit > 0 ? q.limit : 50;
  if (!Number.isInteger(limit) || limit > 1000) throw bad('limit', `must be an integer in 0..1000; got ${q.limit}`);
  let offset = 0;
  if (q.pageToken) {
    offset = Number(q.pageToken);
    if (!Number.isInteger(offset) || offset < 0) throw bad('page_token', 'not a token from a previous response');
  }
  const desc = q.order ? q.order === 'desc' : higherIsBetter(sortBy);
  return { sortBy, desc, limit, offset, groupBy };
}

/** The leaderboard's order: by the metric (rows without it last whatever the order), ties by sweep id then trial index. */
export function compareTrials(a: TrialRecord, b: TrialRecord, sortBy: SortMetric, desc: boolean): number {
  const x = metricOf(a, sortBy);
  const y = metricOf(b, sortBy);
  if (x === null || y === null) {
    if (x !== y) return x === null ? 1 : -1;
  } else if (x !== y) {
    return desc ? y - x : x - y;
  }
  return a.config.sweepId === b.config.sweepId ? a.config.index - b.config.index : a.config.sweepId < b.config.sweepId ? -1 : 1;
}

/**
 * Filters, sorts, pages and groups trials. Rows without the sort metric come
 * last whatever the order; ties break by trial index so pages are stable.
 * This is the reference implementation (a full sort per call); the
 * coordinator answers from LeaderboardIndex, which returns the same pages.
 * @throws InvalidArgumentError naming the bad field.
 */
export function queryLeaderboard(trials: Iterable<TrialRecord>, q: LeaderboardQueryInput): LeaderboardResult {
  const { sortBy, desc, limit, offset, groupBy } = parseLeaderboardQuery(q);
  const rows: TrialRecord[] = [];
  for (const t of trials) {
    if (q.sweepId && t.config.sweepId !== q.sweepId) continue;
    if (q.backbone && t.config.backbone !== q.backbone) continue;
    if (q.status && t.status !== q.status) continue;
    rows.push(t);
  }
  rows.sort((a, b) => compareTrials(a, b, sortBy, desc));
  const groups = groupBy ? groupRows(rows, groupBy, sortBy, desc) : [];
  const page = rows.slice(offset, offset + limit);
  const next = offset + limit < rows.length ? String(offset + limit) : '';
  return { rows: page, total: rows.length, nextPageToken: next, groups, sortBy };
}

/** Per-group aggregates of rows already in leaderboard order (so a group's first valued row is its best). */
export function groupRows(rows: Iterable<TrialRecord>, groupBy: GroupAxis, sortBy: SortMetric, desc: boolean): LeaderboardGroupRow[] {
  const byKey = new Map<string, TrialRecord[]>();
  for (const t of rows) {
    const k = axisOf(t, groupBy);
    const g = byKey.get(k);
    if (g) g.push(t);
    else byKey.set(k, [t]);
  }
  const groups: LeaderboardGroupRow[] = [];
  for (const [key, members] of byKey) {
    const vals: Array<[number, TrialRecord]> = [];
    for (const t of members) {
      const m = metricOf(t, sortBy);
      if (m !== null) vals.push([m, t]);
    }
    const n = vals.length;
    const mean = n ? vals.reduce((s, [m]) => s + m, 0) / n : null;
    const std = n && mean !== null ? Math.sqrt(vals.reduce((s, [m]) => s + (m - mean) ** 2, 0) / n) : null;
    groups.push({ key, count: members.length, withMetric: n, best: n ? vals[0][0] : null, mean, std, bestTrialId: n ? vals[0][1].config.trialId : '' });
  }
  groups.sort((a, b) => {
    if (a.best === null || b.best === null) return a.best === b.best ? 0 : a.best === null ? 1 : -1;
    return desc ? b.best - a.best : a.best - b.best;
  });
  return groups;
}

function bad(field: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError([{ field, message }], 'invalid leaderboard query');
}
