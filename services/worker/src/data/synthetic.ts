import type { SyntheticDatasetSpec } from './dataset-spec.js';
import { intField } from './errors.js';
import type { RawDataset, RawImage } from './load-dataset.js';
import { mulberry32, randNormal } from './prng.js';

/** Side of the generated square images, before resizing to the trial's image size. */
export const SYNTHETIC_IMAGE_SIZE = 32;
export const DEFAULT_SYNTHETIC_CLASSES = 3;
export const DEFAULT_SYNTHETIC_PER_CLASS = 40;
export const DEFAULT_SYNTHETIC_SEED = 0;

/**
 * Generates `classes × perClass` RGB images of 32×32 whose class a small CNN
 * learns in a few epochs. Class `k` of `K` shows
 *  - a stripe grating at orientation `π·k/K` (random frequency and phase), and
 *  - a bright blob at angle `2π·k/K` on a circle around the centre,
 * on a per-image random colour tint with Gaussian pixel noise.
 * Fully deterministic from `seed`; class names are `class_0`, `class_1`, ...
 * Output is class-major.
 *
 * @throws DatasetError DATASET_INVALID on out-of-range fields.
 */
export function generateSyntheticRaw(spec: SyntheticDatasetSpec): RawDataset {
  const classes = intField(spec.classes, 'dataset.classes', DEFAULT_SYNTHETIC_CLASSES, 2, 1000);
  const perClass = intField(spec.perClass, 'dataset.perClass', DEFAULT_SYNTHETIC_PER_CLASS, 1, 100_000);
  const seed = intField(spec.seed, 'dataset.seed', DEFAULT_SYNTHETIC_SEED, -0x80000000, 0xffffffff);
  const rng = mulberry32(seed);
  const S = SYNTHETIC_IMAGE_SIZE;
  const images: RawImage[] = [];
  const labels: number[] = [];
  for (let k = 0; k < classes; k++) {
    for (let i = 0; i < perClass; i++) {
      images.push(drawImage(k, classes, S, rng));
      labels.push(k);
    }
  }
  return {
    classNames: Array.from({ length: classes }, (_, k) => `class_${k}`),
    images,
    labels,
    skippedImages: 0,
    source: `synthetic(classes=${classes}, perClass=${perClass}, seed=${seed})`,
  };
}

function drawImage(k: number, classes: number, S: number, rng: () => number): RawImage {
  const theta = (Math.PI * k) / classes + 0.05 * randNormal(rng);
  const freq = 3 + rng(); // cycles across the image
  const phase = 2 * Math.PI * rng();
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  const blobAngle = (2 * Math.PI * k) / classes;
  const bx = S / 2 + 0.28 * S * Math.cos(blobAngle) + 1.5 * (2 * rng() - 1);
  const by = S / 2 + 0.28 * S * Math.sin(blobAngle) + 1.5 * (2 * rng() - 1);
  const blobR2 = (0.12 * S) ** 2;
  const tint = [0.5 + 0.5 * rng(), 0.5 + 0.5 * rng(), 0.5 + 0.5 * rng()];
  const data = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const stripe = 0.5 + 0.5 * Math.cos((2 * Math.PI * freq * (x * c + y * s)) / S + phase);
      const d2 = (x - bx) ** 2 + (y - by) ** 2;
      const blob = Math.exp(-d2 / (2 * blobR2));
      for (let ch = 0; ch < 3; ch++) {
        const v = 0.1 + 0.4 * stripe * tint[ch] + 0.5 * blob + 0.05 * randNormal(rng);
        data[(y * S + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v * 255)));
      }
    }
  }
  return { width: S, height: S, channels: 3, data };
}
