import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError } from '../services/worker/src/data/errors.js';
import { decodeImage, loadImageFolderRaw, loadImageFolderSample } from '../services/worker/src/data/image-folder.js';
import { disposeDataset, loadDataset } from '../services/worker/src/data/load-dataset.js';

const { PNG } = pngjs;

/** RGBA buffer of one solid colour. */
function solid(w: number, h: number, rgba: [number, number, number, number]): Buffer {
  const b = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) b.set(rgba, 4 * i);
  return b;
}

function png(w: number, h: number, rgba: [number, number, number, number], colorType: 0 | 2 | 6 = 6): Buffer {
  const p = new PNG({ width: w, height: h });
  p.data = solid(w, h, rgba);
  return PNG.sync.write(p, { colorType });
}

function jpg(w: number, h: number, rgb: [number, number, number]): Buffer {
  return jpeg.encode({ width: w, height: h, data: solid(w, h, [...rgb, 255]) }, 95).data;
}

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'tlsweep-folder-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('decodeImage', () => {
  it('decodes PNG (alpha dropped, grayscale expanded) and JPEG to RGB', () => {
    const a = decodeImage(png(3, 2, [10, 20, 30, 0]));
    expect(a).toMatchObject({ width: 3, height: 2, channels: 3 });
    expect(Array.from(a.data.subarray(0, 3))).toEqual([10, 20, 30]);
    expect(a.data.length).toBe(18);
    const g = decodeImage(png(2, 2, [77, 77, 77, 255], 0));
    expect(Array.from(g.data.subarray(0, 6))).toEqual([77, 77, 77, 77, 77, 77]);
    const j = decodeImage(jpg(8, 8, [200, 40, 40]));
    expect(j).toMatchObject({ width: 8, height: 8, channels: 3 });
    expect(Math.abs(j.data[0] - 200)).toBeLessThan(8);
    expect(() => decodeImage(Buffer.from('not an image'))).toThrow();
  });
});

describe('image-folder loader', () => {
  it('loads class sub-folders (sorted), skips corrupt files, resizes to [0,1] RGB', async () => {
    const ds = join(root, 'pets');
    // Created out of alphabetical order on purpose.
    for (const c of ['dog', 'bird', 'cat', 'cat/nested', '.hidden']) await mkdir(join(ds, c), { recursive: true });
    for (let i = 0; i < 4; i++) {
      await writeFile(join(ds, 'bird', `b${i}.png`), png(10 + i, 12, [255, 0, 0, 128])); // red, with alpha
      await writeFile(join(ds, 'cat', `c${i}.JPG`), jpg(9, 7 + i, [0, 255, 0])); // green
      await writeFile(join(ds, 'dog', `d${i}.png`), png(7, 7, [128, 128, 128, 255], 0)); // grayscale
    }
    await writeFile(join(ds, 'cat', 'nested', 'c9.jpeg'), jpg(5, 5, [0, 255, 0]));
    await writeFile(join(ds, 'dog', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n definitely not a png'));
    await writeFile(join(ds, 'dog', 'notes.txt'), 'ignored, not counted');
    await writeFile(join(ds, '.hidden', 'x.png'), png(2, 2, [0, 0, 0, 255]));
    await writeFile(join(ds, 'README.md'), 'top-level files are not classes');

    const raw = await loadImageFolderRaw({ kind: 'folder', path: ds });
    expect(raw.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(raw.skippedImages).toBe(1);
    expect(raw.labels.filter((c) => c === 1)).toHaveLength(5); // nested file included

    const before = tf.memory().numTensors;
    const d = await loadDataset({ kind: 'folder', path: ds }, {
      imageSize: [6, 6],
      split: { valFraction: 0.25, testFraction: 0.25, seed: 3 },
    });
    expect(d.skippedImages).toBe(1);
    expect(d.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(d.source).toContain(ds);
    const expected: Record<number, number[]> = { 0: [1, 0, 0], 1: [0, 1, 0], 2: [128 / 255, 128 / 255, 128 / 255] };
    let n = 0;
    for (const part of [d.train, d.val, d.test]) {
      expect(part.x.shape.slice(1)).toEqual([6, 6, 3]);
      const ys = part.y.arraySync();
      const xs = part.x.arraySync();
      n += ys.length;
      ys.forEach((c, i) => {
        const [r, g, b] = xs[i][2][3];
        expect(Math.abs(r - expected[c][0])).toBeLessThan(0.05);
        expect(Math.abs(g - expected[c][1])).toBeLessThan(0.05);
        expect(Math.abs(b - expected[c][2])).toBeLessThan(0.05);
      });
      expect(new Set(ys)).toEqual(new Set([0, 1, 2])); // every class in every split
    }
    expect(n).toBe(13);
    disposeDataset(d);
    expect(tf.memory().numTensors).toBe(before);

    const limited = await loadImageFolderRaw({ kind: 'folder', path: ds, perClass: 2 });
    expect(limited.labels).toEqual([0, 0, 1, 1, 2, 2]);
    const again = await loadImageFolderRaw({ kind: 'folder', path: ds, perClass: 2 });
    expect(again.images.map((im) => [im.width, im.height])).toEqual(limited.images.map((im) => [im.width, im.height]));
  });

  it('reports a missing path as DATASET_NOT_FOUND naming it', async () => {
    const missing = join(root, 'does-not-exist');
    const err = await loadDataset({ kind: 'folder', path: missing }, {
      imageSize: [8, 8],
      split: { valFraction: 0.15, testFraction: 0.15, seed: 0 },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(err).toMatchObject({ code: 'DATASET_NOT_FOUND', retryable: false, name: 'DatasetError' });
    expect((err as Error).message).toBe(`dataset.path: directory ${missing} does not exist`);
    expect((err as Error).cause).toBeDefined();
  });

  it('reports a class without readable images as DATASET_EMPTY_CLASS naming it', async () => {
    const ds = join(root, 'with-empty');
    await mkdir(join(ds, 'cat'), { recursive: true });
    await mkdir(join(ds, 'dog'), { recursive: true });
    await writeFile(join(ds, 'dog', 'd.png'), png(4, 4, [1, 2, 3, 255]));
    await writeFile(join(ds, 'cat', 'bad.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x01]));
    await expect(loadImageFolderRaw({ kind: 'folder', path: ds })).rejects.toMatchObject({
      code: 'DATASET_EMPTY_CLASS',
      message: expect.stringMatching(/class 'cat' has 0 readable images \(1 skipped as corrupt\)/),
    });
  });

  it('rejects a file path, a single class and a bad perClass as DATASET_INVALID', async () => {
    const file = join(root, 'file.txt');
    await writeFile(file, 'x');
    await expect(loadImageFolderRaw({ kind: 'folder', path: file })).rejects.toMatchObject({ code: 'DATASET_INVALID' });
    const one = join(root, 'one-class');
    await mkdir(join(one, 'only'), { recursive: true });
    await expect(loadImageFolderRaw({ kind: 'folder', path: one })).rejects.toMatchObject({
      code: 'DATASET_INVALID',
      message: expect.stringContaining("found 1 ('only')"),
    });
    await expect(loadImageFolderRaw({ kind: 'folder', path: one, perClass: 0 })).rejects.toMatchObject({
      code: 'DATASET_INVALID',
      message: expect.stringContaining('dataset.perClass'),
    });
  });
});

describe('loadImageFolderSample', () => {
  it('decodes just the index-th readable image over the classes in order, wrapping and skipping corrupt files', async () => {
    const ds = join(root, 'sample');
    for (const c of ['b', 'a']) await mkdir(join(ds, c), { recursive: true });
    await writeFile(join(ds, 'a', '0.png'), png(3, 2, [255, 0, 0, 255]));
    await writeFile(join(ds, 'a', '1.png'), Buffer.from('\x89PNG\r\n\x1a\n broken'));
    await writeFile(join(ds, 'b', '0.png'), png(5, 4, [0, 0, 255, 255]));
    const first = await loadImageFolderSample({ kind: 'folder', path: ds }, 0);
    expect([first.label, first.image.width, first.image.height]).toEqual(['a', 3, 2]);
    // Index 1 is the corrupt file: the next readable one is taken.
    expect((await loadImageFolderSample({ kind: 'folder', path: ds }, 1)).label).toBe('b');
    expect((await loadImageFolderSample({ kind: 'folder', path: ds }, 3)).image.width).toBe(3);
    await expect(loadImageFolderSample({ kind: 'folder', path: join(root, 'nope') }, 0)).rejects.toThrow(DatasetError);
  });
});
