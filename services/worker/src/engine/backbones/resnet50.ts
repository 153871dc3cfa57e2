import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { SeededInitializers } from './seeded-initializers.js';

// keras.applications.resnet uses this epsilon on every BatchNormalization.
const BN_EPSILON = 1.001e-5;

/** Stages conv2..conv5: bottleneck filters, blocks, stride of the first block. */
const STAGES: ReadonlyArray<{ filters: number; blocks: number; stride: number }> = [
  { filters: 64, blocks: 3, stride: 1 },
  { filters: 128, blocks: 4, stride: 2 },
  { filters: 256, blocks: 6, stride: 2 },
  { filters: 512, blocks: 3, stride: 2 },
];

/** `conv4_block2_3_bn` → `conv4_block2`; stem layers (`conv1_*`, `pool1_*`) → `stem`. */
export function resnet50BlockOf(layerName: string): string {
  return /^(conv\d+_block\d+)_/.exec(layerName)?.[1] ?? 'stem';
}

class ResNetBuilder {
  private readonly init: SeededInitializers;

  constructor(seed: number) {
    this.init = new SeededInitializers(seed);
  }

  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides = 1, padding: 'same' | 'valid' = 'valid'): tf.SymbolicTensor {
    return tf.layers
      .conv2d({ name, filters, kernelSize, strides, padding, kernelInitializer: this.init.glorotUniform() })
      .apply(x) as tf.SymbolicTensor;
  }

  bn(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.batchNormalization({ name, axis: 3, epsilon: BN_EPSILON, momentum: 0.99 }).apply(x) as tf.SymbolicTensor;
  }

  relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.activation({ name, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  }

  /** Keras `residual_block_v1` (block1 in Keras 2): 1×1 → 3×3 → 1×1 (×4), plus a projection or identity shortcut. */
  block(x: tf.SymbolicTensor, name: string, filters: number, stride: number, convShortcut: boolean): tf.SymbolicTensor {
    const shortcut = convShortcut ? this.bn(this.conv(x, `${name}_0_conv`, 4 * filters, 1, stride), `${name}_0_bn`) : x;
    let h = this.relu(this.bn(this.conv(x, `${name}_1_conv`, filters, 1, stride), `${name}_1_bn`), `${name}_1_relu`);
    h = this.relu(this.bn(this.conv(h, `${name}_2_conv`, filters, 3, 1, 'same'), `${name}_2_bn`), `${name}_2_relu`);
    h = this.bn(this.conv(h, `${name}_3_conv`, 4 * filters, 1), `${name}_3_bn`);
    h = tf.layers.add({ name: `${name}_add` }).apply([shortcut, h]) as tf.SymbolicTensor;
    return this.relu(h, `${name}_out`);
  }
}

/**
 * Keras `ResNet50(include_top=False, weights=None)` (layer names as in
 * keras.applications.resnet), ending at `conv5_block3_out`, with seeded
 * glorot-uniform kernels. 23,587,712 parameters at any size.
 */
export function buildResNet50(size: number, seed: number): Backbone {
  const b = new ResNetBuilder(seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = tf.layers.zeroPadding2d({ name: 'conv1_pad', padding: [[3, 3], [3, 3]] }).apply(input) as tf.SymbolicTensor;
  x = b.relu(b.bn(b.conv(x, 'conv1_conv', 64, 7, 2), 'conv1_bn'), 'conv1_relu');
  x = tf.layers.zeroPadding2d({ name: 'pool1_pad', padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ name: 'pool1_pool', poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  STAGES.forEach((stage, s) => {
    for (let i = 1; i <= stage.blocks; i++) {
      // The first block of a stage changes width (and maybe resolution), so it projects its shortcut.
      x = b.block(x, `conv${s + 2}_block${i}`, stage.filters, i === 1 ? stage.stride : 1, i === 1);
    }
  });
  const model = tf.model({ inputs: input, outputs: x, name: 'resnet50' });
  return {
    name: 'resnet50',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('caffe', x01),
    preprocessing: 'caffe',
    blockStarts: blockStartsByName(model, resnet50BlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
