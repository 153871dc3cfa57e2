import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, queryLeaderboard, type TrialRecord } from '../services/coordinator/src/index.js';
import { newTrialRecord } from '../services/coordinator/src/records.js';
import { trialToPb } from '../services/coordinator/src/grpc/convert.js';
import { Trial } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { formatTrial, toTrialView } from '../services/sweeper/src/commands/trial.js';

function trial(i: number, o: { sweep?: string; backbone?: string; lr?: number; val?: number | null; test?: number | null; status?: TrialRecord['status']; seconds?: number }): TrialRecord {
  const t = newTrialRecord({
    trialId: `t${i}`, sweepId: o.sweep ?? 's1', index: i, backbone: o.backbone ?? 'mobilenet_v2', unfreeze: 0,
    learningRate: o.lr ?? 0.001, dropout: 0.2, dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic:3x40', imageSize: null,
    headUnits: 8, headEpochs: 1, fineTuneEpochs: 0, fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 },
  }, 0);
  t.valAccuracy = o.val === undefined ? null : o.val;
  t.testAccuracy = o.test === undefined ? null : o.test;
  t.status = o.status ?? (t.valAccuracy === null ? 'pending' : 'completed');
  t.seconds = o.seconds ?? 0;
  return t;
}

const trials = [
  trial(0, { val: 0.7, test: 0.68, lr: 0.001, seconds: 10 }),
  trial(1, { val: 0.9, test: 0.85, lr: 0.01, seconds: 30 }),
  trial(2, { val: null }),
  trial(3, { val: 0.8, test: 0.8, lr: 0.01, backbone: 'tiny_cnn', seconds: 5 }),
  trial(4, { val: 0.6, sweep: 's2' }),
  trial(5, { val: null, status: 'failed' }),
];

describe('leaderboard query', () => {
  it('sorts by validation accuracy, best first, trials without a metric last', () => {
    const r = queryLeaderboard(trials, {});
    expect(r.rows.map((t) => t.config.trialId)).toEqual(['t1', 't3', 't0', 't4', 't2', 't5']);
    expect(r.total).toBe(6);
  });

  it('sorts ascending by seconds and descending when asked', () => {
    expect(queryLeaderboard(trials, { sortBy: 'seconds', sweepId: 's1' }).rows.map((t) => t.config.trialId).slice(0, 3)).toEqual(['t3', 't0', 't1']);
    expect(queryLeaderboard(trials, { sortBy: 'test_accuracy', order: 'asc' }).rows[0].config.trialId).toBe('t0');
  });

  it('filters by sweep, backbone and status', () => {
    expect(queryLeaderboard(trials, { sweepId: 's2' }).rows.map((t) => t.config.trialId)).toEqual(['t4']);
    expect(queryLeaderboard(trials, { backbone: 'tiny_cnn' }).rows.map((t) => t.config.trialId)).toEqual(['t3']);
    expect(queryLeaderboard(trials, { status: 'failed' }).rows.map((t) => t.config.trialId)).toEqual(['t5']);
  });

  it('pages with a token until the end', () => {
    const p1 = queryLeaderboard(trials, { limit: 4 });
    expect(p1.rows).toHaveLength(4);
    const p2 = queryLeaderboard(trials, { limit: 4, pageToken: p1.nextPageToken });
    expect(p2.rows.map((t) => t.config.trialId)).toEqual(['t2', 't5']);
    expect(p2.nextPageToken).toBe('');
  });

  it('groups by an axis with count, best, mean and std of the metric', () => {
    const r = queryLeaderboard(trials, { sweepId: 's1', groupBy: 'learning_rate' });
    const g = Object.fromEntries(r.groups.map((x) => [x.key, x]));
    expect(g['0.01']).toMatchObject({ count: 2, withMetric: 2, best: 0.9, bestTrialId: 't1' });
    expect(g['0.01'].mean).toBeCloseTo(0.85, 10);
    expect(g['0.01'].std).toBeCloseTo(0.05, 10);
    expect(g['0.001']).toMatchObject({ count: 3, withMetric: 1, best: 0.7, std: 0 });
    expect(r.groups[0].key).toBe('0.01');
  });

  it('rejects unknown sort metrics, statuses and axes, naming the field', () => {
    for (const [q, field] of [[{ sortBy: 'f1' }, 'sort_by'], [{ status: 'done' }, 'status'], [{ groupBy: 'colour' }, 'group_by'], [{ limit: 5000 }, 'limit'], [{ pageToken: 'x' }, 'page_token']] as const) {
      try {
        queryLeaderboard(trials, q);
        throw new Error('accepted');
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field).toBe(field);
      }
    }
  });

  it('treats a NaN metric (a diverged trial) as missing, so sorting stays total', () => {
    const withNaN = [trial(10, { val: 0.5 }), trial(11, { val: NaN }), trial(12, { val: 0.9 }), trial(13, { val: 0.7 })];
    expect(queryLeaderboard(withNaN, {}).rows.map((t) => t.config.trialId)).toEqual(['t12', 't13', 't10', 't11']);
  });

  it('groups by the unfreeze depth as written and sorts by the layers it resolved to', () => {
    const mk = (i: number, unfreeze: TrialRecord['config']['unfreeze'], layers: number, val: number) => {
      const t = trial(i, { val });
      t.config = { ...t.config, unfreeze };
      t.unfreezeLayers = layers;
      return t;
    };
    const ts = [mk(0, 11, 11, 0.7), mk(1, { blocks: 2 }, 19, 0.8), mk(2, { blocks: 2 }, 19, 0.6), mk(3, { fineTuneAt: 'block_14_add' }, 29, 0.5)];
    const groups = queryLeaderboard(ts, { groupBy: 'unfreeze' }).groups.map((g) => [g.key, g.count]);
    expect(groups.sort()).toEqual([['11', 1], ['at:block_14_add', 1], ['blocks:2', 2]]);
    expect(queryLeaderboard(ts, { sortBy: 'unfreeze', order: 'desc' }).rows.map((t) => t.config.trialId)).toEqual(['t3', 't1', 't2', 't0']);
    expect(trialToPb(ts[1])).toMatchObject({ unfreeze: 19, unfreezeLabel: 'blocks:2', unfreezeLayers: 19, earlyStops: [] });
    expect(trialToPb(ts[0])).toMatchObject({ unfreeze: 11, unfreezeLabel: '11' });
  });

  it('tlsweep trial shows the resolved depth, each epoch’s learning rate and what early stopping did', () => {
    const t = trial(7, { val: 0.8 });
    t.config = { ...t.config, unfreeze: { blocks: 2 } };
    t.unfreezeLayers = 19;
    t.earlyStops = [{ phase: 'head', bestEpoch: 2, stoppedEpoch: 3, restored: true }];
    t.history = [1, 2, 3].map((epoch) => ({ phase: 'head' as const, epoch, loss: 1, accuracy: 0.5, valLoss: 1, valAccuracy: 0.5, seconds: 1, learningRate: 0.01 / epoch, trainableLayers: 0 }));
    const view = toTrialView(Trial.fromPartial(trialToPb(t)));
    expect(view).toMatchObject({ unfreezeLabel: 'blocks:2', unfreezeLayers: 19, earlyStops: t.earlyStops });
    const text = formatTrial(view);
    expect(text).toContain('unfreeze blocks:2: 19 backbone layers');
    expect(text).toContain('learning rate by epoch: 0.0100, 0.00500, 0.00333');
    expect(text).toContain('early stopping (head): best val loss at epoch 2, stopped after epoch 3, weights of epoch 2 restored');
  });
});

