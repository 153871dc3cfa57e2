import * as tf from '@tensorflow/tfjs';

/**
 * Hands out Keras' default kernel initializer (glorot_uniform, what
 * `weights=None` gives in keras.applications) with a distinct seed per
 * weight, so two builds with one seed get identical weights.
 */
export class SeededInitializers {
  private count = 0;

  constructor(private readonly seed: number) {}

  // tfjs treats a seed of 0 as "unseeded"; the +1 avoids it. The multiplier
  // exceeds any backbone's weight count, so seeds never share a stream.
  private nextSeed(): number {
    this.count += 1;
    return this.seed * 10_007 + this.count;
  }

  glorotUniform(): ReturnType<typeof tf.initializers.glorotUniform> {
    return tf.initializers.glorotUniform({ seed: this.nextSeed() });
  }
}
