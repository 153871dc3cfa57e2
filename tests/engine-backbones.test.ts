/**
 * Backbone registry: MobileNetV2 from nsfwjs (offline), tiny_cnn, input-size
 * validation.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backboneInputSize,
  EngineConfigError,
  KNOWN_BACKBONES,
  loadBackbone,
  selectBackend,
} from '../services/worker/src/engine/index.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('backboneInputSize', () => {
  it('defaults per backbone and accepts sizes above the minimum', () => {
    expect(KNOWN_BACKBONES).toEqual(expect.arrayContaining(['mobilenet_v2', 'tiny_cnn', 'vgg16', 'resnet50', 'mobilenet', 'densenet121', 'inception_v3', 'efficientnet_b0', 'nasnet_mobile']));
    expect(backboneInputSize('mobilenet_v2')).toEqual([96, 96]);
    expect(backboneInputSize('mobilenet_v2', 160)).toEqual([160, 160]);
    expect(backboneInputSize('tiny_cnn')).toEqual([32, 32]);
    expect(backboneInputSize('tiny_cnn', 16)).toEqual([16, 16]);
  });

  it('names the known backbones for an unknown one', () => {
    expect(() => backboneInputSize('alexnet')).toThrow(EngineConfigError);
    expect(() => backboneInputSize('alexnet')).toThrow(/unknown backbone 'alexnet'; known backbones: mobilenet_v2, tiny_cnn/);
    expect(() => backboneInputSize('constructor')).toThrow(/unknown backbone/);
  });

  it('rejects sizes below the minimum or not integers', () => {
    expect(() => backboneInputSize('mobilenet_v2', 31)).toThrow(/imageSize for backbone 'mobilenet_v2' must be an integer >= 32; got 31/);
    expect(() => backboneInputSize('tiny_cnn', 15)).toThrow(/>= 16/);
    expect(() => backboneInputSize('tiny_cnn', 20.5)).toThrow(EngineConfigError);
  });
});

describe('mobilenet_v2 from nsfwjs', () => {
  it('loads at 96 px without its head: 3x3x1280 out_relu features, 2.26 M parameters', async () => {
    const b = await loadBackbone('mobilenet_v2', {});
    try {
      expect(b.name).toBe('mobilenet_v2');
      expect(b.pretrained).toBe(true);
      expect(b.weightsSource).toMatch(/^nsfwjs@4\.3\.0 mobilenet_v2/);
      expect(b.inputSize).toEqual([96, 96]);
      expect(b.model.layers.at(-1)?.name).toBe('out_relu');
      expect(b.model.countParams()).toBe(2_257_984);
      const y = tf.tidy(() => b.model.predict(b.preprocess(tf.fill([1, 96, 96, 3], 0.5) as tf.Tensor4D)) as tf.Tensor);
      expect(y.shape).toEqual([1, 3, 3, 1280]);
      // Pretrained ReLU6 features: non-negative, bounded, not all zero.
      const [min, max] = [y.min().dataSync()[0], y.max().dataSync()[0]];
      expect(min).toBeGreaterThanOrEqual(0);
      expect(max).toBeGreaterThan(0);
      expect(max).toBeLessThanOrEqual(6);
      y.dispose();
    } finally {
      b.model.dispose();
    }
  });

  it('hands every caller fresh weights, and reloads at odd sizes with Keras padding', async () => {
    const a = await loadBackbone('mobilenet_v2', { imageSize: 96 });
    const b = await loadBackbone('mobilenet_v2', { imageSize: 100 });
    try {
      const kernelA = a.model.getLayer('Conv_1').getWeights()[0];
      const kernelB = b.model.getLayer('Conv_1').getWeights()[0];
      expect(tf.tidy(() => tf.max(tf.abs(tf.sub(kernelA, kernelB))).dataSync()[0])).toBe(0);
      // Mutating one model's weights leaves the other's alone.
      a.model.getLayer('Conv_1').setWeights([tf.zerosLike(kernelA)]);
      expect(tf.tidy(() => tf.max(tf.abs(b.model.getLayer('Conv_1').getWeights()[0])).dataSync()[0])).toBeGreaterThan(0);
      // 100 → 50 → 25 (odd) → 13 → 7 → 4: ZeroPadding2D becomes ((1,1),(1,1)) at odd sizes.
      expect(b.model.outputs[0].shape).toEqual([null, 4, 4, 1280]);
      expect(b.model.getLayer('block_3_pad').getConfig().padding).toEqual([
        [1, 1],
        [1, 1],
      ]);
      expect(b.model.getLayer('Conv1_pad').getConfig().padding).toEqual([
        [0, 1],
        [0, 1],
      ]);
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
  });
});

describe('tiny_cnn', () => {
  it('is a seeded, random-init MobileNetV2 in miniature', async () => {
    const [a, b, c] = await Promise.all([
      loadBackbone('tiny_cnn', { seed: 7 }),
      loadBackbone('tiny_cnn', { seed: 7 }),
      loadBackbone('tiny_cnn', { seed: 8 }),
    ]);
    try {
      expect(a.pretrained).toBe(false);
      expect(a.weightsSource).toBe('random init (seed 7)');
      expect(a.model.outputs[0].shape).toEqual([null, 8, 8, 32]);
      const names = a.model.layers.map((l) => l.name);
      expect(names).toContain('block_1_add');
      expect(names.at(-1)).toBe('out_relu');
      expect(a.model.getLayer('block_1_add').getClassName()).toBe('Add');
      const w = (m: tf.LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));
      expect(w(a.model)).toEqual(w(b.model));
      expect(w(a.model)).not.toEqual(w(c.model));
    } finally {
      [a, b, c].forEach((x) => x.model.dispose());
    }
  });

  it('rejects a bad seed', async () => {
    await expect(loadBackbone('tiny_cnn', { seed: -1 })).rejects.toThrow(/seed must be a non-negative integer/);
  });
});
