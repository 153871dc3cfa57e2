import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { correctPad } from './correct-pad.js';
import { SeedSequence } from './seed-sequence.js';

type T = tf.SymbolicTensor;

// NASNetMobile's arguments to Keras' NASNet().
const PENULTIMATE_FILTERS = 1056;
const NUM_BLOCKS = 4;
const STEM_BLOCK_FILTERS = 32;
const FILTER_MULTIPLIER = 2;
const BN = { axis: 3, momentum: 0.9997, epsilon: 1e-3 };

/**
 * Builds layers in the order keras/src/applications/nasnet.py creates them.
 * Layers it leaves unnamed get Keras' auto names (`activation`,
 * `activation_1`, …, `add`, `concatenate`, `zero_padding2d`, `cropping2d`):
 * they hold no weights, but `fineTuneAt` may name them.
 */
class NasNetBuilder {
  private readonly counts = new Map<string, number>();
  constructor(readonly seeds: SeedSequence) {}

  private autoName(prefix: string): string {
    const n = this.counts.get(prefix) ?? 0;
    this.counts.set(prefix, n + 1);
    return n === 0 ? prefix : `${prefix}_${n}`;
  }

  relu(x: T, name?: string): T {
    return tf.layers.activation({ name: name ?? this.autoName('activation'), activation: 'relu' }).apply(x) as T;
  }

  conv1x1(x: T, name: string, filters: number): T {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize: 1,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: this.seeds.next() }),
      })
      .apply(x) as T;
  }

  bn(x: T, name: string): T {
    return tf.layers.batchNormalization({ name, ...BN }).apply(x) as T;
  }

  add(xs: T[], name?: string): T {
    return tf.layers.add({ name: name ?? this.autoName('add') }).apply(xs) as T;
  }

  concat(xs: T[], name?: string): T {
    return tf.layers.concatenate({ name: name ?? this.autoName('concatenate'), axis: 3 }).apply(xs) as T;
  }

  pool(kind: 'max' | 'avg', x: T, name: string, poolSize: number, strides: number, padding: 'same' | 'valid'): T {
    const args = { name, poolSize, strides, padding };
    return (kind === 'max' ? tf.layers.maxPooling2d(args) : tf.layers.averagePooling2d(args)).apply(x) as T;
  }

  private separable(x: T, name: string, filters: number, kernelSize: number, strides: number, padding: 'same' | 'valid'): T {
    return tf.layers
      .separableConv2d({
        name,
        filters,
        kernelSize,
        strides,
        padding,
        useBias: false,
        depthwiseInitializer: tf.initializers.glorotUniform({ seed: this.seeds.next() }),
        pointwiseInitializer: tf.initializers.glorotUniform({ seed: this.seeds.next() }),
      })
      .apply(x) as T;
  }

  /** Keras `_separable_conv_block`: 2 × [ReLU → SeparableConv2D → BN], the first maybe strided. */
  separableBlock(ip: T, filters: number, kernelSize: number, strides: number, id: string): T {
    let x = this.relu(ip);
    let padding: 'same' | 'valid' = 'same';
    if (strides === 2) {
      x = tf.layers
        .zeroPadding2d({ name: `separable_conv_1_pad_${id}`, padding: correctPad(x.shape[2] as number, kernelSize) })
        .apply(x) as T;
      padding = 'valid';
    }
    x = this.separable(x, `separable_conv_1_${id}`, filters, kernelSize, strides, padding);
    x = this.bn(x, `separable_conv_1_bn_${id}`);
    x = this.relu(x);
    x = this.separable(x, `separable_conv_2_${id}`, filters, kernelSize, 1, 'same');
    return this.bn(x, `separable_conv_2_bn_${id}`);
  }

  /** Keras `_adjust_block`: brings the previous cell's output `p` to `ip`'s size and `filters`. */
  adjust(p: T | null, ip: T, filters: number, id: string): T {
    if (p === null) return ip;
    if (p.shape[2] !== ip.shape[2]) {
      // Factorised reduction: two stride-2 1×1 paths, the second shifted by one pixel.
      const relu = this.relu(p, `adjust_relu_1_${id}`);
      let p1 = this.pool('avg', relu, `adjust_avg_pool_1_${id}`, 1, 2, 'valid');
      p1 = this.conv1x1(p1, `adjust_conv_1_${id}`, Math.floor(filters / 2));
      let p2 = tf.layers.zeroPadding2d({ name: this.autoName('zero_padding2d'), padding: [[0, 1], [0, 1]] }).apply(relu) as T;
      p2 = tf.layers.cropping2D({ name: this.autoName('cropping2d'), cropping: [[1, 0], [1, 0]] }).apply(p2) as T;
      p2 = this.pool('avg', p2, `adjust_avg_pool_2_${id}`, 1, 2, 'valid');
      p2 = this.conv1x1(p2, `adjust_conv_2_${id}`, Math.floor(filters / 2));
      return this.bn(this.concat([p1, p2]), `adjust_bn_${id}`);
    }
    if (p.shape[3] !== filters) {
      const projected = this.conv1x1(this.relu(p), `adjust_conv_projection_${id}`, filters);
      return this.bn(projected, `adjust_bn_${id}`);
    }
    return p;
  }

  /** Keras `_normal_a_cell`; returns [cell output, its input `ip`] (the next cell's `p`). */
  normalCell(ip: T, pIn: T | null, filters: number, id: string): [T, T] {
    const p = this.adjust(pIn, ip, filters, id);
    const h = this.bn(this.conv1x1(this.relu(ip), `normal_conv_1_${id}`, filters), `normal_bn_1_${id}`);
    const x1 = this.add(
      [this.separableBlock(h, filters, 5, 1, `normal_left1_${id}`), this.separableBlock(p, filters, 3, 1, `normal_right1_${id}`)],
      `normal_add_1_${id}`,
    );
    const x2 = this.add(
      [this.separableBlock(p, filters, 5, 1, `normal_left2_${id}`), this.separableBlock(p, filters, 3, 1, `normal_right2_${id}`)],
      `normal_add_2_${id}`,
    );
    const x3 = this.add([this.pool('avg', h, `normal_left3_${id}`, 3, 1, 'same'), p], `normal_add_3_${id}`);
    const x4 = this.add(
      [this.pool('avg', p, `normal_left4_${id}`, 3, 1, 'same'), this.pool('avg', p, `normal_right4_${id}`, 3, 1, 'same')],
      `normal_add_4_${id}`,
    );
    const x5 = this.add([this.separableBlock(h, filters, 3, 1, `normal_left5_${id}`), h], `normal_add_5_${id}`);
    return [this.concat([p, x1, x2, x3, x4, x5], `normal_concat_${id}`), ip];
  }

  /** Keras `_reduction_a_cell`; halves the spatial size. Returns [cell output, its input `ip`]. */
  reductionCell(ip: T, pIn: T | null, filters: number, id: string): [T, T] {
    const p = this.adjust(pIn, ip, filters, id);
    const h = this.bn(this.conv1x1(this.relu(ip), `reduction_conv_1_${id}`, filters), `reduction_bn_1_${id}`);
    const h3 = tf.layers
      .zeroPadding2d({ name: `reduction_pad_1_${id}`, padding: correctPad(h.shape[2] as number, 3) })
      .apply(h) as T;
    const x1 = this.add(
      [this.separableBlock(h, filters, 5, 2, `reduction_left1_${id}`), this.separableBlock(p, filters, 7, 2, `reduction_right1_${id}`)],
      `reduction_add_1_${id}`,
    );
    const x2 = this.add(
      [this.pool('max', h3, `reduction_left2_${id}`, 3, 2, 'valid'), this.separableBlock(p, filters, 7, 2, `reduction_right2_${id}`)],
      `reduction_add_2_${id}`,
    );
    const x3 = this.add(
      [this.pool('avg', h3, `reduction_left3_${id}`, 3, 2, 'valid'), this.separableBlock(p, filters, 5, 2, `reduction_right3_${id}`)],
      `reduction_add3_${id}`,
    );
    const x4 = this.add([x2, this.pool('avg', x1, `reduction_left4_${id}`, 3, 1, 'same')]);
    const x5 = this.add(
      [this.separableBlock(x1, filters, 3, 1, `reduction_left4_${id}`), this.pool('max', h3, `reduction_right5_${id}`, 3, 2, 'valid')],
      `reduction_add4_${id}`,
    );
    return [this.concat([x2, x3, x4, x5], `reduction_concat_${id}`), ip];
  }
}

// Keras' names for the layers nasnet.py leaves unnamed; they carry no cell id.
const AUTO_NAMED = /^(activation|add|concatenate|zero_padding2d|cropping2d)(_\d+)?$/;
// The cell id Keras appends to every other layer's name: stem_1, reduce_4, 0, 12, …
const CELL_ID = /_(stem_\d+|reduce_\d+|\d+)$/;

/**
 * NASNet blocks: the stem (`stem_conv1`, `stem_bn1`), then one block per cell.
 * A layer belongs to the cell named at the end of its name or, when
 * auto-named, to the cell of the first layer that reads it (the final ReLU to
 * the last cell). Cells read the two previous cells, so in `model.layers`
 * (depth order) a cell's first layers can precede its predecessor's last
 * ones: each block starts at its cell's first layer, and unfreezing N blocks
 * may also unfreeze a few layers of the cell below.
 */
function nasNetBlockStarts(model: tf.LayersModel): number[] {
  const cellOf = (layer: tf.layers.Layer): string | undefined => {
    if (layer.name.startsWith('stem_conv') || layer.name.startsWith('stem_bn')) return 'stem';
    if (!AUTO_NAMED.test(layer.name)) return CELL_ID.exec(layer.name)?.[1];
    for (const node of layer.outboundNodes) {
      const cell = cellOf(node.outboundLayer);
      if (cell) return cell;
    }
    return undefined;
  };
  const firstIndex = new Map<string, number>();
  let last = 'stem';
  model.layers.forEach((layer, i) => {
    if (i === 0) return;
    const cell = cellOf(layer) ?? last;
    last = cell;
    if (!firstIndex.has(cell)) firstIndex.set(cell, i);
  });
  return [...firstIndex.values()].sort((x, y) => x - y);
}

/**
 * Keras `NASNetMobile(include_top=False, weights=None)` (4,269,716
 * parameters) with Keras layer names, randomly initialised from `seed`.
 * Expects Keras `preprocess_input` mode 'tf'. Cells read the two previous
 * cells' outputs, so the network has few clean cuts.
 */
export function buildNasNetMobile(size: number, seed: number): Backbone {
  const b = new NasNetBuilder(new SeedSequence(seed));
  const filters = PENULTIMATE_FILTERS / 24;
  const input = tf.input({ shape: [size, size, 3], name: 'input_layer' });
  let x = tf.layers
    .conv2d({
      name: 'stem_conv1',
      filters: STEM_BLOCK_FILTERS,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias: false,
      kernelInitializer: tf.initializers.heNormal({ seed: b.seeds.next() }),
    })
    .apply(input) as T;
  x = b.bn(x, 'stem_bn1');
  let p: T | null = null;
  [x, p] = b.reductionCell(x, p, Math.floor(filters / FILTER_MULTIPLIER ** 2), 'stem_1');
  [x, p] = b.reductionCell(x, p, Math.floor(filters / FILTER_MULTIPLIER), 'stem_2');
  let width = filters;
  for (let stage = 0; stage < 3; stage++) {
    if (stage > 0) {
      width *= FILTER_MULTIPLIER;
      [x, p] = b.reductionCell(x, p, width, `reduce_${stage * NUM_BLOCKS}`);
    }
    for (let i = 0; i < NUM_BLOCKS; i++) {
      // Keras numbers normal cells 0–3, 5–8, 9–12 (reduction cells take 4 and 8).
      const id = stage === 0 ? i : stage * NUM_BLOCKS + i + 1;
      [x, p] = b.normalCell(x, p, width, String(id));
    }
  }
  x = b.relu(x);
  const model = tf.model({ inputs: input, outputs: x, name: 'nasnet_mobile' });
  return {
    name: 'nasnet_mobile',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('tf', x01),
    preprocessing: 'tf',
    blockStarts: nasNetBlockStarts(model),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
