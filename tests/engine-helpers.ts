import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import { mulberry32 } from '../services/worker/src/data/prng.js';

/**
 * Class k of 3 is a stripe grating at orientation k·60° (random frequency,
 * phase and colour tint, Gaussian noise): translation-invariant, so a CNN with
 * global average pooling can learn it.
 */
function stripes(k: number, size: number, rng: () => number, out: Float32Array, offset: number): void {
  const theta = (Math.PI * k) / 3;
  const freq = 3 + 2 * rng();
  const phase = 2 * Math.PI * rng();
  const tint = [0.5 + 0.5 * rng(), 0.5 + 0.5 * rng(), 0.5 + 0.5 * rng()];
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = 0.5 + 0.5 * Math.cos((2 * Math.PI * freq * (x * c + y * s)) / size + phase);
      for (let ch = 0; ch < 3; ch++) {
        const noise = 0.15 * (rng() + rng() + rng() - 1.5);
        out[offset++] = Math.min(1, Math.max(0, v * tint[ch] + noise));
      }
    }
  }
}

function split(n: number, size: number, rng: () => number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const pixels = new Float32Array(n * size * size * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    stripes(labels[i], size, rng, pixels, i * size * size * 3);
  }
  return { x: tf.tensor4d(pixels, [n, size, size, 3]), y: tf.tensor1d(labels, 'int32') };
}

/** A 3-class stripe-orientation dataset shaped like the worker's LoadedDataset. */
export function stripesDataset(opts: { train: number; val: number; test: number; size?: number; seed?: number }): LoadedDataset {
  const size = opts.size ?? 32;
  const rng = mulberry32(opts.seed ?? 1);
  return {
    classNames: ['deg0', 'deg60', 'deg120'],
    train: split(opts.train, size, rng),
    val: split(opts.val, size, rng),
    test: split(opts.test, size, rng),
    skippedImages: 0,
    source: `stripes(train=${opts.train}, val=${opts.val}, test=${opts.test}, size=${size})`,
  };
}

/** Uniform random images in [0, 1] and random labels, for timing. */
export function randomDataset(opts: { train: number; val: number; test: number; size: number; classes: number; seed?: number }): LoadedDataset {
  const make = (n: number, seed: number) => ({
    x: tf.randomUniform([n, opts.size, opts.size, 3], 0, 1, 'float32', seed) as tf.Tensor4D,
    y: tf.randomUniform([n], 0, opts.classes, 'int32', seed + 1) as tf.Tensor1D,
  });
  const seed = opts.seed ?? 1;
  return {
    classNames: Array.from({ length: opts.classes }, (_, k) => `class_${k}`),
    train: make(opts.train, seed * 10 + 1),
    val: make(opts.val, seed * 10 + 3),
    test: make(opts.test, seed * 10 + 5),
    skippedImages: 0,
    source: `random(${opts.train}/${opts.val}/${opts.test}, size=${opts.size})`,
  };
}

export function disposeData(d: LoadedDataset): void {
  tf.dispose([d.train.x, d.train.y, d.val.x, d.val.y, d.test.x, d.test.y]);
}

/** Copies of every weight of `layers`, keyed by layer name and weight index. */
export function snapshotWeights(layers: readonly tf.layers.Layer[]): Map<string, Float32Array[]> {
  const snap = new Map<string, Float32Array[]>();
  for (const layer of layers) {
    snap.set(
      layer.name,
      layer.weights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array)),
    );
  }
  return snap;
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}
