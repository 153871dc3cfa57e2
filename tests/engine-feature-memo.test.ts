import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { FeatureMemo, selectBackend, trainTrial, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 13, learningRate: 0.01, dropout: 0.3, headUnits: 16,
  headEpochs: 2, fineTuneEpochs: 1, fineTuneLrFactor: 0.5, batchSize: 16, seed: 3,
};
const go = () => 'CONTINUE' as const;

describe('frozen-prefix feature memo', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it('reuses a key across trials with results identical to computing it again', async () => {
    const data = stripesDataset({ train: 48, val: 16, test: 16, size: 16, seed: 4 });
    const memo = new FeatureMemo(64 * 1024 * 1024);
    const ref = { memo, dataKey: 'stripes-48-16-16' };
    const baseline = tf.memory().numTensors;

    await trainTrial(BASE, data, { onEpoch: go }, { featureMemo: ref });
    expect(memo.stats()).toMatchObject({ entries: 1, hits: 0, misses: 1 });
    const withMemo = await trainTrial({ ...BASE, learningRate: 0.003, dropout: 0.1 }, data, { onEpoch: go }, { featureMemo: ref });
    expect(memo.stats()).toMatchObject({ entries: 1, hits: 1, misses: 1 });
    const alone = await trainTrial({ ...BASE, learningRate: 0.003, dropout: 0.1 }, data, { onEpoch: go });
    expect(withMemo.history.map((h) => [h.loss, h.valAccuracy])).toEqual(alone.history.map((h) => [h.loss, h.valAccuracy]));
    expect(withMemo.testAccuracy).toBe(alone.testAccuracy);

    // A different cut (head only) is a different key.
    await trainTrial({ ...BASE, unfreeze: 0 }, data, { onEpoch: go }, { featureMemo: ref });
    expect(memo.stats()).toMatchObject({ entries: 2, misses: 2 });

    // The memo owns what it holds; clearing frees it all.
    expect(tf.memory().numTensors).toBeGreaterThan(baseline);
    memo.clear();
    expect(tf.memory().numTensors).toBe(baseline);
    disposeData(data);
  });

  it('evicts the least recently used entry past its byte budget, and stores nothing that cannot fit', () => {
    const memo = new FeatureMemo(3 * 3 * 100 * 4);
    const entry = (n: number) => ({ pooled: { train: tf.zeros([n, 100]), val: tf.zeros([n, 100]), test: tf.zeros([n, 100]) }, activations: null });
    const before = tf.memory().numTensors;
    expect(memo.put('a', entry(1))).toBe(true);
    expect(memo.put('b', entry(1))).toBe(true);
    expect(memo.put('c', entry(1))).toBe(true);
    memo.get('a');
    expect(memo.put('d', entry(1))).toBe(true);
    expect(memo.get('b')).toBeUndefined();
    expect(memo.get('a')).toBeDefined();
    const big = entry(4);
    expect(memo.put('e', big)).toBe(false);
    tf.dispose([big.pooled.train, big.pooled.val, big.pooled.test]);
    memo.clear();
    expect(tf.memory().numTensors).toBe(before);
  });
});
