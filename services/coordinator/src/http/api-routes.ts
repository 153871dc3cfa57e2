import type { Coordinator } from '../coordinator.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { metricOf, SORT_METRICS, type SortMetric } from '../leaderboard/leaderboard.js';
import { unfreezeLabelOf, type TrialRecord } from '../records.js';
import { sweepView, trialRowView, trialView } from './json-views.js';

/** Most trials one `/api/trials?ids=` call returns (learning curves of a selection). */
const MAX_TRIALS_PER_CALL = 20;
/** Default and largest number of points `/points` sends for the scatter and parallel-coordinates plots. */
const DEFAULT_POINTS = 5000;
const MAX_POINTS = 20_000;

function intParam(url: URL, name: string, dflt: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError([{ field: name, message: `must be an integer in ${min}..${max}; got ${JSON.stringify(raw)}` }], 'invalid query');
  }
  return n;
}

function metricParam(url: URL): SortMetric {
  const m = url.searchParams.get('metric') || 'val_accuracy';
  if (!SORT_METRICS.includes(m as SortMetric)) {
    throw new InvalidArgumentError([{ field: 'metric', message: `must be one of: ${SORT_METRICS.join(', ')}; got ${JSON.stringify(m)}` }], 'invalid query');
  }
  return m as SortMetric;
}

/**
 * Trials on the accuracy-vs-time Pareto front: no other trial is both at
 * least as accurate and at least as fast, and strictly better in one.
 */
export function paretoFront(points: ReadonlyArray<{ id: string; accuracy: number; seconds: number }>): string[] {
  const sorted = [...points].sort((a, b) => a.seconds - b.seconds || b.accuracy - a.accuracy);
  const front: string[] = [];
  let best = Number.NEGATIVE_INFINITY;
  for (const p of sorted) {
    if (p.accuracy > best) {
      front.push(p.id);
      best = p.accuracy;
    }
  }
  return front;
}

/** Evenly spaced picks of at most `limit` items, always keeping `keep` (the best trials). */
function sample<T>(items: readonly T[], limit: number, keep: ReadonlySet<T>): T[] {
  if (items.length <= limit) return [...items];
  const out = new Set<T>(keep);
  const step = items.length / Math.max(1, limit - out.size);
  for (let i = 0; out.size < limit && i < items.length; i += step) out.add(items[Math.floor(i)]);
  return [...out];
}

/** Columns of finished trials for the plots; a large sweep is sampled, keeping the best and the Pareto front. */
function points(coordinator: Coordinator, sweepId: string, url: URL) {
  const metric = metricParam(url);
  const limit = intParam(url, 'limit', DEFAULT_POINTS, 1, MAX_POINTS);
  const done: TrialRecord[] = [];
  for (const t of coordinator.trialsOf(sweepId)) if (metricOf(t, metric) !== null) done.push(t);
  const front = new Set(paretoFront(done.filter((t) => t.valAccuracy !== null && t.seconds > 0).map((t) => ({
    id: t.config.trialId, accuracy: t.valAccuracy as number, seconds: t.seconds,
  }))));
  const keep = new Set(done.filter((t) => front.has(t.config.trialId)));
  const rows = sample(done, limit, keep);
  return {
    metric,
    total: done.length,
    sampled: rows.length < done.length,
    paretoTrialIds: [...front],
    trialId: rows.map((t) => t.config.trialId),
    backbone: rows.map((t) => t.config.backbone),
    unfreeze: rows.map(unfreezeLabelOf),
    learningRate: rows.map((t) => t.config.learningRate),
    dropout: rows.map((t) => t.config.dropout),
    status: rows.map((t) => t.status),
    value: rows.map((t) => metricOf(t, metric)),
    valAccuracy: rows.map((t) => t.valAccuracy),
    seconds: rows.map((t) => t.seconds),
  };
}

function sweepOf(coordinator: Coordinator, sweepId: string) {
  const s = coordinator.getSweep(sweepId);
  return sweepView(s, coordinator.counts(sweepId), coordinator.best(sweepId));
}

/**
 * Answers a GET under /api/ from the coordinator's in-memory state.
 * @throws NotFoundError / InvalidArgumentError naming what is wrong.
 */
export function apiRoute(coordinator: Coordinator, url: URL): unknown {
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); // ['api', ...]
  const [, kind, id, sub] = parts;
  if (kind === 'sweeps' && parts.length === 2) {
    return { sweeps: coordinator.listSweeps().map((s) => sweepOf(coordinator, s.sweepId)) };
  }
  if (kind === 'sweeps' && id && parts.length === 3) return sweepOf(coordinator, id);
  if (kind === 'sweeps' && id && sub === 'leaderboard' && parts.length === 4) {
    const limit = intParam(url, 'limit', 50, 1, 1000);
    const offset = intParam(url, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const order = url.searchParams.get('order');
    if (order && order !== 'asc' && order !== 'desc') {
      throw new InvalidArgumentError([{ field: 'order', message: `must be asc or desc; got ${JSON.stringify(order)}` }], 'invalid query');
    }
    const r = coordinator.query({
      sweepId: id,
      sortBy: url.searchParams.get('sortBy') || undefined,
      order: (order as 'asc' | 'desc' | null) ?? undefined,
      groupBy: url.searchParams.get('groupBy') || undefined,
      backbone: url.searchParams.get('backbone') || undefined,
      status: url.searchParams.get('status') || undefined,
      limit,
      pageToken: offset ? String(offset) : undefined,
    });
    return { rows: r.rows.map(trialRowView), total: r.total, offset, sortBy: r.sortBy, groups: r.groups };
  }
  if (kind === 'sweeps' && id && sub === 'points' && parts.length === 4) {
    coordinator.getSweep(id);
    return points(coordinator, id, url);
  }
  if (kind === 'trials' && id && parts.length === 3) return trialView(coordinator.getTrial(id));
  if (kind === 'trials' && parts.length === 2) {
    const ids = (url.searchParams.get('ids') ?? '').split(',').filter(Boolean);
    if (ids.length === 0 || ids.length > MAX_TRIALS_PER_CALL) {
      throw new InvalidArgumentError([{ field: 'ids', message: `must list 1..${MAX_TRIALS_PER_CALL} comma-separated trial ids; got ${ids.length}` }], 'invalid query');
    }
    return { trials: ids.map((t) => trialView(coordinator.getTrial(t))) };
  }
  throw new NotFoundError('api route', url.pathname);
}
