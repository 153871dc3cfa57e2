import * as tf from '@tensorflow/tfjs';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  clearDatasetCache,
  configureDatasetCache,
  datasetCacheKey,
  datasetCacheStats,
  disposeDataset,
  loadDataset,
  loadDatasetCached,
  loadRawDatasetCached,
} from '../services/worker/src/data/load-dataset.js';
import { deriveSeed, mulberry32 } from '../services/worker/src/data/prng.js';
import { splitCounts, stratifiedSplit } from '../services/worker/src/data/split.js';
import { generateSyntheticRaw } from '../services/worker/src/data/synthetic.js';
import type { DatasetSpec } from '../services/worker/src/data/dataset-spec.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('prng', () => {
  it('mulberry32 is deterministic and in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed(1, 'b'));
  });
});

describe('stratified split', () => {
  const labels = [...Array(20).fill(0), ...Array(7).fill(1), ...Array(3).fill(2), 3, 3];
  const opts = { valFraction: 0.15, testFraction: 0.15, seed: 5 };

  it('splits per class, at least one per split for classes with >= 3 images', () => {
    const s = stratifiedSplit(labels, 4, opts);
    const count = (idx: number[], c: number) => idx.filter((i) => labels[i] === c).length;
    expect([0, 1, 2, 3].map((c) => count(s.train, c))).toEqual([14, 5, 1, 2]);
    expect([0, 1, 2, 3].map((c) => count(s.val, c))).toEqual([3, 1, 1, 0]);
    expect([0, 1, 2, 3].map((c) => count(s.test, c))).toEqual([3, 1, 1, 0]);
    const all = [...s.train, ...s.val, ...s.test].sort((a, b) => a - b);
    expect(all).toEqual(labels.map((_, i) => i)); // a partition
  });

  it('same seed → same split; different seed → different split', () => {
    expect(stratifiedSplit(labels, 4, opts)).toEqual(stratifiedSplit(labels, 4, opts));
    expect(stratifiedSplit(labels, 4, { ...opts, seed: 6 })).not.toEqual(stratifiedSplit(labels, 4, opts));
  });

  it('splitCounts edge cases', () => {
    expect(splitCounts(3, 0.15, 0.15)).toEqual({ train: 1, val: 1, test: 1 });
    expect(splitCounts(2, 0.15, 0.15)).toEqual({ train: 2, val: 0, test: 0 });
    expect(splitCounts(10, 0, 0.2)).toEqual({ train: 8, val: 0, test: 2 });
    expect(splitCounts(3, 0.6, 0.3)).toEqual({ train: 1, val: 1, test: 1 });
  });

  it('rejects bad fractions naming the field', () => {
    expect(() => stratifiedSplit(labels, 4, { ...opts, valFraction: 1.2 })).toThrow(/split\.valFraction/);
    expect(() => stratifiedSplit(labels, 4, { valFraction: 0.5, testFraction: 0.5, seed: 1 })).toThrow(/< 1/);
  });
});

describe('synthetic dataset', () => {
  it('is deterministic from the seed', () => {
    const a = generateSyntheticRaw({ kind: 'synthetic', classes: 3, perClass: 4, seed: 1 });
    const b = generateSyntheticRaw({ kind: 'synthetic', classes: 3, perClass: 4, seed: 1 });
    const c = generateSyntheticRaw({ kind: 'synthetic', classes: 3, perClass: 4, seed: 2 });
    expect(a.images.map((i) => Array.from(i.data))).toEqual(b.images.map((i) => Array.from(i.data)));
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(c.images[0].data))).toBe(false);
    expect(a.classNames).toEqual(['class_0', 'class_1', 'class_2']);
    expect(a.labels).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('classes differ and are separable (nearest class mean on held-out images)', async () => {
    const before = tf.memory().numTensors;
    const d = await loadDataset({ kind: 'synthetic', classes: 4, perClass: 30, seed: 0 }, {
      imageSize: [16, 16],
      split: { valFraction: 0.15, testFraction: 0.3, seed: 0 },
    });
    expect(d.train.x.shape).toEqual([64, 16, 16, 3]);
    expect(d.test.x.shape).toEqual([36, 16, 16, 3]);
    const { dist, acc } = tf.tidy(() => {
      const x = d.train.x.reshape([64, -1]);
      const oneHot = tf.oneHot(d.train.y, 4).toFloat(); // [n, 4]
      const means = oneHot.transpose().matMul(x).div(oneHot.sum(0).expandDims(1)); // [4, D]
      // smallest pairwise distance between class means
      let minDist = Infinity;
      const m = means.arraySync() as number[][];
      for (let i = 0; i < 4; i++)
        for (let j = i + 1; j < 4; j++)
          minDist = Math.min(minDist, Math.hypot(...m[i].map((v, k) => v - m[j][k])));
      const t = d.test.x.reshape([36, -1]);
      const d2 = t.square().sum(1, true).sub(t.matMul(means.transpose()).mul(2)).add(means.square().sum(1));
      const pred = d2.argMin(1);
      const correct = pred.equal(d.test.y).sum().arraySync() as number;
      return { dist: minDist, acc: correct / 36 };
    });
    expect(dist).toBeGreaterThan(1);
    expect(acc).toBeGreaterThan(0.8);
    disposeDataset(d);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad fields naming them', () => {
    expect(() => generateSyntheticRaw({ kind: 'synthetic', classes: 1 })).toThrow(/dataset\.classes: expected an integer in 2\.\.1000, got 1/);
    expect(() => generateSyntheticRaw({ kind: 'synthetic', perClass: 1.5 })).toThrow(/dataset\.perClass/);
  });
});

describe('loadDataset / loadDatasetCached', () => {
  beforeEach(() => {
    clearDatasetCache();
    configureDatasetCache({ maxEntries: 3, maxBytes: 1024 ** 3 });
  });

  it('rejects an unknown kind and a bad imageSize', async () => {
    const split = { valFraction: 0.15, testFraction: 0.15, seed: 0 };
    await expect(loadDataset({ kind: 'mnist' } as unknown as DatasetSpec, { imageSize: [8, 8], split })).rejects.toMatchObject({
      code: 'DATASET_INVALID',
      message: expect.stringContaining('dataset.kind'),
    });
    await expect(
      loadDataset({ kind: 'synthetic' }, { imageSize: [0, 8] as [number, number], split }),
    ).rejects.toThrow(/imageSize/);
  });

  it('caches raw images by a stable key, creates fresh tensors per call, no leaks', async () => {
    expect(datasetCacheKey({ kind: 'synthetic' })).toBe(datasetCacheKey({ seed: 0, perClass: 40, kind: 'synthetic', classes: 3 }));
    const before = tf.memory().numTensors;
    const spec: DatasetSpec = { kind: 'synthetic', classes: 2, perClass: 10, seed: 9 };
    const opts = { imageSize: [12, 12] as [number, number], split: { valFraction: 0.2, testFraction: 0.2, seed: 1 } };
    const r1 = await loadRawDatasetCached(spec);
    const r2 = await loadRawDatasetCached({ seed: 9, perClass: 10, classes: 2, kind: 'synthetic' });
    expect(r2).toBe(r1);
    expect(datasetCacheStats().entries).toBe(1);

    const a = await loadDatasetCached(spec, opts);
    const b = await loadDatasetCached(spec, opts);
    expect(a.train.x).not.toBe(b.train.x);
    expect(a.train.x.arraySync()).toEqual(b.train.x.arraySync());
    const plain = await loadDataset(spec, opts);
    expect(plain.test.y.arraySync()).toEqual(a.test.y.arraySync());
    disposeDataset(a);
    disposeDataset(b);
    disposeDataset(plain);
    disposeDataset(plain); // idempotent
    expect(tf.memory().numTensors).toBe(before);

    for (let s = 0; s < 4; s++) await loadRawDatasetCached({ kind: 'synthetic', perClass: 2, seed: s });
    expect(datasetCacheStats().entries).toBe(3); // LRU bound
    configureDatasetCache({ maxBytes: 0 });
    expect(datasetCacheStats().entries).toBe(0);
  });

  it('does not cache failures', async () => {
    await expect(loadRawDatasetCached({ kind: 'folder', path: '/nonexistent/tlsweep' })).rejects.toMatchObject({
      code: 'DATASET_NOT_FOUND',
    });
    expect(datasetCacheStats().entries).toBe(0);
  });
});
