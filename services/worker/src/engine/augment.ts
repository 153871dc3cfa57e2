import * as tf from '@tensorflow/tfjs';
import { deriveSeed, mulberry32, type Rng } from '../data/prng.js';
import type { AugmentationConfig, Range } from './augment-config.js';

/** One image's drawn transform, in the spec's units. */
export interface DrawnTransform {
  /** Degrees, counter-clockwise. */
  rotation: number;
  /** Content displacement in pixels (x right, y down). */
  shiftX: number;
  shiftY: number;
  /** Keras zoom factors: > 1 zooms out. */
  zoomX: number;
  zoomY: number;
  flip: boolean;
}

const uniform = (rng: Rng, [lo, hi]: Range) => (lo === hi ? (rng(), lo) : lo + (hi - lo) * rng());

/**
 * Draws one transform per image of a pass. Every image draws the same
 * number of values in a fixed order (rotation, shift x, shift y, zoom x,
 * zoom y, flip), so image i's transform depends only on (seed, pass, i).
 */
export function drawTransforms(a: AugmentationConfig, n: number, size: [number, number], seed: number, pass: number): DrawnTransform[] {
  const rng = mulberry32(deriveSeed(seed, 'augment', pass));
  const [H, W] = size;
  const out: DrawnTransform[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      rotation: uniform(rng, a.rotation),
      shiftX: uniform(rng, a.widthShift) * W,
      shiftY: uniform(rng, a.heightShift) * H,
      zoomX: uniform(rng, a.zoom),
      zoomY: uniform(rng, a.zoom),
      flip: a.horizontalFlip && rng() < 0.5,
    });
  }
  return out;
}

/**
 * The 8 projective coefficients `tf.image.transform` wants: they map an
 * output pixel (x, y) to the input point it samples, (a0·x + a1·y + a2,
 * b0·x + b1·y + b2). Keras' order: shift, rotation and zoom about the
 * image centre, then the flip. Written as the inverse (output → input):
 * q − c = Z·R⁻¹·(F·(p − c) − t).
 */
export function transformCoefficients(d: DrawnTransform, size: [number, number]): number[] {
  const [H, W] = size;
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  const theta = (d.rotation * Math.PI) / 180;
  // Rounded so quarter turns map pixel centres exactly onto pixel centres.
  const cos = Math.round(Math.cos(theta) * 1e12) / 1e12;
  const sin = Math.round(Math.sin(theta) * 1e12) / 1e12;
  // Inverse of a counter-clockwise turn on screen (y points down): A = Z·R⁻¹.
  const a00 = d.zoomX * cos;
  const a01 = -d.zoomX * sin;
  const a10 = d.zoomY * sin;
  const a11 = d.zoomY * cos;
  const f = d.flip ? -1 : 1;
  // q = c + A·F·(p − c) − A·t
  const a0 = a00 * f;
  const b0 = a10 * f;
  const a2 = cx - (a0 * cx + a01 * cy) - (a00 * d.shiftX + a01 * d.shiftY);
  const b2 = cy - (b0 * cx + a11 * cy) - (a10 * d.shiftX + a11 * d.shiftY);
  return [a0, a01, a2, b0, a11, b2, 0, 0];
}

/**
 * Applies drawn transforms to a batch: bilinear interpolation (Keras'
 * `interpolation_order=1`) and fill mode nearest (edge pixels repeat).
 * Call inside `tf.tidy`.
 */
export function applyTransforms(batch: tf.Tensor4D, drawn: readonly DrawnTransform[]): tf.Tensor4D {
  const size: [number, number] = [batch.shape[1], batch.shape[2]];
  if (drawn.length !== batch.shape[0]) throw new RangeError(`applyTransforms: ${drawn.length} transforms for ${batch.shape[0]} images`);
  const coefficients = drawn.map((d) => transformCoefficients(d, size));
  // tfjs 4.22's cpu Transform kernel returns from inside its batch loop: only
  // image 0 is transformed and the others come back as fill value 0. There,
  // transform one image at a time (wasm and tfjs-node are correct).
  if (tf.getBackend() === 'cpu' && drawn.length > 1) {
    const one = (i: number) => tf.image.transform(batch.slice([i, 0, 0, 0], [1, -1, -1, -1]), tf.tensor2d([coefficients[i]]), 'bilinear', 'nearest');
    return tf.concat(drawn.map((_, i) => one(i)), 0);
  }
  return tf.image.transform(batch, tf.tensor2d(coefficients, [drawn.length, 8]), 'bilinear', 'nearest');
}

/**
 * The augmenter of one pass over one split: `(batch, start)` transforms the
 * images start..start+batch−1 of the split. Deterministic in (config, seed,
 * pass, image index), whatever the batch size.
 */
export function passAugmenter(a: AugmentationConfig, n: number, size: [number, number], seed: number, pass: number): (batch: tf.Tensor4D, start: number) => tf.Tensor4D {
  const drawn = drawTransforms(a, n, size, seed, pass);
  return (batch, start) => applyTransforms(batch, drawn.slice(start, start + batch.shape[0]));
}

/** Augments every image of `x` as pass `pass` of a trial seeded `seed` would (for tests and previews). */
export function augmentImages(x: tf.Tensor4D, a: AugmentationConfig, seed: number, pass = 0): tf.Tensor4D {
  const size: [number, number] = [x.shape[1], x.shape[2]];
  return tf.tidy(() => passAugmenter(a, x.shape[0], size, seed, pass)(x, 0));
}
