/**
 * InceptionV3 (nsfwjs offline and built in code), EfficientNetB0 and
 * NASNetMobile: Keras layer names, parameter counts, output shapes, seeded
 * init, block starts and clean cuts, built at small sizes (parameter counts
 * do not depend on the size).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backbone } from '../services/worker/src/engine/index.js';
import { backboneInputSize, loadBackbone, selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { cleanCutIndices } from '../services/worker/src/engine/clean-cuts.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const names = (b: Backbone, indices: readonly number[]) => indices.map((i) => b.model.layers[i].name);
const weightSignature = (m: tf.LayersModel) => m.weights.map((w) => `${w.originalName} ${JSON.stringify(w.shape)}`).sort();
const bits = (a: tf.TypedArray) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Every weight of `layers`, as raw bits (a string compares far faster than millions of numbers). */
const weightValues = (m: tf.LayersModel, layers: string[]) =>
  layers
    .flatMap((n) => m.getLayer(n).getWeights().map((t) => bits(t.dataSync()).toString('base64')))
    .join('|');

/** Loads `name` three times: seeds 5, 5 and 6. */
async function seededTriple(name: string, imageSize: number, extra: { weights?: 'none' } = {}): Promise<[Backbone, Backbone, Backbone]> {
  const [a, b, c] = [
    await loadBackbone(name, { imageSize, seed: 5, ...extra }),
    await loadBackbone(name, { imageSize, seed: 5, ...extra }),
    await loadBackbone(name, { imageSize, seed: 6, ...extra }),
  ];
  return [a, b, c];
}

describe('inception_v3', () => {
  let nsfwjs: Backbone;
  let built: [Backbone, Backbone, Backbone];
  beforeAll(async () => {
    nsfwjs = await loadBackbone('inception_v3', { imageSize: 75 });
    built = await seededTriple('inception_v3', 75, { weights: 'none' });
  });
  afterAll(() => [nsfwjs, ...built].forEach((b) => b.model.dispose()));

  it('loads the nsfwjs weights cut at mixed10: 311 layers, 21,802,784 parameters, finite features in [0, 1] input', () => {
    expect(backboneInputSize('inception_v3')).toEqual([299, 299]);
    expect(nsfwjs.pretrained).toBe(true);
    expect(nsfwjs.preprocessing).toBe('unit');
    expect(nsfwjs.weightsSource).toMatch(/^nsfwjs@4\.3\.0 inception_v3 \(ImageNet-initialised, fine-tuned on a 5-class NSFW task\)$/);
    expect(nsfwjs.model.layers.length).toBe(311);
    expect(nsfwjs.model.layers.at(-1)?.name).toBe('mixed10');
    expect(nsfwjs.model.countParams()).toBe(21_802_784);
    // The weights came from the bundle (loading is not strict): the last BatchNorm's statistics are not their initial 0 / 1.
    const [, mean, variance] = nsfwjs.model.getLayer('batch_normalization_94').getWeights();
    expect(mean.dataSync().some((v) => v !== 0)).toBe(true);
    expect(variance.dataSync().some((v) => v !== 1)).toBe(true);
    const y = tf.tidy(() => nsfwjs.model.predict(nsfwjs.preprocess(tf.randomUniform([2, 75, 75, 3], 0, 1, 'float32', 9) as tf.Tensor4D)) as tf.Tensor);
    expect(y.shape).toEqual([2, 1, 1, 2048]);
    const values = y.dataSync();
    expect(values.every(Number.isFinite)).toBe(true);
    expect(Math.max(...values)).toBeGreaterThan(0); // ReLU features, not all dead
    y.dispose();
  });

  it('reloads at other sizes with valid paddings: 75 → 1×1, 139 → 3×3, 299 → 8×8', async () => {
    expect(nsfwjs.model.outputs[0].shape).toEqual([null, 1, 1, 2048]);
    for (const [size, side] of [[139, 3], [299, 8]]) {
      const b = await loadBackbone('inception_v3', { imageSize: size });
      expect(b.model.outputs[0].shape).toEqual([null, side, side, 2048]);
      b.model.dispose();
    }
    expect(() => backboneInputSize('inception_v3', 74)).toThrow(/>= 75/);
  });

  it('built in code, matches the nsfwjs topology: layer order and names, weight names and shapes', () => {
    const [code] = built;
    expect(code.pretrained).toBe(false);
    expect(code.preprocessing).toBe('tf');
    expect(code.weightsSource).toBe('random init (seed 5)');
    expect(code.model.layers.map((l) => l.name)).toEqual(nsfwjs.model.layers.map((l) => l.name));
    expect(code.model.layers.map((l) => l.getClassName())).toEqual(nsfwjs.model.layers.map((l) => l.getClassName()));
    expect(weightSignature(code.model)).toEqual(weightSignature(nsfwjs.model));
    expect(code.model.countParams()).toBe(21_802_784);
    expect(code.model.outputs[0].shape).toEqual([null, 1, 1, 2048]);
  });

  it("weights 'none' needs a code-built architecture; other values are rejected", async () => {
    await expect(loadBackbone('mobilenet_v2', { weights: 'none' })).rejects.toThrow(/weights 'none' is not available for backbone 'mobilenet_v2'/);
    await expect(loadBackbone('inception_v3', { weights: 'imagenet' as 'none' })).rejects.toThrow(/weights must be one of bundled, none; got imagenet/);
  });

  it('is deterministic per seed', () => {
    const [a, b, c] = built;
    const sample = ['conv2d_1', 'batch_normalization_1', 'conv2d_50', 'conv2d_94'];
    expect(weightValues(a.model, sample)).toEqual(weightValues(b.model, sample));
    expect(weightValues(a.model, sample)).not.toEqual(weightValues(c.model, sample));
  });

  it('has the stem and mixed0…mixed10 as blocks and clean cuts', () => {
    for (const b of [nsfwjs, built[0]]) {
      expect(b.blockStarts).toHaveLength(12);
      expect(b.blockStarts[0]).toBe(1);
      // Each block ends just before the next starts: the stem at max_pooling2d_2, then mixed0 … mixed9.
      expect(names(b, b.blockStarts.slice(1).map((i) => i - 1))).toEqual(['max_pooling2d_2', ...Array.from({ length: 10 }, (_, k) => `mixed${k}`)]);
      const cuts = names(b, cleanCutIndices(b.model));
      expect(cuts.filter((n) => n.startsWith('mixed'))).toEqual(Array.from({ length: 11 }, (_, k) => `mixed${k}`));
      // Besides the mixed outputs, only the (sequential) stem is clean.
      expect(cuts.length).toBe(11 + 18);
    }
  });
});

describe('efficientnet_b0', () => {
  let built: [Backbone, Backbone, Backbone];
  beforeAll(async () => {
    built = await seededTriple('efficientnet_b0', 32);
  });
  afterAll(() => built.forEach((b) => b.model.dispose()));

  it('has Keras names, 237 layers and 4,049,571 parameters (Normalization statistics included)', () => {
    const [b] = built;
    expect(backboneInputSize('efficientnet_b0')).toEqual([224, 224]);
    expect(b.pretrained).toBe(false);
    expect(b.preprocessing).toBe('raw255');
    const layerNames = b.model.layers.map((l) => l.name);
    expect(layerNames.length).toBe(237);
    expect(b.model.countParams()).toBe(4_049_571);
    expect(layerNames.slice(0, 7)).toEqual(['input_layer', 'rescaling', 'normalization', 'stem_conv_pad', 'stem_conv', 'stem_bn', 'stem_activation']);
    expect(layerNames.slice(7, 17)).toEqual(
      ['dwconv', 'bn', 'activation', 'se_squeeze', 'se_reshape', 'se_reduce', 'se_expand', 'se_excite', 'project_conv', 'project_bn'].map((s) => `block1a_${s}`),
    );
    expect(layerNames.slice(-3)).toEqual(['top_conv', 'top_bn', 'top_activation']);
    const blocks = [...new Set(layerNames.map((n) => /^(block\d[a-z])_/.exec(n)?.[1]).filter(Boolean))];
    expect(blocks).toEqual(['1a', '2a', '2b', '3a', '3b', '4a', '4b', '4c', '5a', '5b', '5c', '6a', '6b', '6c', '6d', '7a'].map((s) => `block${s}`));
    expect(b.model.getLayer('normalization').weights.map((w) => [w.originalName, w.shape, w.dtype, w.trainable])).toEqual([
      ['normalization/mean', [3], 'float32', false],
      ['normalization/variance', [3], 'float32', false],
      ['normalization/count', [], 'int32', false],
    ]);
    expect(b.model.getLayer('block2a_activation').getConfig().activation).toBe('swish');
    expect(b.model.getLayer('block2a_se_expand').getConfig().activation).toBe('sigmoid');
  });

  it('pads like Keras correct_pad, drops connections per sample with the linearly growing rate', async () => {
    const [b] = built;
    // 32 → stem 16 → block2a (even: ((0,1),(0,1))) 8 → block3a k=5 (even: ((1,2),(1,2))) 4 → 2 → 1.
    expect(b.model.getLayer('stem_conv_pad').getConfig().padding).toEqual([[0, 1], [0, 1]]);
    expect(b.model.getLayer('block3a_dwconv_pad').getConfig().padding).toEqual([[1, 2], [1, 2]]);
    expect(b.model.outputs[0].shape).toEqual([null, 1, 1, 1280]);
    const drop = b.model.getLayer('block6d_drop').getConfig();
    expect(drop.rate).toBeCloseTo((0.2 * 14) / 16, 10);
    expect(drop.noiseShape).toEqual([null, 1, 1, 1]);
    const odd = await loadBackbone('efficientnet_b0', { imageSize: 33 });
    // 33 → 17 (odd: ((1,1),(1,1))) → 9 → 5 → 3 → 2.
    expect(odd.model.getLayer('block2a_dwconv_pad').getConfig().padding).toEqual([[1, 1], [1, 1]]);
    expect(odd.model.outputs[0].shape).toEqual([null, 2, 2, 1280]);
    odd.model.dispose();
  });

  it('is deterministic per seed', () => {
    const [a, b, c] = built;
    const all = a.model.layers.filter((l) => l.weights.length > 0).map((l) => l.name);
    expect(weightValues(a.model, all)).toEqual(weightValues(b.model, all));
    expect(weightValues(a.model, all)).not.toEqual(weightValues(c.model, all));
  });

  it('blocks: stem, each blockNx, top; clean cuts: every residual add and every non-residual block layer outside the SE branch', () => {
    const [b] = built;
    expect(names(b, b.blockStarts)).toEqual([
      'rescaling',
      'block1a_dwconv',
      ...['2a', '2b', '3a', '3b', '4a', '4b', '4c', '5a', '5b', '5c', '6a', '6b', '6c', '6d', '7a'].map((s) => `block${s}_expand_conv`),
      'top_conv',
    ]);
    const residual = /^block(2b|3b|4b|4c|5b|5c|6b|6c|6d)_/;
    const seBranch = /_se_(squeeze|reshape|reduce|expand)$/;
    const expected = b.model.layers
      .map((l) => l.name)
      .filter((n) => (residual.test(n) ? n.endsWith('_add') : !seBranch.test(n)));
    expect(names(b, cleanCutIndices(b.model))).toEqual(expected);
  });

  it('round-trips through the tfjs layers format (Normalization is a registered class)', async () => {
    const [b] = built;
    const layer = b.model.getLayer('normalization');
    layer.setWeights([tf.tensor1d([10, 20, 30]), tf.tensor1d([4, 16, 64]), tf.scalar(7, 'int32')]);
    let saved: tf.io.ModelArtifacts | undefined;
    await b.model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const reloaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const x = tf.randomUniform([1, 32, 32, 3], 0, 255, 'float32', 3);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(b.model.predict(x) as tf.Tensor, reloaded.predict(x) as tf.Tensor))).dataSync()[0]);
    expect(diff).toBe(0);
    // (x/255 − mean) / sqrt(variance) on channel 1: (0 − 20) / 4.
    const probe = tf.model({ inputs: b.model.inputs, outputs: b.model.getLayer('normalization').output as tf.SymbolicTensor });
    expect(tf.tidy(() => (probe.predict(tf.zeros([1, 32, 32, 3])) as tf.Tensor).slice([0, 0, 0, 1], [1, 1, 1, 1]).dataSync()[0])).toBe(-5);
    reloaded.dispose();
    x.dispose();
  });
});

describe('nasnet_mobile', () => {
  let built: [Backbone, Backbone, Backbone];
  beforeAll(async () => {
    built = await seededTriple('nasnet_mobile', 32);
  });
  afterAll(() => built.forEach((b) => b.model.dispose()));

  it('has Keras names, 769 layers and 4,269,716 parameters; ends in the final ReLU', () => {
    const [b] = built;
    expect(backboneInputSize('nasnet_mobile')).toEqual([224, 224]);
    expect(b.pretrained).toBe(false);
    expect(b.preprocessing).toBe('tf');
    const layerNames = b.model.layers.map((l) => l.name);
    expect(layerNames.length).toBe(769);
    expect(b.model.countParams()).toBe(4_269_716);
    expect(layerNames.slice(0, 3)).toEqual(['input_layer', 'stem_conv1', 'stem_bn1']);
    // 188 ReLUs, auto-named as Keras does; the last is the model's output.
    expect(layerNames.at(-1)).toBe('activation_187');
    expect(b.model.getLayer('activation_187').getConfig().activation).toBe('relu');
    const cells = ['stem_1', 'stem_2', '0', '1', '2', '3', 'reduce_4', '5', '6', '7', '8', 'reduce_8', '9', '10', '11', '12'];
    const concats = layerNames.filter((n) => /_concat_/.test(n));
    expect(concats.map((n) => n.split('_concat_')[1]).sort()).toEqual([...cells].sort());
    for (const name of ['adjust_bn_stem_2', 'adjust_conv_projection_1', 'adjust_conv_1_9', 'adjust_conv_projection_reduce_8', 'separable_conv_1_pad_reduction_right1_reduce_8', 'separable_conv_2_bn_normal_left5_12', 'reduction_add4_reduce_4', 'zero_padding2d', 'cropping2d_3']) {
      expect(layerNames).toContain(name);
    }
    expect(b.model.getLayer('separable_conv_1_normal_left1_0').weights.map((w) => [w.originalName, w.shape])).toEqual([
      ['separable_conv_1_normal_left1_0/depthwise_kernel', [5, 5, 44, 1]],
      ['separable_conv_1_normal_left1_0/pointwise_kernel', [1, 1, 44, 44]],
    ]);
    expect(b.model.outputs[0].shape).toEqual([null, 1, 1, 1056]);
  });

  it('is deterministic per seed', () => {
    const [a, b, c] = built;
    const sample = ['stem_conv1', 'separable_conv_1_reduction_left1_stem_1', 'adjust_conv_1_5', 'separable_conv_2_normal_left5_12'];
    expect(weightValues(a.model, sample)).toEqual(weightValues(b.model, sample));
    expect(weightValues(a.model, sample)).not.toEqual(weightValues(c.model, sample));
  });

  it('blocks: stem and 16 cells; clean cuts: only the stem, the last cell and the final ReLU', () => {
    const [b] = built;
    expect(b.blockStarts).toHaveLength(17);
    expect(names(b, b.blockStarts.slice(0, 3))).toEqual(['stem_conv1', 'activation', 'adjust_relu_1_stem_2']);
    expect([...b.blockStarts].sort((x, y) => x - y)).toEqual(b.blockStarts);
    // Cells read the two previous cells' outputs, so no cut inside the cell stack is clean.
    expect(names(b, cleanCutIndices(b.model))).toEqual(['input_layer', 'stem_conv1', 'stem_bn1', 'normal_concat_12', 'activation_187']);
  });
});

describe('trainTrial with efficientnet_b0', () => {
  it('runs 1 + 1 epochs at 32 px with the top 5 layers unfrozen on the cpu backend', async () => {
    const data = stripesDataset({ train: 12, val: 3, test: 3, size: 32, seed: 2 });
    try {
      const outcome = await trainTrial(
        {
          backbone: 'efficientnet_b0',
          imageSize: 32,
          unfreeze: 5,
          learningRate: 0.01,
          dropout: 0.2,
          headUnits: 8,
          headEpochs: 1,
          fineTuneEpochs: 1,
          fineTuneLrFactor: 0.1,
          batchSize: 6,
          seed: 1,
        },
        data,
        { onEpoch: () => 'CONTINUE' },
      );
      expect(outcome.history.map((r) => [r.phase, r.epoch])).toEqual([
        ['head', 1],
        ['finetune', 2],
      ]);
      // The deepest clean cut below block7a_project_conv, the first unfrozen layer.
      expect(outcome.cutLayer).toBe('block7a_se_excite');
      expect(outcome.pretrained).toBe(false);
      expect(Number.isFinite(outcome.testLoss)).toBe(true);
    } finally {
      disposeData(data);
    }
  }, 60_000);
});
