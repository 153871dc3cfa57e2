import * as tf from '@tensorflow/tfjs';
import type { Backbone } from './backbone.js';
import { blockStartsByName, mobileNetV2BlockOf } from './blocks.js';


const STEM_FILTERS = 8;
const EXPANSION = 3;
const BLOCK_2_FILTERS = 16;
const LAST_FILTERS = 32;

/**
 * Builds layers with Keras MobileNetV2 names and a distinct seed per
 * initializer, so two loads with one seed give identical weights.
 */
class SeededBuilder {
  private next = 0;
  constructor(private readonly seed: number) {}

  // tfjs treats a seed of 0 as "unseeded" in its normal generators.
  private nextSeed(): number {
    this.next += 1;
    return this.seed * 1009 + this.next;
  }

  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides = 1): tf.SymbolicTensor {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize,
        strides,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: this.nextSeed() }),
      })
      .apply(x) as tf.SymbolicTensor;
  }

  depthwise(x: tf.SymbolicTensor, name: string, strides: number): tf.SymbolicTensor {
    return tf.layers
      .depthwiseConv2d({
        name,
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: false,
        depthwiseInitializer: tf.initializers.heNormal({ seed: this.nextSeed() }),
      })
      .apply(x) as tf.SymbolicTensor;
  }

  bn(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.batchNormalization({ name, momentum: 0.999, epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  }

  relu6(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.reLU({ name, maxValue: 6 }).apply(x) as tf.SymbolicTensor;
  }

  /** MobileNetV2 inverted residual: expand 1×1 → depthwise 3×3 → project 1×1 (+ add when shapes allow). */
  invertedResidual(x: tf.SymbolicTensor, block: string, outFilters: number, strides: number): tf.SymbolicTensor {
    const inFilters = x.shape[3] as number;
    let h = this.conv(x, `${block}_expand`, inFilters * EXPANSION, 1);
    h = this.bn(h, `${block}_expand_BN`);
    h = this.relu6(h, `${block}_expand_relu`);
    h = this.depthwise(h, `${block}_depthwise`, strides);
    h = this.bn(h, `${block}_depthwise_BN`);
    h = this.relu6(h, `${block}_depthwise_relu`);
    h = this.conv(h, `${block}_project`, outFilters, 1);
    h = this.bn(h, `${block}_project_BN`);
    if (strides === 1 && inFilters === outFilters) {
      h = tf.layers.add({ name: `${block}_add` }).apply([x, h]) as tf.SymbolicTensor;
    }
    return h;
  }
}

/**
 * A randomly initialised MobileNetV2 in miniature (24 layers, ~12 k
 * parameters): fast enough on the cpu backend for tests, with the same kinds
 * of layers, a residual Add, and Keras-style names.
 */
export function buildTinyCnn(size: number, seed: number): Backbone {
  const b = new SeededBuilder(seed);
  const input = tf.input({ shape: [size, size, 3], name: 'input_1' });
  let x = b.conv(input, 'Conv1', STEM_FILTERS, 3, 2);
  x = b.bn(x, 'bn_Conv1');
  x = b.relu6(x, 'Conv1_relu');
  x = b.invertedResidual(x, 'block_1', STEM_FILTERS, 1);
  x = b.invertedResidual(x, 'block_2', BLOCK_2_FILTERS, 2);
  x = b.conv(x, 'Conv_1', LAST_FILTERS, 1);
  x = b.bn(x, 'Conv_1_bn');
  x = b.relu6(x, 'out_relu');
  const model = tf.model({ inputs: input, outputs: x, name: 'tiny_cnn' });
  return {
    name: 'tiny_cnn',
    model,
    inputSize: [size, size],
    preprocess: (x01) => x01,
    preprocessing: 'unit',
    blockStarts: blockStartsByName(model, mobileNetV2BlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
