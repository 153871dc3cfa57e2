import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { SeededInitializers } from './seeded-initializers.js';

// Keras' BatchNormalization defaults, which keras.applications.mobilenet keeps.
const BN_EPSILON = 1e-3;
const BN_MOMENTUM = 0.99;
const STEM_FILTERS = 32;

/** Depthwise-separable blocks 1..13: pointwise filters and depthwise stride (alpha 1.0). */
const BLOCKS: ReadonlyArray<{ filters: number; stride: number }> = [
  { filters: 64, stride: 1 },
  { filters: 128, stride: 2 },
  { filters: 128, stride: 1 },
  { filters: 256, stride: 2 },
  { filters: 256, stride: 1 },
  { filters: 512, stride: 2 },
  { filters: 512, stride: 1 },
  { filters: 512, stride: 1 },
  { filters: 512, stride: 1 },
  { filters: 512, stride: 1 },
  { filters: 512, stride: 1 },
  { filters: 1024, stride: 2 },
  { filters: 1024, stride: 1 },
];

/** `conv_pad_6`, `conv_dw_6_bn`, `conv_pw_6_relu` → `block_6`; `conv1*` → `stem`. */
export function mobileNetBlockOf(layerName: string): string {
  const m = /^conv_(?:pad|dw|pw)_(\d+)/.exec(layerName);
  return m ? `block_${m[1]}` : 'stem';
}

class MobileNetBuilder {
  private readonly init: SeededInitializers;

  constructor(seed: number) {
    this.init = new SeededInitializers(seed);
  }

  bnRelu6(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    const h = tf.layers.batchNormalization({ name: `${name}_bn`, axis: 3, epsilon: BN_EPSILON, momentum: BN_MOMENTUM }).apply(x);
    return tf.layers.reLU({ name: `${name}_relu`, maxValue: 6 }).apply(h) as tf.SymbolicTensor;
  }

  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides: number): tf.SymbolicTensor {
    const h = tf.layers
      .conv2d({ name, filters, kernelSize, strides, padding: 'same', useBias: false, kernelInitializer: this.init.glorotUniform() })
      .apply(x) as tf.SymbolicTensor;
    return this.bnRelu6(h, name);
  }

  /** Keras `_depthwise_conv_block`: [pad] → depthwise 3×3 → BN → ReLU6 → pointwise 1×1 → BN → ReLU6. */
  block(x: tf.SymbolicTensor, id: number, filters: number, stride: number): tf.SymbolicTensor {
    let h = x;
    // Keras pads bottom/right by one and convolves 'valid' at stride 2 (TF's own 'same' would pad differently at odd sizes).
    if (stride !== 1) h = tf.layers.zeroPadding2d({ name: `conv_pad_${id}`, padding: [[0, 1], [0, 1]] }).apply(h) as tf.SymbolicTensor;
    h = tf.layers
      .depthwiseConv2d({
        name: `conv_dw_${id}`,
        kernelSize: 3,
        strides: stride,
        padding: stride === 1 ? 'same' : 'valid',
        depthMultiplier: 1,
        useBias: false,
        depthwiseInitializer: this.init.glorotUniform(),
      })
      .apply(h) as tf.SymbolicTensor;
    h = this.bnRelu6(h, `conv_dw_${id}`);
    return this.conv(h, `conv_pw_${id}`, filters, 1, 1);
  }
}

/**
 * Keras `MobileNet(alpha=1.0, depth_multiplier=1, include_top=False,
 * weights=None)` (layer names as in keras.applications.mobilenet), ending at
 * `conv_pw_13_relu`, with seeded glorot-uniform kernels. 3,228,864 parameters
 * at any size.
 */
export function buildMobileNet(size: number, seed: number): Backbone {
  const b = new MobileNetBuilder(seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = b.conv(input, 'conv1', STEM_FILTERS, 3, 2);
  BLOCKS.forEach(({ filters, stride }, i) => {
    x = b.block(x, i + 1, filters, stride);
  });
  const model = tf.model({ inputs: input, outputs: x, name: `mobilenet_1.00_${size}` });
  return {
    name: 'mobilenet',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('tf', x01),
    preprocessing: 'tf',
    blockStarts: blockStartsByName(model, mobileNetBlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
