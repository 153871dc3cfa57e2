/**
 * VGG16, ResNet50, MobileNet (v1) and DenseNet121 built in code: Keras
 * include_top=False architectures with Keras layer and weight names and
 * parameter counts, seeded init, preprocessing modes, whole-block starts,
 * clean cuts, a trial end to end, and specs naming them.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSweepSpec } from '../services/coordinator/src/index.js';
import { BACKBONE_CATALOG } from '../services/worker/src/engine/backbones/catalog.js';
import { applyPreprocessing, type PreprocessMode } from '../services/worker/src/engine/preprocess.js';
import type { Backbone } from '../services/worker/src/engine/index.js';
import {
  buildPrefixModel,
  buildTailModel,
  cleanCutIndices,
  loadBackbone,
  releaseLayers,
  selectBackend,
  trainTrial,
} from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

interface KerasFacts {
  name: string;
  /** keras.applications.X(include_top=False).count_params() */
  params: number;
  /** len(model.layers), input included. */
  layers: number;
  last: string;
  channels: number;
  preprocessing: PreprocessMode;
  epsilon: number;
  /** Layer classes and how many of each. */
  classes: Record<string, number>;
  /** A few weights by Keras name → shape. */
  weights: Record<string, number[]>;
  /** Output shapes at 224 px of a few layers (paddings and strides). */
  shapes224: Record<string, number[]>;
}

const FACTS: KerasFacts[] = [
  {
    name: 'vgg16',
    params: 14_714_688,
    layers: 19,
    last: 'block5_pool',
    channels: 512,
    preprocessing: 'caffe',
    epsilon: NaN,
    classes: { InputLayer: 1, Conv2D: 13, MaxPooling2D: 5 },
    weights: {
      'block1_conv1/kernel': [3, 3, 3, 64],
      'block1_conv1/bias': [64],
      'block5_conv3/kernel': [3, 3, 512, 512],
      'block5_conv3/bias': [512],
    },
    shapes224: { block1_conv2: [224, 224, 64], block3_pool: [28, 28, 256], block5_pool: [7, 7, 512] },
  },
  {
    name: 'resnet50',
    params: 23_587_712,
    layers: 175,
    last: 'conv5_block3_out',
    channels: 2048,
    preprocessing: 'caffe',
    epsilon: 1.001e-5,
    classes: { InputLayer: 1, ZeroPadding2D: 2, Conv2D: 53, BatchNormalization: 53, Activation: 49, MaxPooling2D: 1, Add: 16 },
    weights: {
      'conv1_conv/kernel': [7, 7, 3, 64],
      'conv1_conv/bias': [64],
      'conv1_bn/gamma': [64],
      'conv1_bn/beta': [64],
      'conv1_bn/moving_mean': [64],
      'conv1_bn/moving_variance': [64],
      'conv2_block1_0_conv/kernel': [1, 1, 64, 256],
      'conv3_block1_1_conv/kernel': [1, 1, 256, 128],
      'conv4_block6_2_conv/kernel': [3, 3, 256, 256],
      'conv5_block3_3_conv/kernel': [1, 1, 512, 2048],
      'conv5_block3_3_bn/moving_variance': [2048],
    },
    shapes224: {
      conv1_pad: [230, 230, 3],
      conv1_conv: [112, 112, 64],
      pool1_pad: [114, 114, 64],
      pool1_pool: [56, 56, 64],
      conv2_block3_out: [56, 56, 256],
      conv3_block1_1_conv: [28, 28, 128],
      conv3_block1_0_conv: [28, 28, 512],
      conv4_block6_out: [14, 14, 1024],
      conv5_block3_out: [7, 7, 2048],
    },
  },
  {
    name: 'mobilenet',
    params: 3_228_864,
    layers: 86,
    last: 'conv_pw_13_relu',
    channels: 1024,
    preprocessing: 'tf',
    epsilon: 1e-3,
    classes: { InputLayer: 1, ZeroPadding2D: 4, Conv2D: 14, DepthwiseConv2D: 13, BatchNormalization: 27, ReLU: 27 },
    weights: {
      'conv1/kernel': [3, 3, 3, 32],
      'conv1_bn/gamma': [32],
      'conv_dw_1/depthwise_kernel': [3, 3, 32, 1],
      'conv_dw_1_bn/moving_mean': [32],
      'conv_pw_1/kernel': [1, 1, 32, 64],
      'conv_dw_13/depthwise_kernel': [3, 3, 1024, 1],
      'conv_pw_13/kernel': [1, 1, 1024, 1024],
      'conv_pw_13_bn/beta': [1024],
    },
    shapes224: {
      conv1_relu: [112, 112, 32],
      conv_pad_2: [113, 113, 64],
      conv_dw_2: [56, 56, 64],
      conv_pad_12: [15, 15, 512],
      conv_dw_12: [7, 7, 512],
      conv_pw_13_relu: [7, 7, 1024],
    },
  },
  {
    name: 'densenet121',
    params: 7_037_504,
    layers: 427,
    last: 'relu',
    channels: 1024,
    preprocessing: 'torch',
    epsilon: 1.001e-5,
    classes: {
      InputLayer: 1,
      ZeroPadding2D: 2,
      Conv2D: 120,
      BatchNormalization: 121,
      Activation: 121,
      MaxPooling2D: 1,
      AveragePooling2D: 3,
      Concatenate: 58,
    },
    weights: {
      // Keras 2 names the stem with slashes (as in the published weights).
      'conv1/conv/kernel': [7, 7, 3, 64],
      'conv1/bn/gamma': [64],
      'conv2_block1_1_conv/kernel': [1, 1, 64, 128],
      'conv2_block1_2_conv/kernel': [3, 3, 128, 32],
      'conv2_block6_0_bn/moving_mean': [224],
      'pool2_conv/kernel': [1, 1, 256, 128],
      'pool4_conv/kernel': [1, 1, 1024, 512],
      'conv5_block16_2_conv/kernel': [3, 3, 128, 32],
      'bn/moving_variance': [1024],
    },
    shapes224: {
      zero_padding2d: [230, 230, 3],
      'conv1/relu': [112, 112, 64],
      pool1: [56, 56, 64],
      conv2_block6_concat: [56, 56, 256],
      pool2_pool: [28, 28, 128],
      conv4_block24_concat: [14, 14, 1024],
      pool4_pool: [7, 7, 512],
      relu: [7, 7, 1024],
    },
  },
];

/** What each weighted Keras layer class names its weights. */
const WEIGHT_SUFFIXES: Record<string, string[][]> = {
  Conv2D: [['kernel', 'bias'], ['kernel']],
  DepthwiseConv2D: [['depthwise_kernel']],
  BatchNormalization: [['gamma', 'beta', 'moving_mean', 'moving_variance']],
};

function countClasses(model: tf.LayersModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const l of model.layers) counts[l.getClassName()] = (counts[l.getClassName()] ?? 0) + 1;
  return counts;
}

function weightShapes(model: tf.LayersModel): Map<string, number[]> {
  return new Map(model.weights.map((w) => [w.originalName, w.shape as number[]]));
}

function layerNames(model: tf.LayersModel): string[] {
  return model.layers.map((l) => l.name);
}

beforeAll(async () => {
  await selectBackend('cpu');
});

describe.each(FACTS)('$name (Keras include_top=False)', (facts) => {
  let b: Backbone;
  beforeAll(async () => {
    // Parameters do not depend on the input size; 32 px (Keras' minimum) keeps it cheap.
    b = await loadBackbone(facts.name, { imageSize: 32, seed: 1 });
  });
  afterAll(() => b.model.dispose());

  it('has Keras parameter count, layer count, last layer and output shape', () => {
    expect(b.model.countParams()).toBe(facts.params);
    expect(b.model.layers.length).toBe(facts.layers);
    expect(BACKBONE_CATALOG[facts.name]).toMatchObject({ defaultSize: 224, minSize: 32, layers: facts.layers, pretrained: false });
    expect(b.model.layers.at(-1)?.name).toBe(facts.last);
    expect(b.model.outputs[0].shape).toEqual([null, 1, 1, facts.channels]);
    expect(b.model.layers[0].name).toBe('input_1');
    expect(countClasses(b.model)).toEqual(facts.classes);
  });

  it('names every weight <layer>/<Keras weight name>, loadable by name', () => {
    expect(new Set(layerNames(b.model)).size).toBe(b.model.layers.length);
    for (const layer of b.model.layers) {
      const suffixes = layer.weights.map((w) => {
        expect(w.originalName.startsWith(`${layer.name}/`)).toBe(true);
        return w.originalName.slice(layer.name.length + 1);
      });
      const allowed = WEIGHT_SUFFIXES[layer.getClassName()] ?? [[]];
      expect(allowed, `${layer.name} (${layer.getClassName()}) weights ${suffixes.join(', ')}`).toContainEqual(suffixes);
    }
    const shapes = weightShapes(b.model);
    for (const [name, shape] of Object.entries(facts.weights)) expect(shapes.get(name), name).toEqual(shape);
  });

  it('uses Keras layer settings (BatchNorm epsilon, ReLU6, biases)', () => {
    for (const layer of b.model.layers) {
      const config = layer.getConfig();
      if (layer.getClassName() === 'BatchNormalization') expect(config.epsilon, layer.name).toBe(facts.epsilon);
      if (layer.getClassName() === 'ReLU') expect(config.maxValue, layer.name).toBe(6);
      if (layer.getClassName() === 'Conv2D') {
        // keras.applications: VGG16 and ResNet50 convolutions have biases, MobileNet and DenseNet121 do not.
        expect(config.useBias, layer.name).toBe(facts.name === 'vgg16' || facts.name === 'resnet50');
      }
    }
  });

  it('is random init, with its own preprocessing mode', () => {
    expect(b.pretrained).toBe(false);
    expect(b.weightsSource).toBe('random init (seed 1)');
    expect(b.preprocessing).toBe(facts.preprocessing);
    const x = tf.randomUniform([2, 4, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(b.preprocess(x), applyPreprocessing(facts.preprocessing, x)))).dataSync()[0]);
    x.dispose();
    expect(diff).toBe(0);
  });
});

describe('shapes at 224 px (paddings and strides as in Keras)', () => {
  it.each(FACTS)('$name', async (facts) => {
    const b = await loadBackbone(facts.name, { seed: 1 });
    try {
      expect(b.inputSize).toEqual([224, 224]);
      for (const [name, shape] of Object.entries(facts.shapes224)) {
        expect(b.model.getLayer(name).outputShape, name).toEqual([null, ...shape]);
      }
    } finally {
      b.model.dispose();
    }
  });
});

describe('seeded init', () => {
  it.each(FACTS.map((f) => f.name))('%s: one seed gives identical weights, another seed different ones', async (name) => {
    const [a, same, other] = [
      await loadBackbone(name, { imageSize: 32, seed: 5 }),
      await loadBackbone(name, { imageSize: 32, seed: 5 }),
      await loadBackbone(name, { imageSize: 32, seed: 6 }),
    ];
    try {
      const kernels = a.model.weights.map((w, i) => [w, same.model.weights[i], other.model.weights[i]] as const);
      for (const [wa, ws] of kernels) expect(Buffer.from(wa.read().dataSync().buffer).equals(Buffer.from(ws.read().dataSync().buffer)), wa.originalName).toBe(true);
      const kernelsDiffer = kernels.filter(([wa]) => /kernel$/.test(wa.originalName))
        .every(([wa, , wo]) => !Buffer.from(wa.read().dataSync().buffer).equals(Buffer.from(wo.read().dataSync().buffer)));
      expect(kernelsDiffer).toBe(true);
    } finally {
      for (const b of [a, same, other]) b.model.dispose();
    }
  });
});

describe('block starts (for unfreeze by whole blocks)', () => {
  async function startNames(name: string): Promise<string[]> {
    const b = await loadBackbone(name, { imageSize: 32, seed: 1 });
    const names = b.blockStarts.map((i) => b.model.layers[i].name);
    b.model.dispose();
    return names;
  }

  it('vgg16: block1..block5', async () => {
    expect(await startNames('vgg16')).toEqual(['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1']);
  });

  it('resnet50: the stem, then each convN_blockM', async () => {
    const starts = await startNames('resnet50');
    expect(starts[0]).toBe('conv1_pad');
    const blocks = starts.slice(1).map((n) => /^(conv\d_block\d)_/.exec(n)?.[1]);
    const expected = [[2, 3], [3, 4], [4, 6], [5, 3]].flatMap(([s, n]) => Array.from({ length: n }, (_, i) => `conv${s}_block${i + 1}`));
    expect(blocks).toEqual(expected);
  });

  it('mobilenet: the stem, then each conv_dw_N/conv_pw_N pair (with its padding)', async () => {
    const starts = await startNames('mobilenet');
    expect(starts).toHaveLength(14);
    expect(starts[0]).toBe('conv1');
    expect(starts.slice(1)).toEqual(
      Array.from({ length: 13 }, (_, i) => ([2, 4, 6, 12].includes(i + 1) ? `conv_pad_${i + 1}` : `conv_dw_${i + 1}`)),
    );
  });

  it('densenet121: the stem, each convN_blockM and each poolN transition; the final bn/relu join conv5_block16', async () => {
    const starts = await startNames('densenet121');
    expect(starts).toHaveLength(1 + 58 + 3);
    expect(starts[0]).toBe('zero_padding2d');
    expect(starts.filter((n) => /^pool\d_bn$/.test(n))).toEqual(['pool2_bn', 'pool3_bn', 'pool4_bn']);
    expect(starts.filter((n) => /_0_bn$/.test(n))).toHaveLength(58);
    expect(starts.at(-1)).toBe('conv5_block16_0_bn');
  });
});

describe('clean cuts', () => {
  function cleanNames(b: Backbone): string[] {
    return cleanCutIndices(b.model).map((i) => b.model.layers[i].name);
  }

  it('vgg16 and mobilenet: every layer (no branches)', async () => {
    for (const name of ['vgg16', 'mobilenet']) {
      const b = await loadBackbone(name, { imageSize: 32, seed: 1 });
      expect(cleanNames(b)).toEqual(layerNames(b.model));
      b.model.dispose();
    }
  });

  it('resnet50: the stem and each convN_blockM_add/_out, nothing inside a residual block', async () => {
    const b = await loadBackbone('resnet50', { imageSize: 32, seed: 1 });
    const names = cleanNames(b);
    b.model.dispose();
    const stem = ['input_1', 'conv1_pad', 'conv1_conv', 'conv1_bn', 'conv1_relu', 'pool1_pad', 'pool1_pool'];
    const blocks = [[2, 3], [3, 4], [4, 6], [5, 3]].flatMap(([s, n]) => Array.from({ length: n }, (_, i) => `conv${s}_block${i + 1}`));
    // Once both branches meet in _add, the block is done: _add and _out are single tensors all later layers read.
    expect(names).toEqual([...stem, ...blocks.flatMap((blk) => [`${blk}_add`, `${blk}_out`])]);
  });

  it('densenet121: the stem, each convN_blockM_concat, the transitions and the final bn/relu', async () => {
    const b = await loadBackbone('densenet121', { imageSize: 32, seed: 1 });
    const all = layerNames(b.model);
    const names = cleanNames(b);
    b.model.dispose();
    const expected = all.filter((n) => !/^conv\d_block\d+_/.test(n) || n.endsWith('_concat'));
    expect(names).toEqual(expected);
    expect(names.filter((n) => n.endsWith('_concat'))).toHaveLength(58);
    expect(names).toEqual(expect.arrayContaining(['pool1', 'pool2_bn', 'pool2_pool', 'pool4_pool', 'bn', 'relu']));
  });

  it('resnet50 at 32 px: the prefix to a cut plus the tail from it reproduce the full model', async () => {
    const b = await loadBackbone('resnet50', { imageSize: 32, seed: 2 });
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    try {
      // conv4_block1 reads the cut twice (main branch and projection shortcut).
      for (const cutName of ['conv3_block4_out']) {
        const cut = b.model.layers.findIndex((l) => l.name === cutName);
        const tail = buildTailModel(b.model, cut);
        const [diff, scale] = tf.tidy(() => {
          const full = b.model.predict(x) as tf.Tensor;
          const viaTail = tail.predict(buildPrefixModel(b.model, cut).predict(x) as tf.Tensor) as tf.Tensor;
          expect(viaTail.shape).toEqual(full.shape);
          return [tf.max(tf.abs(tf.sub(full, viaTail))).dataSync()[0], tf.max(tf.abs(full)).dataSync()[0]];
        });
        // Same layers, same weights, same order of operations: equal up to float32 rounding.
        expect(scale).toBeGreaterThan(0);
        expect(diff, `max |full - tail(prefix)| from ${cutName}`).toBeLessThanOrEqual(1e-5 * scale);
        tail.layers.forEach((l) => l.getClassName() !== 'InputLayer' && l.dispose());
      }
    } finally {
      x.dispose();
      releaseLayers(b.model.layers);
    }
  });
});

describe('trainTrial on mobilenet', () => {
  it('runs both phases at 32 px with the last block unfrozen', async () => {
    const data = stripesDataset({ train: 16, val: 8, test: 8, size: 32, seed: 4 });
    const trainable: string[] = [];
    try {
      const outcome = await trainTrial(
        {
          backbone: 'mobilenet',
          imageSize: 32,
          unfreeze: 6,
          learningRate: 0.01,
          dropout: 0.2,
          headUnits: 8,
          headEpochs: 1,
          fineTuneEpochs: 1,
          fineTuneLrFactor: 0.1,
          batchSize: 8,
          seed: 3,
        },
        data,
        {
          onEpoch: () => 'CONTINUE',
          onModel: (stage, model) => {
            if (stage === 'finetune') trainable.push(...model.trainableWeights.map((w) => w.originalName));
          },
        },
      );
      expect(outcome.history.map((h) => h.phase)).toEqual(['head', 'finetune']);
      expect(outcome.pretrained).toBe(false);
      expect(outcome.weightsSource).toBe('random init (seed 3)');
      expect(outcome.backend).toBe('cpu');
      expect(outcome.totalParams).toBeGreaterThan(3_228_864);
      // The top 6 layers are conv_dw_13 … conv_pw_13_relu; the cut sits right below them.
      expect(outcome.cutLayer).toBe('conv_pw_12_relu');
      expect(trainable).toEqual(expect.arrayContaining(['conv_dw_13/depthwise_kernel', 'conv_pw_13/kernel']));
      expect(trainable.some((n) => n.startsWith('conv_pw_12/'))).toBe(false);
      for (const v of [outcome.valLoss, outcome.testLoss, ...outcome.history.map((h) => h.loss)]) expect(Number.isFinite(v)).toBe(true);
    } finally {
      disposeData(data);
    }
  }, 60_000);
});

describe('sweep specs naming these backbones', () => {
  const spec = (extra: string): string => `
name: keras
dataset: { kind: synthetic }
backbones: [vgg16, resnet50, mobilenet, densenet121]
learningRates: [0.001]
dropouts: [0.2]
${extra}`;

  it('are accepted, with unfreeze below the smallest layer count and sizes from 32', () => {
    const s = parseSweepSpec(spec('unfreeze: [0, 18]\nimageSize: 32'));
    expect(s.backbones).toEqual(['vgg16', 'resnet50', 'mobilenet', 'densenet121']);
    expect(s.imageSize).toBe(32);
  });

  it('are refused below Keras minimum size or past a backbone layer count', () => {
    expect(() => parseSweepSpec(spec('unfreeze: [0]\nimageSize: 31'))).toThrow(/at least 32 for backbone vgg16/);
    expect(() => parseSweepSpec(spec('unfreeze: [19]'))).toThrow(/below 19, the layer count of backbone vgg16/);
    expect(() => parseSweepSpec(spec('unfreeze: [19]').replace('vgg16, ', ''))).not.toThrow();
  });
});
