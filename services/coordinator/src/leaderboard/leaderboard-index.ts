import { TRIAL_STATUSES, type TrialRecord, type TrialStatus } from '../records.js';
import {
  groupRows,
  metricOf,
  parseLeaderboardQuery,
  type LeaderboardQueryInput,
  type LeaderboardResult,
  type SortMetric,
} from './leaderboard.js';
import { SortedList } from './sorted-list.js';

export interface LeaderboardIndexOptions {
  /** Sorted views kept at once (one per scope × metric × order asked for); the least recently used is dropped. @default 64 */
  maxViews?: number;
}

/** A trial's place in one sorted view: the key it was inserted with, since the record itself changes in place. */
interface Entry {
  /** The metric, negated for descending views; null sorts last. */
  v: number | null;
  sweepId: string;
  index: number;
  trial: TrialRecord;
}

interface View {
  scope: string;
  sortBy: SortMetric;
  desc: boolean;
  list: SortedList<Entry>;
  entries: Map<string, Entry>;
}

/** What the index last saw of a trial: counters and filters use this, not the live record (which runs ahead of KV during a write). */
interface Seen {
  status: TrialStatus;
  backbone: string;
}

/** The all-sweeps scope; sweep ids are lowercase letters and digits, so no sweep is called this. */
const ALL = '*';
export type StatusCounts = Record<TrialStatus, number>;

const cmp = (a: Entry, b: Entry): number => {
  if (a.v === null || b.v === null) {
    if (a.v !== b.v) return a.v === null ? 1 : -1;
  } else if (a.v !== b.v) {
    return a.v - b.v;
  }
  return a.sweepId === b.sweepId ? a.index - b.index : a.sweepId < b.sweepId ? -1 : 1;
};

/**
 * The coordinator's incremental view of its trials: per-sweep status
 * counters, filter counts, and sorted views per (scope, metric, order) for
 * leaderboard pages. A view is built on first use (one sort) and then kept
 * up to date by `upsert`, which moves only the trials whose key changed
 * (O(log n + chunk) each), so a top-k page at 100k trials reads k rows
 * instead of sorting everything. `upsert` is called after every durable
 * change of a trial; pages equal queryLeaderboard's over the same records.
 */
export class LeaderboardIndex {
  private readonly scopes = new Map<string, Map<string, TrialRecord>>();
  private readonly seen = new Map<string, Seen>();
  /** `${scope}|s:${status}`, `${scope}|b:${backbone}`, `${scope}|bs:${backbone}|${status}` → trials. */
  private readonly filterCounts = new Map<string, number>();
  /** Insertion order = recency (a used view is moved to the end). */
  private readonly views = new Map<string, View>();
  private readonly maxViews: number;

  constructor(opts: LeaderboardIndexOptions = {}) {
    this.maxViews = opts.maxViews ?? 64;
  }

  /** Records a trial's current state (new or changed). */
  upsert(t: TrialRecord): void {
    const id = t.config.trialId;
    const sweepId = t.config.sweepId;
    const before = this.seen.get(id);
    this.scope(ALL).set(id, t);
    this.scope(sweepId).set(id, t);
    if (!before) {
      this.seen.set(id, { status: t.status, backbone: t.config.backbone });
      this.count(sweepId, t.config.backbone, t.status, 1);
    } else if (before.status !== t.status) {
      this.count(sweepId, before.backbone, before.status, -1);
      this.count(sweepId, before.backbone, t.status, 1);
      before.status = t.status;
    }
    for (const view of this.views.values()) {
      if (view.scope !== ALL && view.scope !== sweepId) continue;
      const old = view.entries.get(id);
      const v = keyOf(t, view.sortBy, view.desc);
      if (old && old.v === v && old.trial === t) continue;
      if (old) view.list.delete(old);
      const e: Entry = { v, sweepId, index: t.config.index, trial: t };
      view.list.insert(e);
      view.entries.set(id, e);
    }
  }

  /** Trials of a sweep (or of all sweeps without one) by status, as last upserted. */
  statusCounts(sweepId?: string): StatusCounts & { total: number } {
    const scope = sweepId ?? ALL;
    const c = { total: this.scopes.get(scope)?.size ?? 0 } as StatusCounts & { total: number };
    for (const s of TRIAL_STATUSES) c[s] = this.filterCounts.get(`${scope}|s:${s}`) ?? 0;
    return c;
  }

  /** The sweep's completed or stopped trial with the highest validation accuracy (ties: lowest index). */
  best(sweepId: string): TrialRecord | null {
    const members = this.scopes.get(sweepId);
    if (!members) return null;
    // Small sweeps are scanned: listing many sweeps must not push the busy views out of the cache.
    if (members.size <= 256 && !this.views.has(`${sweepId}|val_accuracy|desc`)) {
      let best: Entry | null = null;
      for (const t of members.values()) {
        const s = this.seen.get(t.config.trialId)!.status;
        if (s !== 'completed' && s !== 'stopped') continue;
        const e: Entry = { v: keyOf(t, 'val_accuracy', true), sweepId, index: t.config.index, trial: t };
        if (e.v !== null && (!best || cmp(e, best) < 0)) best = e;
      }
      return best?.trial ?? null;
    }
    for (const e of this.view(sweepId, 'val_accuracy', true).list.from(0)) {
      if (e.v === null) return null;
      const s = this.seen.get(e.trial.config.trialId)!.status;
      if (s === 'completed' || s === 'stopped') return e.trial;
    }
    return null;
  }

  /** Same contract and result as queryLeaderboard over the upserted trials. @throws InvalidArgumentError */
  query(q: LeaderboardQueryInput): LeaderboardResult {
    const { sortBy, desc, limit, offset, groupBy } = parseLeaderboardQuery(q);
    const scope = q.sweepId || ALL;
    const view = this.view(scope, sortBy, desc);
    const filtered = Boolean(q.backbone || q.status);
    const total = !filtered
      ? view.list.size
      : (this.filterCounts.get(q.backbone && q.status ? `${scope}|bs:${q.backbone}|${q.status}` : q.backbone ? `${scope}|b:${q.backbone}` : `${scope}|s:${q.status}`) ?? 0);
    const match = (e: Entry) => {
      if (q.backbone && e.trial.config.backbone !== q.backbone) return false;
      return !q.status || this.seen.get(e.trial.config.trialId)!.status === q.status;
    };
    let rows: TrialRecord[];
    if (!filtered) {
      rows = view.list.slice(offset, limit).map((e) => e.trial);
    } else {
      // Walk the view, skipping rows the filters drop: cheap per row, and it stops once the page is full.
      rows = [];
      let skip = offset;
      for (const e of view.list.from(0)) {
        if (!match(e)) continue;
        if (skip > 0) {
          skip--;
          continue;
        }
        rows.push(e.trial);
        if (rows.length >= limit) break;
      }
    }
    const groups = groupBy ? groupRows(filterIter(view.list.from(0), match, filtered), groupBy, sortBy, desc) : [];
    const next = offset + limit < total ? String(offset + limit) : '';
    return { rows, total, nextPageToken: next, groups, sortBy };
  }

  private scope(key: string): Map<string, TrialRecord> {
    let m = this.scopes.get(key);
    if (!m) this.scopes.set(key, (m = new Map()));
    return m;
  }

  private count(sweepId: string, backbone: string, status: TrialStatus, d: number): void {
    for (const scope of [ALL, sweepId]) {
      for (const k of [`${scope}|s:${status}`, `${scope}|b:${backbone}`, `${scope}|bs:${backbone}|${status}`]) {
        // Backbone counts change only on insert: a status move adds and removes the same key.
        this.filterCounts.set(k, (this.filterCounts.get(k) ?? 0) + d);
      }
    }
  }

  /** The sorted view, built on first use; marks it most recently used and drops the least recent past the cap. */
  private view(scope: string, sortBy: SortMetric, desc: boolean): View {
    const key = `${scope}|${sortBy}|${desc ? 'desc' : 'asc'}`;
    let view = this.views.get(key);
    if (view) {
      this.views.delete(key);
      this.views.set(key, view);
      return view;
    }
    const entries = new Map<string, Entry>();
    for (const [id, t] of this.scopes.get(scope) ?? []) entries.set(id, { v: keyOf(t, sortBy, desc), sweepId: t.config.sweepId, index: t.config.index, trial: t });
    view = { scope, sortBy, desc, list: SortedList.from([...entries.values()], cmp), entries };
    this.views.set(key, view);
    if (this.views.size > this.maxViews) this.views.delete(this.views.keys().next().value!);
    return view;
  }
}

function keyOf(t: TrialRecord, sortBy: SortMetric, desc: boolean): number | null {
  const v = metricOf(t, sortBy);
  return v === null ? null : desc ? -v : v;
}

function* filterIter(entries: Iterable<Entry>, match: (e: Entry) => boolean, filtered: boolean): IterableIterator<TrialRecord> {
  for (const e of entries) if (!filtered || match(e)) yield e.trial;
}
