import * as tf from '@tensorflow/tfjs';
import { applyPreprocessing } from '../preprocess.js';
import type { Backbone } from './backbone.js';
import { blockStartsByName } from './blocks.js';
import { correctPad } from './correct-pad.js';
import { KerasNormalization } from './keras-normalization.js';
import { SeedSequence } from './seed-sequence.js';

type T = tf.SymbolicTensor;

/** One stage of Keras' DEFAULT_BLOCKS_ARGS (EfficientNetB0: width and depth coefficients 1). */
interface StageArgs {
  kernelSize: number;
  repeats: number;
  filtersIn: number;
  filtersOut: number;
  expandRatio: number;
  strides: number;
}

const STAGES: readonly StageArgs[] = [
  { kernelSize: 3, repeats: 1, filtersIn: 32, filtersOut: 16, expandRatio: 1, strides: 1 },
  { kernelSize: 3, repeats: 2, filtersIn: 16, filtersOut: 24, expandRatio: 6, strides: 2 },
  { kernelSize: 5, repeats: 2, filtersIn: 24, filtersOut: 40, expandRatio: 6, strides: 2 },
  { kernelSize: 3, repeats: 3, filtersIn: 40, filtersOut: 80, expandRatio: 6, strides: 2 },
  { kernelSize: 5, repeats: 3, filtersIn: 80, filtersOut: 112, expandRatio: 6, strides: 1 },
  { kernelSize: 5, repeats: 4, filtersIn: 112, filtersOut: 192, expandRatio: 6, strides: 2 },
  { kernelSize: 3, repeats: 1, filtersIn: 192, filtersOut: 320, expandRatio: 6, strides: 1 },
];
const SE_RATIO = 0.25;
const DROP_CONNECT_RATE = 0.2;
const STEM_FILTERS = 32;
const TOP_FILTERS = 1280;

/** Builds layers as Keras' efficientnet.py does, each initializer with its own seed. */
class EfficientNetBuilder {
  constructor(private readonly seeds: SeedSequence) {}

  /** Keras CONV_KERNEL_INITIALIZER: VarianceScaling(2.0, fan_out, truncated normal). */
  private kernelInit(): ReturnType<typeof tf.initializers.varianceScaling> {
    return tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'truncatedNormal', seed: this.seeds.next() });
  }

  conv(x: T, name: string, filters: number, opts: { kernelSize?: number; strides?: number; padding?: 'same' | 'valid'; bias?: boolean; activation?: 'swish' | 'sigmoid' } = {}): T {
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize: opts.kernelSize ?? 1,
        strides: opts.strides ?? 1,
        padding: opts.padding ?? 'same',
        useBias: opts.bias ?? false,
        activation: opts.activation,
        kernelInitializer: this.kernelInit(),
      })
      .apply(x) as T;
  }

  bnSwish(x: T, bnName: string, activationName?: string): T {
    const y = tf.layers.batchNormalization({ name: bnName, axis: 3 }).apply(x) as T;
    return activationName ? (tf.layers.activation({ name: activationName, activation: 'swish' }).apply(y) as T) : y;
  }

  /** Keras `correct_pad` zero padding before a stride-2 'valid' convolution. */
  pad(x: T, name: string, kernelSize: number): T {
    return tf.layers.zeroPadding2d({ name, padding: correctPad(x.shape[1] as number, kernelSize) }).apply(x) as T;
  }

  /** Keras `block`: inverted residual with squeeze-and-excitation and drop-connect. */
  block(inputs: T, name: string, a: StageArgs, dropRate: number): T {
    const filters = a.filtersIn * a.expandRatio;
    let x = inputs;
    if (a.expandRatio !== 1) {
      x = this.conv(x, `${name}expand_conv`, filters);
      x = this.bnSwish(x, `${name}expand_bn`, `${name}expand_activation`);
    }
    let padding: 'same' | 'valid' = 'same';
    if (a.strides === 2) {
      x = this.pad(x, `${name}dwconv_pad`, a.kernelSize);
      padding = 'valid';
    }
    x = tf.layers
      .depthwiseConv2d({
        name: `${name}dwconv`,
        kernelSize: a.kernelSize,
        strides: a.strides,
        padding,
        useBias: false,
        depthwiseInitializer: this.kernelInit(),
      })
      .apply(x) as T;
    x = this.bnSwish(x, `${name}bn`, `${name}activation`);

    const filtersSe = Math.max(1, Math.floor(a.filtersIn * SE_RATIO));
    let se = tf.layers.globalAveragePooling2d({ name: `${name}se_squeeze` }).apply(x) as T;
    se = tf.layers.reshape({ name: `${name}se_reshape`, targetShape: [1, 1, filters] }).apply(se) as T;
    se = this.conv(se, `${name}se_reduce`, filtersSe, { bias: true, activation: 'swish' });
    se = this.conv(se, `${name}se_expand`, filters, { bias: true, activation: 'sigmoid' });
    x = tf.layers.multiply({ name: `${name}se_excite` }).apply([x, se]) as T;

    x = this.conv(x, `${name}project_conv`, a.filtersOut);
    x = this.bnSwish(x, `${name}project_bn`);
    if (a.strides === 1 && a.filtersIn === a.filtersOut) {
      if (dropRate > 0) {
        // Drop-connect: drops whole samples of the residual branch (noise shape [batch, 1, 1, 1]).
        x = tf.layers.dropout({ name: `${name}drop`, rate: dropRate, noiseShape: [null as unknown as number, 1, 1, 1] }).apply(x) as T;
      }
      x = tf.layers.add({ name: `${name}add` }).apply([x, inputs]) as T;
    }
    return x;
  }
}

/** Keras EfficientNet naming: stem, `blockNx_*`, top. */
function efficientNetBlockOf(layerName: string): string {
  const m = /^(block\d+[a-z])_/.exec(layerName);
  if (m) return m[1];
  return layerName.startsWith('top_') ? 'top' : 'stem';
}

/**
 * Keras `EfficientNetB0(include_top=False, weights=None)` (4,049,571
 * parameters, Normalization statistics included) with Keras layer names,
 * randomly initialised from `seed`. The model rescales and normalises inside,
 * so it takes pixels in 0..255 (preprocessing 'raw255').
 */
export function buildEfficientNetB0(size: number, seed: number): Backbone {
  const b = new EfficientNetBuilder(new SeedSequence(seed));
  const input = tf.input({ shape: [size, size, 3], name: 'input_layer' });
  let x = tf.layers.rescaling({ name: 'rescaling', scale: 1 / 255 }).apply(input) as T;
  x = new KerasNormalization({ name: 'normalization', axis: -1 }).apply(x) as T;
  x = b.pad(x, 'stem_conv_pad', 3);
  x = b.conv(x, 'stem_conv', STEM_FILTERS, { kernelSize: 3, strides: 2, padding: 'valid' });
  x = b.bnSwish(x, 'stem_bn', 'stem_activation');

  const totalBlocks = STAGES.reduce((n, s) => n + s.repeats, 0);
  let blockIndex = 0;
  STAGES.forEach((stage, i) => {
    for (let j = 0; j < stage.repeats; j++) {
      // Repeats after the first keep the stage's width and stride 1 (Keras mutates its args the same way).
      const args = j === 0 ? stage : { ...stage, filtersIn: stage.filtersOut, strides: 1 };
      const name = `block${i + 1}${String.fromCharCode(97 + j)}_`;
      x = b.block(x, name, args, (DROP_CONNECT_RATE * blockIndex) / totalBlocks);
      blockIndex += 1;
    }
  });

  x = b.conv(x, 'top_conv', TOP_FILTERS);
  x = b.bnSwish(x, 'top_bn', 'top_activation');
  const model = tf.model({ inputs: input, outputs: x, name: 'efficientnetb0' });
  return {
    name: 'efficientnet_b0',
    model,
    inputSize: [size, size],
    preprocess: (x01) => applyPreprocessing('raw255', x01),
    preprocessing: 'raw255',
    blockStarts: blockStartsByName(model, efficientNetBlockOf),
    pretrained: false,
    weightsSource: `random init (seed ${seed})`,
  };
}
