import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { SeededInitializers } from './seeded-initializers.js';

/** Filters of the 3×3 convolutions in each of the five blocks. */
const BLOCKS: ReadonlyArray<readonly number[]> = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];

/** `block3_conv2` → `block3`. */
export function vgg16BlockOf(layerName: string): string {
  return /^(block\d+)_/.exec(layerName)?.[1] ?? layerName;
}

/**
 * Keras `VGG16(include_top=False, weights=None)` (layer names as in
 * keras.applications.vgg16), ending at `block5_pool`, with seeded
 * glorot-uniform kernels and zero biases. 14,714,688 parameters at any size.
 */
export function buildVgg16(size: number, seed: number): Backbone {
  const init = new SeededInitializers(seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = input;
  BLOCKS.forEach((filters, b) => {
    filters.forEach((f, c) => {
      x = tf.layers
        .conv2d({
          name: `block${b + 1}_conv${c + 1}`,
          filters: f,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: init.glorotUniform(),
        })
        .apply(x) as tf.SymbolicTensor;
    });
    x = tf.layers.maxPooling2d({ name: `block${b + 1}_pool`, poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
  });
  const model = tf.model({ inputs: input, outputs: x, name: 'vgg16' });
  return {
    name: 'vgg16',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('caffe', x01),
    preprocessing: 'caffe',
    blockStarts: blockStartsByName(model, vgg16BlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
