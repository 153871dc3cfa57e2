import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing, type PreprocessMode } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { cutTopology, decodeNsfwjsModel, loadNsfwjsLayersModel, nsfwjsWeightsSource } from './nsfwjs-bundle.js';
import { SeedSequence } from './seed-sequence.js';

type T = tf.SymbolicTensor;

const LAST_FEATURE_LAYER = 'mixed10';

/**
 * Keras InceptionV3 blocks: the stem (up to the second max pooling), then one
 * block per `mixedN` concatenation, holding its branches. `model.layers` is in
 * depth order, so each block's layers lie between two `mixedN` layers.
 */
function inceptionBlockStarts(model: tf.LayersModel): number[] {
  const stemEnd = model.layers.findIndex((l) => l.name === 'max_pooling2d_2');
  const blockOf = new Map<string, string>();
  let mixed = 0;
  model.layers.forEach((layer, i) => {
    blockOf.set(layer.name, i <= stemEnd ? 'stem' : `mixed${mixed}`);
    if (/^mixed\d+$/.test(layer.name)) mixed += 1;
  });
  return blockStartsByName(model, (name) => blockOf.get(name) ?? 'stem');
}

function backbone(model: tf.LayersModel, size: number, pretrained: boolean, weightsSource: string): Backbone {
  // nsfwjs trained on x / 255; Keras' own InceptionV3 expects preprocess_input mode 'tf'.
  const mode: PreprocessMode = pretrained ? 'unit' : 'tf';
  return {
    name: 'inception_v3',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing(mode, x01),
    preprocessing: mode,
    blockStarts: inceptionBlockStarts(model),
    pretrained,
    weightsSource,
  };
}

/**
 * The InceptionV3 feature extractor shipped (offline) in nsfwjs, cut at
 * `mixed10` (8×8×2048 at 299 px). Every convolution and pooling in the
 * network is either 'same' or unpadded 'valid', so the topology reloads at
 * any size ≥ 75 by changing only its input shape. Expects pixels in [0, 1].
 */
export async function loadInceptionV3(size: number): Promise<Backbone> {
  const bundle = await decodeNsfwjsModel('inception_v3');
  const model = await loadNsfwjsLayersModel(bundle, cutTopology(bundle.topology, LAST_FEATURE_LAYER, size));
  return backbone(model, size, true, nsfwjsWeightsSource('inception_v3'));
}

/**
 * Builds layers with Keras 2 auto-numbered names (`conv2d_7`,
 * `batch_normalization_7`, `activation_7`, `average_pooling2d_2`, …), in
 * Keras' creation order, so Keras-converted InceptionV3 weights load by name.
 */
class InceptionBuilder {
  private readonly counts = new Map<string, number>();
  constructor(private readonly seeds: SeedSequence) {}

  private nextName(prefix: string): string {
    const n = (this.counts.get(prefix) ?? 0) + 1;
    this.counts.set(prefix, n);
    return `${prefix}_${n}`;
  }

  /** Keras' `conv2d_bn`: Conv2D without bias → BatchNormalization(scale=False) → ReLU. */
  convBn(x: T, filters: number, rows: number, cols: number, strides = 1, padding: 'same' | 'valid' = 'same'): T {
    const conv = tf.layers.conv2d({
      name: this.nextName('conv2d'),
      filters,
      kernelSize: [rows, cols],
      strides,
      padding,
      useBias: false,
      kernelInitializer: tf.initializers.glorotUniform({ seed: this.seeds.next() }),
    });
    const bn = tf.layers.batchNormalization({ name: this.nextName('batch_normalization'), axis: 3, scale: false });
    const relu = tf.layers.activation({ name: this.nextName('activation'), activation: 'relu' });
    return relu.apply(bn.apply(conv.apply(x))) as T;
  }

  maxPool(x: T): T {
    return tf.layers.maxPooling2d({ name: this.nextName('max_pooling2d'), poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as T;
  }

  avgPool(x: T): T {
    return tf.layers.averagePooling2d({ name: this.nextName('average_pooling2d'), poolSize: 3, strides: 1, padding: 'same' }).apply(x) as T;
  }

  concat(xs: T[], name?: string): T {
    return tf.layers.concatenate({ name: name ?? this.nextName('concatenate'), axis: 3 }).apply(xs) as T;
  }

  /** mixed0–2 (35×35 at 299 px): 1×1, 5×5, double 3×3 and pooled branches. */
  mixed35(x: T, poolFilters: number, name: string): T {
    const b1 = this.convBn(x, 64, 1, 1);
    let b5 = this.convBn(x, 48, 1, 1);
    b5 = this.convBn(b5, 64, 5, 5);
    let b3 = this.convBn(x, 64, 1, 1);
    b3 = this.convBn(b3, 96, 3, 3);
    b3 = this.convBn(b3, 96, 3, 3);
    const pool = this.convBn(this.avgPool(x), poolFilters, 1, 1);
    return this.concat([b1, b5, b3, pool], name);
  }

  /** mixed3: 35 → 17 reduction. */
  reduction17(x: T): T {
    const b3 = this.convBn(x, 384, 3, 3, 2, 'valid');
    let dbl = this.convBn(x, 64, 1, 1);
    dbl = this.convBn(dbl, 96, 3, 3);
    dbl = this.convBn(dbl, 96, 3, 3, 2, 'valid');
    return this.concat([b3, dbl, this.maxPool(x)], 'mixed3');
  }

  /** mixed4–7 (17×17): factorised 7×7 branches with `width` inner filters. */
  mixed17(x: T, width: number, name: string): T {
    const b1 = this.convBn(x, 192, 1, 1);
    let b7 = this.convBn(x, width, 1, 1);
    b7 = this.convBn(b7, width, 1, 7);
    b7 = this.convBn(b7, 192, 7, 1);
    let dbl = this.convBn(x, width, 1, 1);
    dbl = this.convBn(dbl, width, 7, 1);
    dbl = this.convBn(dbl, width, 1, 7);
    dbl = this.convBn(dbl, width, 7, 1);
    dbl = this.convBn(dbl, 192, 1, 7);
    const pool = this.convBn(this.avgPool(x), 192, 1, 1);
    return this.concat([b1, b7, dbl, pool], name);
  }

  /** mixed8: 17 → 8 reduction. */
  reduction8(x: T): T {
    let b3 = this.convBn(x, 192, 1, 1);
    b3 = this.convBn(b3, 320, 3, 3, 2, 'valid');
    let b7 = this.convBn(x, 192, 1, 1);
    b7 = this.convBn(b7, 192, 1, 7);
    b7 = this.convBn(b7, 192, 7, 1);
    b7 = this.convBn(b7, 192, 3, 3, 2, 'valid');
    return this.concat([b3, b7, this.maxPool(x)], 'mixed8');
  }

  /** mixed9–10 (8×8): expanded 1×3 / 3×1 branches. */
  mixed8x8(x: T, i: number): T {
    const b1 = this.convBn(x, 320, 1, 1);
    const b3 = this.convBn(x, 384, 1, 1);
    const b3Split = this.concat([this.convBn(b3, 384, 1, 3), this.convBn(b3, 384, 3, 1)], `mixed9_${i}`);
    let dbl = this.convBn(x, 448, 1, 1);
    dbl = this.convBn(dbl, 384, 3, 3);
    const dblSplit = this.concat([this.convBn(dbl, 384, 1, 3), this.convBn(dbl, 384, 3, 1)]);
    const pool = this.convBn(this.avgPool(x), 192, 1, 1);
    return this.concat([b1, b3Split, dblSplit, pool], `mixed${9 + i}`);
  }
}

/**
 * Keras `InceptionV3(include_top=False, weights=None)` built in code: the
 * nsfwjs topology's layer names and weight shapes (Keras 2 naming), randomly
 * initialised from `seed`. Expects Keras `preprocess_input` mode 'tf'.
 */
export function buildInceptionV3(size: number, seed: number): Backbone {
  const b = new InceptionBuilder(new SeedSequence(seed));
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = b.convBn(input, 32, 3, 3, 2, 'valid');
  x = b.convBn(x, 32, 3, 3, 1, 'valid');
  x = b.convBn(x, 64, 3, 3);
  x = b.maxPool(x);
  x = b.convBn(x, 80, 1, 1, 1, 'valid');
  x = b.convBn(x, 192, 3, 3, 1, 'valid');
  x = b.maxPool(x);
  x = b.mixed35(x, 32, 'mixed0');
  x = b.mixed35(x, 64, 'mixed1');
  x = b.mixed35(x, 64, 'mixed2');
  x = b.reduction17(x);
  x = b.mixed17(x, 128, 'mixed4');
  x = b.mixed17(x, 160, 'mixed5');
  x = b.mixed17(x, 160, 'mixed6');
  x = b.mixed17(x, 192, 'mixed7');
  x = b.reduction8(x);
  x = b.mixed8x8(x, 0);
  x = b.mixed8x8(x, 1);
  const model = tf.model({ inputs: input, outputs: x, name: 'inception_v3' });
  return backbone(model, size, false, `random init (seed ${seed})`);
}
