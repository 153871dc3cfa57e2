import * as tf from '@tensorflow/tfjs';

// Keras backend.epsilon(): guards the division when a channel's variance is 0.
const EPSILON = 1e-7;

/**
 * Keras' `Normalization` preprocessing layer over the last axis, inference
 * only: (x − mean) / max(√variance, ε). tfjs has no such layer. Its weights
 * carry Keras' names and shapes (`mean` [C], `variance` [C], `count` [] int),
 * none trainable, so Keras-converted EfficientNet weights load into it by name.
 * Registered for (de)serialisation as class 'Normalization'.
 */
export class KerasNormalization extends tf.layers.Layer {
  static readonly className = 'Normalization';
  private mean?: tf.LayerVariable;
  private variance?: tf.LayerVariable;

  constructor(args: { name?: string; axis?: number } = {}) {
    super(args);
    if (args.axis !== undefined && args.axis !== -1 && args.axis !== 3) {
      throw new Error(`KerasNormalization supports only the channel axis (-1 or 3); got ${args.axis}`);
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (channels == null) throw new Error(`layer '${this.name}' needs a known channel count`);
    this.mean = this.addWeight('mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.variance = this.addWeight('variance', [channels], 'float32', tf.initializers.ones(), undefined, false);
    this.addWeight('count', [], 'int32', tf.initializers.zeros(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const mean = (this.mean as tf.LayerVariable).read();
      const std = tf.maximum(tf.sqrt((this.variance as tf.LayerVariable).read()), EPSILON);
      return x.sub(mean).div(std);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), axis: -1 };
  }
}

tf.serialization.registerClass(KerasNormalization);
