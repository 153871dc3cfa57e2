import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { SeededInitializers } from './seeded-initializers.js';

// keras.applications.densenet uses this epsilon on every BatchNormalization.
const BN_EPSILON = 1.001e-5;
const GROWTH_RATE = 32;
const COMPRESSION = 0.5;
/** Conv blocks in dense blocks conv2..conv5 (DenseNet-121). */
const DENSE_BLOCKS = [6, 12, 24, 16];

/**
 * `conv3_block7_1_bn` → `conv3_block7`; `pool3_conv` → `pool3` (a transition);
 * the final `bn`/`relu` join the last dense block (null: they have nothing of
 * their own worth unfreezing); the rest (`zero_padding2d`, `conv1/…`, `pool1`)
 * → `stem`.
 */
export function denseNet121BlockOf(layerName: string): string | null {
  const m = /^(conv\d+_block\d+|pool[2-9])_/.exec(layerName);
  if (m) return m[1];
  return layerName === 'bn' || layerName === 'relu' ? null : 'stem';
}

class DenseNetBuilder {
  private readonly init: SeededInitializers;

  constructor(seed: number) {
    this.init = new SeededInitializers(seed);
  }

  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides = 1, padding: 'same' | 'valid' = 'valid'): tf.SymbolicTensor {
    return tf.layers
      .conv2d({ name, filters, kernelSize, strides, padding, useBias: false, kernelInitializer: this.init.glorotUniform() })
      .apply(x) as tf.SymbolicTensor;
  }

  bnRelu(x: tf.SymbolicTensor, bnName: string, reluName: string): tf.SymbolicTensor {
    const h = tf.layers.batchNormalization({ name: bnName, axis: 3, epsilon: BN_EPSILON, momentum: 0.99 }).apply(x);
    return tf.layers.activation({ name: reluName, activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  }

  /** Keras `conv_block`: BN-ReLU-1×1 (4k) → BN-ReLU-3×3 (k), concatenated onto its input. */
  convBlock(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    let h = this.bnRelu(x, `${name}_0_bn`, `${name}_0_relu`);
    h = this.conv(h, `${name}_1_conv`, 4 * GROWTH_RATE, 1);
    h = this.bnRelu(h, `${name}_1_bn`, `${name}_1_relu`);
    h = this.conv(h, `${name}_2_conv`, GROWTH_RATE, 3, 1, 'same');
    return tf.layers.concatenate({ name: `${name}_concat`, axis: 3 }).apply([x, h]) as tf.SymbolicTensor;
  }

  /** Keras `transition_block`: BN-ReLU-1×1 halving the channels, then 2×2 average pooling. */
  transition(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    let h = this.bnRelu(x, `${name}_bn`, `${name}_relu`);
    h = this.conv(h, `${name}_conv`, Math.floor((h.shape[3] as number) * COMPRESSION), 1);
    return tf.layers.averagePooling2d({ name: `${name}_pool`, poolSize: 2, strides: 2 }).apply(h) as tf.SymbolicTensor;
  }
}

/**
 * Keras `DenseNet121(include_top=False, weights=None)`, ending at `relu`,
 * with seeded glorot-uniform kernels. 7,037,504 parameters at any size.
 *
 * Names are Keras 2's (tf.keras), as in the published DenseNet121 weights:
 * the stem is `conv1/conv`, `conv1/bn`, `conv1/relu` (Keras 3 writes
 * `conv1_conv`…), and its two ZeroPadding2D layers are unnamed there, so they
 * get Keras' automatic names `zero_padding2d` and `zero_padding2d_1` (they
 * hold no weights).
 */
export function buildDenseNet121(size: number, seed: number): Backbone {
  const b = new DenseNetBuilder(seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = tf.layers.zeroPadding2d({ name: 'zero_padding2d', padding: [[3, 3], [3, 3]] }).apply(input) as tf.SymbolicTensor;
  x = b.bnRelu(b.conv(x, 'conv1/conv', 64, 7, 2), 'conv1/bn', 'conv1/relu');
  x = tf.layers.zeroPadding2d({ name: 'zero_padding2d_1', padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ name: 'pool1', poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  DENSE_BLOCKS.forEach((blocks, d) => {
    const stage = d + 2;
    for (let i = 1; i <= blocks; i++) x = b.convBlock(x, `conv${stage}_block${i}`);
    if (d < DENSE_BLOCKS.length - 1) x = b.transition(x, `pool${stage}`);
  });
  x = b.bnRelu(x, 'bn', 'relu');
  const model = tf.model({ inputs: input, outputs: x, name: 'densenet121' });
  return {
    name: 'densenet121',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('torch', x01),
    preprocessing: 'torch',
    blockStarts: blockStartsByName(model, denseNet121BlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
