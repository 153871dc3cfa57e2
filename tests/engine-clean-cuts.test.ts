/**
 * Clean cut points, and the tail model re-applied from one: the cached
 * prefix + tail must reproduce the whole backbone.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backbone } from '../services/worker/src/engine/index.js';
import {
  buildPrefixModel,
  buildTailModel,
  cleanCutIndices,
  cutForUnfreeze,
  loadBackbone,
  releaseLayers,
  selectBackend,
} from '../services/worker/src/engine/index.js';

function cutNames(model: tf.LayersModel): string[] {
  return cleanCutIndices(model).map((i) => model.layers[i].name);
}

/** max |full(x) - tail(prefix(x))| for a cut at layer `name`. */
function tailError(backbone: Backbone, name: string, x: tf.Tensor4D): number {
  const cut = backbone.model.layers.findIndex((l) => l.name === name);
  const tail = buildTailModel(backbone.model, cut);
  const diff = tf.tidy(() => {
    const full = backbone.model.predict(x) as tf.Tensor;
    const viaTail = tail.predict(buildPrefixModel(backbone.model, cut).predict(x) as tf.Tensor) as tf.Tensor;
    expect(viaTail.shape).toEqual(full.shape);
    return tf.max(tf.abs(tf.sub(full, viaTail))).dataSync()[0];
  });
  // The tail's layers are the backbone's; release only the extra applications.
  tail.layers.forEach((l) => l.getClassName() !== 'InputLayer' && l.dispose());
  return diff;
}

describe('tiny_cnn', () => {
  let b: Backbone;
  beforeAll(async () => {
    await selectBackend('cpu');
    b = await loadBackbone('tiny_cnn', { imageSize: 16, seed: 2 });
  });
  afterAll(() => releaseLayers(b.model.layers));

  it('has clean cuts everywhere except inside the residual block', () => {
    const names = b.model.layers.map((l) => l.name);
    const inside = names.slice(names.indexOf('block_1_expand'), names.indexOf('block_1_add'));
    expect(inside).toHaveLength(8);
    expect(cutNames(b.model)).toEqual(names.filter((n) => !inside.includes(n)));
  });

  it('cuts below the first trainable layer', () => {
    const L = b.model.layers.length;
    expect(L).toBe(24);
    expect(b.model.layers[cutForUnfreeze(b.model, 0)].name).toBe('out_relu');
    expect(b.model.layers[cutForUnfreeze(b.model, 3)].name).toBe('block_2_project_BN');
    // First trainable is block_1_project_BN (index 11): the residual forces the cut back to Conv1_relu.
    expect(b.model.layers[cutForUnfreeze(b.model, 13)].name).toBe('Conv1_relu');
    expect(b.model.layers[cutForUnfreeze(b.model, 23)].name).toBe('input_1');
    expect(() => cutForUnfreeze(b.model, 24)).toThrow(/unfreeze must be an integer in \[0, 23\]/);
  });

  it('reproduces the full output from a cut across the residual Add', () => {
    const x = tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    expect(tailError(b, 'Conv1_relu', x)).toBeLessThan(1e-5);
    expect(tailError(b, 'block_1_add', x)).toBeLessThan(1e-5);
    x.dispose();
  });

  it('refuses a cut that is not clean', () => {
    const cut = b.model.layers.findIndex((l) => l.name === 'block_1_expand');
    expect(() => buildTailModel(b.model, cut)).toThrow(/'block_1_expand' is not a clean cut: 'block_1_add' reads/);
  });
});

describe('mobilenet_v2', () => {
  let b: Backbone;
  beforeAll(async () => {
    await selectBackend('cpu');
    b = await loadBackbone('mobilenet_v2', { imageSize: 96 });
  });
  afterAll(() => releaseLayers(b.model.layers));

  it('knows which cuts are clean', () => {
    const cuts = cutNames(b.model);
    expect(cuts).not.toContain('block_15_expand');
    expect(cuts).not.toContain('block_14_project_BN');
    for (const name of ['block_14_add', 'block_15_add', 'block_16_project_BN', 'Conv_1', 'out_relu', 'block_13_expand']) {
      expect(cuts).toContain(name);
    }
    const adds = cuts.filter((n) => n.endsWith('_add'));
    expect(adds).toEqual([2, 4, 5, 7, 8, 9, 11, 12, 14, 15].map((k) => `block_${k}_add`));
  });

  it('unfreezing 11 layers (block 16 + Conv_1) cuts at block_15_add', () => {
    expect(b.model.layers[cutForUnfreeze(b.model, 11)].name).toBe('block_15_add');
    // One more layer reaches into block 15, whose input is block_14_add.
    expect(b.model.layers[cutForUnfreeze(b.model, 12)].name).toBe('block_14_add');
  });

  it('reproduces the full output from a cut before two residual blocks', () => {
    const x = tf.randomUniform([2, 96, 96, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    expect(tailError(b, 'block_13_project_BN', x)).toBeLessThan(1e-5);
    x.dispose();
  });
});
