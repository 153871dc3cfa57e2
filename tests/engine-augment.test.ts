/**
 * Augmentation: each Keras ImageDataGenerator knob moves pixels as it says
 * (on cpu and wasm), draws are deterministic per seed, the spec is
 * validated, and a trial with augmented passes trains (tiny_cnn, cpu).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { augmentImages, drawTransforms } from '../services/worker/src/engine/augment.js';
import { isIdentityAugmentation, normalizeAugmentation, type AugmentationConfig, type AugmentViolation } from '../services/worker/src/engine/augment-config.js';
import { FeatureMemo } from '../services/worker/src/engine/feature-memo.js';
import { selectBackend, trainTrial, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import { computeTrialFeatures } from '../services/worker/src/engine/trial-features.js';
import { cutForUnfreeze } from '../services/worker/src/engine/clean-cuts.js';
import { disposeData, stripesDataset } from './engine-helpers.js';
import { parseSweepSpec } from '../services/coordinator/src/index.js';

const NONE: AugmentationConfig = { rotation: [0, 0], widthShift: [0, 0], heightShift: [0, 0], horizontalFlip: false, zoom: [1, 1], fillMode: 'nearest', passes: 1 };
const aug = (a: Partial<AugmentationConfig>): AugmentationConfig => ({ ...NONE, ...a });

/** A [1, H, W, 1]-like image (3 channels, equal) whose pixel (y, x) is 10·y + x: every position distinct. */
function ramp(H: number, W: number): tf.Tensor4D {
  const v = new Float32Array(H * W * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) v[(y * W + x) * 3 + c] = 10 * y + x;
  return tf.tensor4d(v, [1, H, W, 3]);
}

/** Channel 0 of image 0 as rows. */
function rows(t: tf.Tensor4D): number[][] {
  const [, H, W] = t.shape;
  const d = t.dataSync();
  return Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => Math.round(d[(y * W + x) * 3] * 1e4) / 1e4));
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`augmentation knobs (${backend})`, () => {
    beforeAll(async () => {
      await tf.setBackend(backend);
      await tf.ready();
    });
    afterAll(async () => {
      await tf.setBackend('cpu');
    });

    it('a horizontal flip mirrors each row', () => {
      const img = ramp(4, 5);
      // With flip on, a draw is a coin toss per image: find an image index that flips.
      const flips = drawTransforms(aug({ horizontalFlip: true }), 8, [4, 5], 7, 0).map((d) => d.flip);
      expect(flips).toContain(true);
      expect(flips).toContain(false);
      const batch = tf.concat(Array(8).fill(img)) as tf.Tensor4D;
      const out = augmentImages(batch, aug({ horizontalFlip: true }), 7);
      const i = flips.indexOf(true);
      const j = flips.indexOf(false);
      const one = (k: number) => rows(out.slice([k, 0, 0, 0], [1, -1, -1, -1]));
      expect(one(i)).toEqual(rows(img).map((r) => [...r].reverse()));
      expect(one(j)).toEqual(rows(img));
      tf.dispose([img, batch, out]);
    });

    it('a shift moves a marker by the expected pixels; nearest fill repeats the edge', () => {
      const v = new Float32Array(8 * 10 * 3);
      const at = (y: number, x: number) => (y * 10 + x) * 3;
      v.fill(1, at(2, 3), at(2, 3) + 3); // marker at (y=2, x=3)
      const img = tf.tensor4d(v, [1, 8, 10, 3]);
      // widthShift 0.2 of 10 px = 2 px right; heightShift 0.25 of 8 px = 2 px down.
      const out = augmentImages(img, aug({ widthShift: [0.2, 0.2], heightShift: [0.25, 0.25] }), 1);
      const r = rows(out);
      expect(r[4][5]).toBe(1);
      expect(r.flat().filter((p) => p !== 0)).toHaveLength(1);
      tf.dispose([img, out]);

      // Shifting the ramp 2 px right: the first two columns repeat the old column 0 (fill nearest).
      const g = ramp(3, 6);
      const shifted = augmentImages(g, aug({ widthShift: [2 / 6, 2 / 6] }), 1);
      expect(rows(shifted)).toEqual([0, 1, 2].map((y) => [0, 0, 0, 1, 2, 3].map((x) => 10 * y + x)));
      tf.dispose([g, shifted]);
    });

    it('rotation with range [90, 90] turns the image a quarter counter-clockwise', () => {
      const img = ramp(5, 5);
      const out = augmentImages(img, aug({ rotation: [90, 90] }), 0);
      const src = rows(img);
      // np.rot90: out[i][j] = in[j][W-1-i]
      expect(rows(out)).toEqual(src.map((_, i) => src.map((_, j) => src[j][4 - i])));
      tf.dispose([img, out]);
    });

    it('zoom in by 2 (Keras factor 0.5) magnifies about the centre', () => {
      const img = ramp(5, 5);
      const out = augmentImages(img, aug({ zoom: [0.5, 0.5] }), 0);
      const r = rows(out);
      expect(r[2][2]).toBe(22); // the centre stays
      expect(r[2][4]).toBe(23); // two pixels right of centre samples one pixel right
      expect(r[0][2]).toBe(12);
      tf.dispose([img, out]);
    });
  });
}

describe('augmentation determinism and config', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  const recipe = aug({ rotation: [-20, 20], widthShift: [-0.1, 0.1], heightShift: [-0.1, 0.1], horizontalFlip: true, zoom: [0.9, 1.1] });

  it('same seed and pass give identical pixels; another seed or pass does not', () => {
    const data = stripesDataset({ train: 6, val: 1, test: 1, size: 12, seed: 2 });
    const px = (seed: number, pass: number) => {
      const t = augmentImages(data.train.x, recipe, seed, pass);
      const d = Float32Array.from(t.dataSync() as Float32Array);
      t.dispose();
      return d;
    };
    const a = px(5, 0);
    expect(px(5, 0)).toEqual(a);
    expect(px(6, 0)).not.toEqual(a);
    expect(px(5, 1)).not.toEqual(a);
    expect(a).not.toEqual(Float32Array.from(data.train.x.dataSync() as Float32Array));
    // Image i's draw does not depend on how many images the pass has.
    expect(drawTransforms(recipe, 3, [12, 12], 5, 0)).toEqual(drawTransforms(recipe, 6, [12, 12], 5, 0).slice(0, 3));
    disposeData(data);
  });

  it('normalizes Keras-style numbers to ranges and names bad fields', () => {
    const v: AugmentViolation[] = [];
    expect(normalizeAugmentation({ rotation: 20, widthShift: 0.1, zoom: 0.2, horizontalFlip: true }, v)).toEqual({
      rotation: [-20, 20], widthShift: [-0.1, 0.1], heightShift: [0, 0], horizontalFlip: true, zoom: [0.8, 1.2], fillMode: 'nearest', passes: 4,
    });
    expect(v).toEqual([]);
    expect(normalizeAugmentation(undefined, v)).toBeNull();
    expect(normalizeAugmentation({ fillMode: 'reflect', passes: 0, rotation: [10, 5], shear: 3 }, v)).toBeNull();
    expect(v.map((e) => e.field).sort()).toEqual(['augmentation.fillMode', 'augmentation.passes', 'augmentation.rotation', 'augmentation.shear']);
    expect(v.find((e) => e.field === 'augmentation.fillMode')!.message).toMatch(/only 'nearest'.*"reflect"/);
    expect(isIdentityAugmentation(normalizeAugmentation({ passes: 3 }, []))).toBe(true);
    // The sweep spec carries it (validated, defaults filled) to every trial; bad knobs are INVALID_ARGUMENT.
    const spec = 'name: a\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0]\n';
    expect(parseSweepSpec(spec).augmentation).toBeNull();
    expect(parseSweepSpec(`${spec}augmentation: {rotation: 10, passes: 2}`).augmentation).toMatchObject({ rotation: [-10, 10], passes: 2 });
    expect(() => parseSweepSpec(`${spec}augmentation: {fillMode: constant}`)).toThrow(/augmentation\.fillMode: only 'nearest'/);
    expect(isIdentityAugmentation(recipe)).toBe(false);
  });
});

describe('a trial with augmented passes (tiny_cnn, cpu)', () => {
  const BASE: TrialHyperparams = {
    backbone: 'tiny_cnn', imageSize: 16, unfreeze: 13, learningRate: 0.01, dropout: 0.1, headUnits: 16,
    headEpochs: 2, fineTuneEpochs: 1, fineTuneLrFactor: 0.5, batchSize: 16, seed: 3,
  };
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it('trains, is reproducible, and augmentation off is exactly today', async () => {
    const data = stripesDataset({ train: 48, val: 16, test: 16, size: 16, seed: 4 });
    const run = async (augmentation?: AugmentationConfig, memo?: FeatureMemo) => {
      const before = tf.memory().numTensors;
      const o = await trainTrial({ ...BASE, augmentation }, data, { onEpoch: () => 'CONTINUE' }, memo ? { featureMemo: { memo, dataKey: 'stripes' } } : {});
      if (!memo) expect(tf.memory().numTensors).toBe(before);
      return o;
    };
    const plain = await run();
    const identity = await run(aug({ passes: 3 }));
    expect(identity.history).toEqual(plain.history.map((h, i) => ({ ...h, seconds: identity.history[i].seconds })));
    const recipe = aug({ rotation: [-15, 15], widthShift: [-0.1, 0.1], horizontalFlip: true, passes: 2 });
    const a = await run(recipe);
    const b = await run(recipe);
    expect(a.epochs).toBe(3);
    expect(a.history.map((h) => h.loss)).toEqual(b.history.map((h) => h.loss));
    expect(a.history.map((h) => h.loss)).not.toEqual(plain.history.map((h) => h.loss));
    expect(Number.isFinite(a.testAccuracy)).toBe(true);
    // The memo key includes the recipe and the pass count: each recipe is its own entry, a repeat hits.
    const memo = new FeatureMemo();
    await run(recipe, memo);
    await run(recipe, memo);
    await run(aug({ ...recipe, passes: 3 }), memo);
    await run(undefined, memo);
    expect(memo.stats()).toMatchObject({ entries: 3, hits: 1, misses: 3 });
    memo.clear();
    disposeData(data);
  }, 60_000);

  it('computes one view per pass for train only; val and test are never augmented', async () => {
    const data = stripesDataset({ train: 20, val: 8, test: 8, size: 16, seed: 5 });
    const backbone = await loadBackbone('tiny_cnn', { imageSize: 16, seed: 1 });
    const owned: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T) => (owned.push(t), t);
    const recipe = aug({ rotation: [-30, 30], horizontalFlip: true, passes: 3 });
    const cut = cutForUnfreeze(backbone.model, 13);
    const plain = await computeTrialFeatures(backbone, data, { batchSize: 8, cut }, keep);
    const augmented = await computeTrialFeatures(backbone, data, { batchSize: 8, cut, augment: { config: recipe, seed: 2 } }, keep);
    const bits = (t: tf.Tensor) => Float32Array.from(t.dataSync() as Float32Array);
    for (const s of ['val', 'test'] as const) {
      expect(bits(augmented.pooled[s])).toEqual(bits(plain.pooled[s]));
      expect(bits(augmented.tail!.activations[s])).toEqual(bits(plain.tail!.activations[s]));
    }
    expect(plain.trainPasses.pooled).toHaveLength(1);
    expect(augmented.trainPasses.pooled).toHaveLength(3);
    expect(augmented.trainPasses.activations).toHaveLength(3);
    const views = augmented.trainPasses.pooled.map(bits);
    expect(views[0]).not.toEqual(bits(plain.pooled.train));
    expect(views[1]).not.toEqual(views[0]);
    expect(views[2]).not.toEqual(views[1]);
    await expect(
      computeTrialFeatures(backbone, data, { batchSize: 8, cut: null, augment: { config: { ...recipe, fillMode: 'wrap' as 'nearest' }, seed: 2 } }, keep),
    ).rejects.toThrow(/fillMode: only 'nearest'/);
    tf.dispose(owned);
    backbone.model.dispose();
    disposeData(data);
  });
});
