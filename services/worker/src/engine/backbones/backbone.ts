import type * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from '../preprocess.js';
import type { WeightsAccess } from '../weights/read-weights.js';
import type { GraphBackboneSpec } from './graph-backbone-spec.js';

/** A feature extractor without a classification head. */
export interface Backbone {
  /** Registry name (see catalog.ts). */
  name: string;
  /**
   * Input [null, H, W, 3] → last feature map. Fresh weights on every load:
   * callers freeze, train and dispose it.
   */
  model: tf.LayersModel;
  /** [H, W] the model was built for. */
  inputSize: [number, number];
  /**
   * Maps images with pixels in [0, 1] to what the weights expect. May return
   * its input unchanged; call it inside `tf.tidy`.
   */
  preprocess(x01: tf.Tensor4D): tf.Tensor4D;
  /** The named mode `preprocess` implements (stored with exported models; see preprocess.ts). */
  preprocessing: PreprocessMode;
  /**
   * Index in `model.layers` of the first layer of each whole block (residual,
   * inverted-residual, dense, inception, cell), ascending; what the spec's
   * `unfreeze: { blocks: N }` counts from the top.
   */
  blockStarts: readonly number[];
  /** True when the weights were learnt on some other task. */
  pretrained: boolean;
  /** Where the weights came from, for the leaderboard. */
  weightsSource: string;
  /**
   * Set for a GraphModel backbone (graph-backbone.ts): frozen (no unfreeze
   * depth but 0), not exportable in the layers format, and its feature node
   * is part of the feature-cache key. @default absent (a LayersModel backbone)
   */
  graph?: {
    ref: string;
    /** The full name of the node the features come from. */
    output: string;
    /** sha256 of the topology and weights. */
    sha256: string;
  };
}

/** Options for {@link loadBackbone}. */
export interface BackboneOptions {
  /** Square input size in pixels. @default the backbone's own default (catalog.ts: 96 for mobilenet_v2, 32 for tiny_cnn, 224 for the Keras applications) */
  imageSize?: number;
  /** Seed for randomly initialised weights (tiny_cnn, efficientnet_b0, nasnet_mobile, and `weights: 'none'`). @default 0 */
  seed?: number;
  /**
   * 'bundled': the weights tlsweep ships for the backbone, if any (nsfwjs for
   * mobilenet_v2 and inception_v3); 'none': the architecture built in code,
   * randomly initialised from `seed` (inception_v3; backbones without bundled
   * weights are always random). @default 'bundled'
   */
  weights?: BackboneWeights;
  /**
   * A tfjs layers-format model whose weights then replace every weight of the
   * backbone, matched by `<layer>/<weight>` name (forms: weights/weights-ref.ts);
   * the backbone is built as `weights` says first. @default none: the backbone's own weights
   */
  weightsRef?: string;
  /** How `objstore:` weights refs are reached (the worker's NATS connection). @default none */
  weightsAccess?: WeightsAccess;
  /** Required for a `graph:` backbone name: the GraphModel to load (graph-backbone-spec.ts). @default none */
  graph?: GraphBackboneSpec;
}

/** Which weights {@link BackboneOptions} asks for. */
export type BackboneWeights = 'bundled' | 'none';
