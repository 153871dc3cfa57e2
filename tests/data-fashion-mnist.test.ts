import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../services/worker/src/data/errors.js';
import {
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  loadFashionMnistRaw,
  parseIdx,
  readIdxFile,
} from '../services/worker/src/data/fashion-mnist.js';
import { datasetCacheKey, disposeDataset, loadDataset, loadRawDataset, materializeDataset } from '../services/worker/src/data/load-dataset.js';

/** Builds an IDX buffer: magic 00 00 type ndims, big-endian dims, big-endian data. */
function idx(type: number, dims: number[], values: number[]): Buffer {
  const size = { 0x08: 1, 0x0c: 4 }[type as 0x08 | 0x0c];
  const buf = Buffer.alloc(4 + 4 * dims.length + values.length * size);
  buf[2] = type;
  buf[3] = dims.length;
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  const off = 4 + 4 * dims.length;
  values.forEach((v, i) => (size === 1 ? buf.writeUInt8(v, off + i) : buf.writeInt32BE(v, off + 4 * i)));
  return buf;
}

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'tlsweep-idx-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('IDX parsing', () => {
  it('parses uint8 and big-endian int32 IDX buffers', () => {
    const a = parseIdx(idx(0x08, [2, 3], [1, 2, 3, 4, 5, 255]));
    expect(a.dtype).toBe('uint8');
    expect(a.dims).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 255]);
    const b = parseIdx(idx(0x0c, [3], [1, -2, 0x01020304]));
    expect(b.dtype).toBe('int32');
    expect(Array.from(b.data)).toEqual([1, -2, 0x01020304]);
  });

  it('rejects a bad magic, an unknown type and a wrong length', () => {
    const bad = idx(0x08, [2], [1, 2]);
    bad[0] = 1;
    expect(() => parseIdx(bad, 'x.idx')).toThrow(/x\.idx: expected IDX magic/);
    const unk = idx(0x08, [2], [1, 2]);
    unk[2] = 0x07;
    expect(() => parseIdx(unk)).toThrow(/unknown IDX element type 0x07/);
    const short = idx(0x08, [3], [1, 2, 3]).subarray(0, 9);
    try {
      parseIdx(short, 'short.idx');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DatasetError);
      expect((e as DatasetError).code).toBe('DATASET_INVALID');
      expect((e as DatasetError).message).toMatch(/short\.idx: expected 11 bytes .* got 9/);
    }
  });

  it('reads gzipped and uncompressed files alike', async () => {
    const raw = idx(0x08, [2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
    await writeFile(join(dir, 'a.idx.gz'), gzipSync(raw));
    await writeFile(join(dir, 'a.idx'), raw);
    const gz = await readIdxFile(join(dir, 'a.idx.gz'));
    const plain = await readIdxFile(join(dir, 'a.idx'));
    expect(gz.dims).toEqual([2, 2, 2]);
    expect(Array.from(gz.data)).toEqual(Array.from(plain.data));
    await expect(readIdxFile(join(dir, 'nope.gz'))).rejects.toMatchObject({ code: 'DATASET_NOT_FOUND' });
  });
});

describe('Fashion-MNIST loader', () => {
  it('draws perClass images per class from a tiny IDX dataset, labels aligned with pixels', async () => {
    const fm = join(dir, 'tiny-fm');
    await mkdir(fm);
    // 10 classes × 3 images of 4×5; class c has all pixels = 20·c; labels interleaved.
    const n = 30;
    const labels = Array.from({ length: n }, (_, i) => i % 10);
    const pixels = labels.flatMap((c) => Array<number>(20).fill(20 * c));
    await writeFile(join(fm, 'train-images-idx3-ubyte.gz'), gzipSync(idx(0x08, [n, 4, 5], pixels)));
    await writeFile(join(fm, 'train-labels-idx1-ubyte'), idx(0x08, [n], labels)); // uncompressed

    const raw = await loadFashionMnistRaw({ kind: 'fashion-mnist', dir: fm, perClass: 2 });
    expect(raw.images).toHaveLength(20);
    expect(raw.images[0]).toMatchObject({ width: 5, height: 4, channels: 1 });
    raw.images.forEach((im, i) => expect(im.data[0]).toBe(20 * raw.labels[i]));

    const before = tf.memory().numTensors;
    const d = await loadDataset({ kind: 'fashion-mnist', dir: fm, perClass: 3 }, {
      imageSize: [8, 8],
      split: { valFraction: 0.2, testFraction: 0.2, seed: 1 },
    });
    expect(d.classNames).toEqual(FASHION_MNIST_CLASSES);
    for (const part of [d.train, d.val, d.test]) {
      const ys = part.y.arraySync();
      const xs = part.x.arraySync();
      ys.forEach((c, i) => {
        expect(xs[i][3][3][0]).toBeCloseTo((20 * c) / 255, 5);
        expect(xs[i][7][0][2]).toBeCloseTo((20 * c) / 255, 5);
      });
    }
    // 3 per class → 1 / 1 / 1
    expect([d.train.y.shape[0], d.val.y.shape[0], d.test.y.shape[0]]).toEqual([10, 10, 10]);
    disposeDataset(d);
    expect(tf.memory().numTensors).toBe(before);

    await expect(loadFashionMnistRaw({ kind: 'fashion-mnist', dir: fm, perClass: 4 })).rejects.toThrow(
      /dataset\.perClass: expected at most 3/,
    );
  });

  it('test: official uses every official test image, perClass training images and validation from other training images', async () => {
    const fm = join(dir, 'tiny-fm-official');
    await mkdir(fm);
    // Training file: 10 classes × 6 images, pixel value = image number (identifies it); test file: 20 images, values 100 + k.
    const n = 60;
    const labels = Array.from({ length: n }, (_, i) => i % 10);
    await writeFile(join(fm, 'train-images-idx3-ubyte.gz'), gzipSync(idx(0x08, [n, 2, 2], labels.flatMap((_, i) => [i, i, i, i]))));
    await writeFile(join(fm, 'train-labels-idx1-ubyte.gz'), gzipSync(idx(0x08, [n], labels)));
    const testLabels = Array.from({ length: 20 }, (_, k) => (3 * k) % 10);
    await writeFile(join(fm, 't10k-images-idx3-ubyte.gz'), gzipSync(idx(0x08, [20, 2, 2], testLabels.flatMap((_, k) => Array<number>(4).fill(100 + k)))));
    await writeFile(join(fm, 't10k-labels-idx1-ubyte.gz'), gzipSync(idx(0x08, [20], testLabels)));

    const spec = { kind: 'fashion-mnist' as const, dir: fm, perClass: 2, test: 'official' as const };
    const raw = await loadRawDataset(spec);
    expect(raw.source).toContain('t10k-images-idx3-ubyte');
    // valFraction 0.5 → round(2 × 0.5) = 1 validation image per class.
    const d = materializeDataset(raw, { imageSize: [2, 2], split: { valFraction: 0.5, testFraction: 0.3, seed: 5 } });
    const ids = (part: typeof d.train) => Array.from(part.x.dataSync().filter((_, i) => i % 12 === 0), (v) => Math.round(v * 255));
    const [train, val, test] = [ids(d.train), ids(d.val), ids(d.test)];
    expect([train.length, val.length, test.length]).toEqual([20, 10, 20]);
    // Every official test image, with its own label; none of them elsewhere.
    expect([...test].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, k) => 100 + k));
    Array.from(d.test.y.dataSync()).forEach((c, i) => expect(c).toBe(testLabels[test[i] - 100]));
    // Train and val: training-file images of the right class, disjoint, stratified.
    for (const [part, got, per] of [[d.train, train, 2], [d.val, val, 1]] as const) {
      const ys = Array.from(part.y.dataSync());
      got.forEach((id, i) => {
        expect(id).toBeLessThan(n);
        expect(ys[i]).toBe(labels[id]);
      });
      expect(ys.filter((c) => c === 4)).toHaveLength(per);
    }
    expect(new Set([...train, ...val]).size).toBe(30);
    // The training images are exactly those of test: split at the same perClass.
    const splitRaw = await loadFashionMnistRaw({ kind: 'fashion-mnist', dir: fm, perClass: 2 });
    expect(splitRaw.images.map((im) => im.data[0]).sort((a, b) => a - b)).toEqual([...train].sort((a, b) => a - b));
    disposeDataset(d);

    // The cache key tells the two test sources apart; absent and 'split' are one key.
    expect(datasetCacheKey(spec)).not.toBe(datasetCacheKey({ ...spec, test: 'split' }));
    expect(datasetCacheKey({ ...spec, test: 'split' })).toBe(datasetCacheKey({ kind: 'fashion-mnist', dir: fm, perClass: 2 }));

    // perClass 4 of 6: at most 2 images left for validation; round(4 × 0.75) = 3 do not fit.
    const tight = await loadRawDataset({ ...spec, perClass: 4 });
    expect(() => materializeDataset(tight, { imageSize: [2, 2], split: { valFraction: 0.75, testFraction: 0.1, seed: 1 } })).toThrow(
      /dataset\.perClass: .* perClass \(4\) \+ .*split\.valFraction \(3\)/,
    );
    await expect(loadRawDataset({ ...spec, test: 'all' as never })).rejects.toThrow(/dataset\.test: expected 'split' or 'official'/);
  });

  it('reports a missing directory and missing files', async () => {
    const missing = join(dir, 'no-such-dir');
    await expect(loadFashionMnistRaw({ kind: 'fashion-mnist', dir: missing })).rejects.toMatchObject({
      code: 'DATASET_NOT_FOUND',
      message: expect.stringContaining(missing),
    });
    await expect(loadFashionMnistRaw({ kind: 'fashion-mnist', dir })).rejects.toMatchObject({
      code: 'DATASET_NOT_FOUND',
      message: expect.stringContaining('train-images-idx3-ubyte.gz'),
    });
  });

  it.skipIf(!existsSync(DEFAULT_FASHION_MNIST_DIR))('loads the real Fashion-MNIST (perClass 5), stratified', async () => {
    const before = tf.memory().numTensors;
    const opts = { imageSize: [32, 32] as [number, number], split: { valFraction: 0.15, testFraction: 0.15, seed: 7 } };
    const d = await loadDataset({ kind: 'fashion-mnist', perClass: 5 }, opts);
    expect(d.classNames).toHaveLength(10);
    expect(d.skippedImages).toBe(0);
    expect(d.source).toContain('train-images-idx3-ubyte');
    const total = d.train.y.shape[0] + d.val.y.shape[0] + d.test.y.shape[0];
    expect(total).toBe(50);
    expect(d.train.x.shape).toEqual([30, 32, 32, 3]);
    expect(d.val.x.shape).toEqual([10, 32, 32, 3]);
    expect(d.test.x.shape).toEqual([10, 32, 32, 3]);
    expect(d.train.x.dtype).toBe('float32');
    expect(d.train.y.dtype).toBe('int32');
    for (const [part, per] of [[d.train, 3], [d.val, 1], [d.test, 1]] as const) {
      const counts = new Array(10).fill(0);
      for (const c of part.y.dataSync()) counts[c]++;
      expect(counts).toEqual(new Array(10).fill(per)); // all classes, labels in range
      const x = part.x.dataSync();
      let min = Infinity;
      let max = -Infinity;
      for (const v of x) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      expect(min).toBeGreaterThanOrEqual(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max).toBeGreaterThan(0.5);
    }
    // grayscale → 3 identical channels
    const pxT = d.train.x.slice([0, 10, 10, 0], [1, 1, 1, 3]);
    const px = pxT.dataSync();
    pxT.dispose();
    expect(px[0]).toBe(px[1]);
    expect(px[1]).toBe(px[2]);
    // ... at every pixel of every image, not just one.
    const all = d.train.x.dataSync();
    let unequal = 0;
    for (let p = 0; p < all.length; p += 3) if (all[p] !== all[p + 1] || all[p] !== all[p + 2]) unequal++;
    expect(unequal).toBe(0);
    disposeDataset(d);
    expect(tf.memory().numTensors).toBe(before);
  });

  it.skipIf(!existsSync(DEFAULT_FASHION_MNIST_DIR))('loads the real official test set with test: official', async () => {
    const d = await loadDataset({ kind: 'fashion-mnist', perClass: 20, test: 'official' }, {
      imageSize: [4, 4],
      split: { valFraction: 0.25, testFraction: 0.15, seed: 3 },
    });
    expect([d.train.y.shape[0], d.val.y.shape[0], d.test.y.shape[0]]).toEqual([200, 50, 10000]);
    const counts = new Array(10).fill(0);
    for (const c of d.test.y.dataSync()) counts[c]++;
    expect(counts).toEqual(new Array(10).fill(1000)); // the official test set: 1,000 per class
    disposeDataset(d);
  });
});
