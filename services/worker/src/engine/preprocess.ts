import * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from './preprocess-modes.js';

/** How a backbone's weights expect their input, from images with pixels in [0, 1]: the modes of preprocess-modes.ts. */
export { PREPROCESS_MODES, type PreprocessMode } from './preprocess-modes.js';

const IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406];
const IMAGENET_STD_RGB = [0.229, 0.224, 0.225];
// Keras imagenet_utils caffe mode: BGR means on the 0..255 scale.
const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68];

/** Maps `x01` ([n, H, W, 3], pixels in [0, 1]) as `mode` says. Call inside `tf.tidy`. */
export function applyPreprocessing(mode: PreprocessMode, x01: tf.Tensor4D): tf.Tensor4D {
  switch (mode) {
    case 'unit':
      return x01;
    case 'tf':
      return x01.mul(2).sub(1);
    case 'torch':
      return x01.sub(tf.tensor1d(IMAGENET_MEAN_RGB)).div(tf.tensor1d(IMAGENET_STD_RGB));
    case 'caffe':
      return tf.reverse(x01, -1).mul(255).sub(tf.tensor1d(CAFFE_MEAN_BGR));
    case 'raw255':
      return x01.mul(255);
  }
}
