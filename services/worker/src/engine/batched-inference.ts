import * as tf from '@tensorflow/tfjs';

/** How to push images through a frozen model (or part of one) once. */
export interface BatchOptions {
  batchSize: number;
  /** Resize images to this [H, W] first when they differ. */
  inputSize?: [number, number];
  /** Applied to each batch before the model (e.g. Backbone.preprocess). */
  preprocess?: (x: tf.Tensor4D) => tf.Tensor4D;
  /** Transforms images start..start+n−1 before anything else (training-split augmentation). @default none */
  augment?: (batch: tf.Tensor4D, start: number) => tf.Tensor4D;
  /** Global-average-pool a [n, H, W, C] output to [n, C]. @default false */
  pool?: boolean;
}

/** Lets timers and sockets run (lease heartbeats, gRPC) between synchronous kernel runs. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `f` over `x` in batches and concatenates the outputs: frozen layers
 * are computed once per trial instead of once per epoch. Pooling per batch
 * keeps only [n, C] alive for pooled features. Yields to the event loop
 * after every batch: a long synchronous stretch would starve the trial's
 * `working()` heartbeats and let its lease lapse. The caller owns the
 * result; `x` is left alone.
 */
export async function mapInBatches(x: tf.Tensor4D, opts: BatchOptions, f: (batch: tf.Tensor4D) => tf.Tensor): Promise<tf.Tensor> {
  const n = x.shape[0];
  const parts: tf.Tensor[] = [];
  try {
    for (let start = 0; start < n; start += opts.batchSize) {
      const size = Math.min(opts.batchSize, n - start);
      parts.push(
        tf.tidy(() => {
          let batch: tf.Tensor4D = x.slice([start, 0, 0, 0], [size, -1, -1, -1]);
          if (opts.augment) batch = opts.augment(batch, start);
          const target = opts.inputSize;
          if (target && (batch.shape[1] !== target[0] || batch.shape[2] !== target[1])) {
            batch = tf.image.resizeBilinear(batch, target);
          }
          if (opts.preprocess) batch = opts.preprocess(batch);
          const out = f(batch);
          return opts.pool ? tf.mean(out, [1, 2]) : out;
        }),
      );
      await yieldToEventLoop();
    }
    return parts.length === 1 ? parts[0].clone() : tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

/** {@link mapInBatches} with `model.predict` (inference mode). */
export function predictInBatches(model: tf.LayersModel, x: tf.Tensor4D, opts: BatchOptions): Promise<tf.Tensor> {
  return mapInBatches(x, opts, (batch) => model.predict(batch, { batchSize: batch.shape[0] }) as tf.Tensor);
}
