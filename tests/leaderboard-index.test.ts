import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { queryLeaderboard, SORT_METRICS, GROUP_AXES, TRIAL_STATUSES, type LeaderboardQueryInput, type TrialRecord, type TrialStatus } from '../services/coordinator/src/index.js';
import { LeaderboardIndex } from '../services/coordinator/src/leaderboard/leaderboard-index.js';
import { SortedList } from '../services/coordinator/src/leaderboard/sorted-list.js';
import { PendingQueue } from '../services/coordinator/src/pending-queue.js';
import { newTrialRecord } from '../services/coordinator/src/records.js';

const SWEEPS = ['sa', 'sb', 'sc'];
const BACKBONES = ['mobilenet_v2', 'tiny_cnn'];
// Few distinct values, so ties (broken by sweep and index) are common.
const METRIC = fc.option(fc.constantFrom(0, 0.25, 0.5, 0.75, 1, NaN), { nil: null });

function trial(i: number, sweepId: string, backbone: string, lr: number): TrialRecord {
  return newTrialRecord({
    trialId: `${sweepId}-t${i}`, sweepId, index: i, backbone, unfreeze: i % 3, learningRate: lr, dropout: 0.1 * (i % 4),
    dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic', imageSize: null, headUnits: 8, headEpochs: 1, fineTuneEpochs: 0,
    fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 },
  }, 0);
}

/** A change the coordinator could make to a trial: a new status and/or new metrics. */
const change = fc.record({
  who: fc.nat(),
  status: fc.option(fc.constantFrom(...TRIAL_STATUSES), { nil: undefined }),
  val: fc.option(METRIC, { nil: undefined }),
  test: fc.option(METRIC, { nil: undefined }),
  seconds: fc.option(fc.constantFrom(0, 1, 2, 3), { nil: undefined }),
  epochs: fc.option(fc.nat(5), { nil: undefined }),
});

const query: fc.Arbitrary<LeaderboardQueryInput> = fc.record({
  sweepId: fc.option(fc.constantFrom(...SWEEPS), { nil: undefined }),
  backbone: fc.option(fc.constantFrom(...BACKBONES, 'none'), { nil: undefined }),
  status: fc.option(fc.constantFrom(...TRIAL_STATUSES), { nil: undefined }),
  sortBy: fc.option(fc.constantFrom(...SORT_METRICS), { nil: undefined }),
  order: fc.option(fc.constantFrom('asc' as const, 'desc' as const), { nil: undefined }),
  limit: fc.option(fc.integer({ min: 1, max: 7 }), { nil: undefined }),
  pageToken: fc.option(fc.integer({ min: 0, max: 12 }).map(String), { nil: undefined }),
  groupBy: fc.option(fc.constantFrom(...GROUP_AXES), { nil: undefined }),
});

const ids = (rows: TrialRecord[]) => rows.map((t) => t.config.trialId);

function recount(trials: TrialRecord[], sweepId?: string): Record<TrialStatus, number> & { total: number } {
  const c = { total: 0, pending: 0, queued: 0, running: 0, completed: 0, failed: 0, stopped: 0, cancelled: 0, diverged: 0 };
  for (const t of trials) if (!sweepId || t.config.sweepId === sweepId) (c.total++, c[t.status]++);
  return c;
}

describe('LeaderboardIndex', () => {
  it('returns the same pages, totals and groups as the full sort, and counts equal a recount, under random changes and queries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ sweep: fc.constantFrom(...SWEEPS), backbone: fc.constantFrom(...BACKBONES), lr: fc.constantFrom(0.1, 0.01, 0.001) }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.oneof(change.map((c) => ({ kind: 'change' as const, c })), query.map((q) => ({ kind: 'query' as const, q }))), { maxLength: 60 }),
        (specs, steps) => {
          const index = new LeaderboardIndex({ maxViews: 4 }); // small: views get evicted and rebuilt
          const perSweep = new Map<string, number>();
          const trials = specs.map((s) => {
            const i = perSweep.get(s.sweep) ?? 0;
            perSweep.set(s.sweep, i + 1);
            return trial(i, s.sweep, s.backbone, s.lr);
          });
          trials.forEach((t) => index.upsert(t));
          for (const step of steps) {
            if (step.kind === 'change') {
              const t = trials[step.c.who % trials.length];
              if (step.c.status !== undefined) t.status = step.c.status;
              if (step.c.val !== undefined) t.valAccuracy = step.c.val;
              if (step.c.test !== undefined) t.testAccuracy = step.c.test;
              if (step.c.seconds !== undefined) t.seconds = step.c.seconds;
              if (step.c.epochs !== undefined) t.epochs = step.c.epochs;
              index.upsert(t);
              continue;
            }
            const want = queryLeaderboard(trials, step.q);
            const got = index.query(step.q);
            expect(ids(got.rows)).toEqual(ids(want.rows));
            expect(got.total).toBe(want.total);
            expect(got.nextPageToken).toBe(want.nextPageToken);
            expect(got.groups).toEqual(want.groups);
          }
          expect(index.statusCounts()).toEqual(recount(trials));
          for (const s of SWEEPS) {
            expect(index.statusCounts(s)).toEqual(recount(trials, s));
            const done = trials.filter((t) => t.config.sweepId === s && (t.status === 'completed' || t.status === 'stopped'));
            const best = queryLeaderboard(done, { sortBy: 'val_accuracy', order: 'desc', limit: 1 }).rows[0];
            expect(index.best(s)?.config.trialId ?? null).toBe(best && best.valAccuracy !== null && Number.isFinite(best.valAccuracy) ? best.config.trialId : null);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('finds the best trial through a sorted view on a large sweep', () => {
    const index = new LeaderboardIndex();
    const trials = Array.from({ length: 600 }, (_, i) => trial(i, 'sa', 'tiny_cnn', 0.01));
    trials.forEach((t, i) => {
      t.status = i % 5 === 0 ? 'running' : 'completed';
      t.valAccuracy = (i % 97) / 100;
      index.upsert(t);
    });
    // 96 is the top value; trial 96 is completed, so it is the best (trial 290 ties later; running ones do not count).
    expect(index.best('sa')?.config.trialId).toBe('sa-t96');
    trials[96].valAccuracy = 0.1;
    index.upsert(trials[96]);
    expect(index.best('sa')?.config.trialId).toBe('sa-t193');
  });
});

describe('SortedList', () => {
  it('stays equal to a sorted array under random inserts and deletes (tiny chunks, so they split and vanish)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 })), { maxLength: 300 }), fc.integer({ min: 0, max: 70 }), (ops, start) => {
        const list = new SortedList<number>((a, b) => a - b, 4);
        const ref = new Set<number>();
        for (const [add, x] of ops) {
          if (add && !ref.has(x)) (list.insert(x), ref.add(x));
          else expect(list.delete(x)).toBe(ref.delete(x));
        }
        const sorted = [...ref].sort((a, b) => a - b);
        expect(list.size).toBe(sorted.length);
        expect([...list.from(0)]).toEqual(sorted);
        expect(list.slice(start, 5)).toEqual(sorted.slice(start, start + 5));
        expect([...SortedList.from(sorted.reverse(), (a, b) => a - b, 4).from(0)]).toEqual([...ref].sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });
});

describe('PendingQueue', () => {
  it('yields pending trials lowest index first, once each, skipping those no longer pending', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(1000), { maxLength: 50 }), fc.array(fc.boolean(), { maxLength: 50 }), (indexes, stillPending) => {
        const q = new PendingQueue();
        const trials = indexes.map((i) => trial(i, 'sa', 'tiny_cnn', 0.01));
        trials.forEach((t) => (q.push(t), q.push(t)));
        trials.forEach((t, k) => (t.status = stillPending[k] === false ? 'cancelled' : 'pending'));
        const out: number[] = [];
        for (let t = q.pop(); t; t = q.pop()) out.push(t.config.index);
        expect(out).toEqual(trials.filter((t) => t.status === 'pending').map((t) => t.config.index).sort((a, b) => a - b));
      }),
    );
  });
});
