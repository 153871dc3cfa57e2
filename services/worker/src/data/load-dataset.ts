import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { DatasetSpec, SplitOptions } from './dataset-spec.js';
import { DatasetError } from './errors.js';
import { DEFAULT_FASHION_MNIST_DIR, DEFAULT_FASHION_MNIST_PER_CLASS, loadFashionMnistRaw } from './fashion-mnist.js';
import { folderStamp, loadImageFolderRaw } from './image-folder.js';
import { presplitIndices, stratifiedSplit, validateSplitOptions, type Presplit } from './split.js';
import {
  DEFAULT_SYNTHETIC_CLASSES,
  DEFAULT_SYNTHETIC_PER_CLASS,
  DEFAULT_SYNTHETIC_SEED,
  generateSyntheticRaw,
} from './synthetic.js';

/** One split as tensors. The caller owns (and must dispose) them. */
export interface DatasetSplit {
  /** [n, H, W, 3] float32 in [0, 1]. */
  x: tf.Tensor4D;
  /** [n] int32 class ids, indices into {@link LoadedDataset.classNames}. */
  y: tf.Tensor1D;
}

export interface LoadedDataset {
  /** Class id → name. */
  classNames: string[];
  train: DatasetSplit;
  val: DatasetSplit;
  test: DatasetSplit;
  /** Image files that could not be decoded and were left out (folder datasets). */
  skippedImages: number;
  /** Human-readable origin, e.g. `folder:/data/pets` or `synthetic(classes=3, ...)`. */
  source: string;
  /** SHA-256 of the files the images came from (folder datasets): part of the feature-cache key, so edited files never reuse stale features. @default absent (generated data) */
  contentDigest?: string;
}

export interface LoadDatasetOptions {
  /** Output [height, width]; every image is bilinearly resized to it. */
  imageSize: [number, number];
  split: SplitOptions;
}

/** A decoded image before resizing: row-major HWC bytes. */
export interface RawImage {
  width: number;
  height: number;
  /** 1 (grayscale, e.g. Fashion-MNIST) or 3 (RGB). */
  channels: 1 | 3;
  /** width × height × channels bytes, 0..255. */
  data: Uint8Array;
}

/** A decoded dataset before splitting and tensor creation. Treated as immutable (it may be cached). */
export interface RawDataset {
  classNames: string[];
  images: RawImage[];
  /** Class id of each image (same length as `images`). */
  labels: number[];
  skippedImages: number;
  source: string;
  /** See LoadedDataset.contentDigest. */
  contentDigest?: string;
  /** Set when the source fixes the split (Fashion-MNIST `test: official`); else it is drawn by stratifiedSplit. */
  presplit?: Presplit;
}

const KINDS = ['fashion-mnist', 'folder', 'synthetic'] as const;

function badKind(spec: unknown): DatasetError {
  const kind = typeof spec === 'object' && spec !== null ? (spec as { kind?: unknown }).kind : spec;
  return new DatasetError(
    'DATASET_INVALID',
    `dataset.kind: expected one of ${KINDS.map((k) => `'${k}'`).join(', ')}, got ${JSON.stringify(kind)}`,
  );
}

/** Reads/decodes (or generates) the images of `spec`, without splitting or resizing. */
export async function loadRawDataset(spec: DatasetSpec): Promise<RawDataset> {
  switch (spec?.kind) {
    case 'fashion-mnist':
      return loadFashionMnistRaw(spec);
    case 'folder':
      return loadImageFolderRaw(spec);
    case 'synthetic':
      return generateSyntheticRaw(spec);
    default:
      throw badKind(spec);
  }
}

function validateImageSize(size: unknown): [number, number] {
  if (
    !Array.isArray(size) ||
    size.length !== 2 ||
    !size.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 4096)
  ) {
    throw new DatasetError('DATASET_INVALID', `imageSize: expected [height, width], integers in 1..4096, got ${JSON.stringify(size)}`);
  }
  return [size[0], size[1]];
}

/** Bytes of float32 output per resize chunk; bounds peak memory independent of dataset size. */
const CHUNK_BYTES = 64 * 1024 * 1024;
const MAX_CHUNK_IMAGES = 256;

/**
 * Builds one split's tensors from raw images: per chunk (≤ 256 images and
 * ≤ 64 MiB of output), runs of same-sized images are stacked, scaled to
 * [0, 1], resized with half-pixel-centre bilinear interpolation (as TF2's
 * `tf.image.resize`), grayscale is tiled to 3 channels, and the result is
 * copied into one preallocated buffer. Peak memory ≈ output + one chunk.
 */
export function materializeSplit(raw: RawDataset, indices: readonly number[], imageSize: [number, number]): DatasetSplit {
  const [H, W] = imageSize;
  const per = H * W * 3;
  const n = indices.length;
  const out = new Float32Array(n * per);
  const chunk = Math.max(1, Math.min(MAX_CHUNK_IMAGES, Math.floor(CHUNK_BYTES / (per * 4))));
  let i = 0;
  while (i < n) {
    const first = raw.images[indices[i]];
    let j = i + 1;
    while (j < n && j - i < chunk) {
      const im = raw.images[indices[j]];
      if (im.width !== first.width || im.height !== first.height || im.channels !== first.channels) break;
      j++;
    }
    const { width: w, height: h, channels: c } = first;
    const m = j - i;
    const px = w * h * c;
    const buf = new Float32Array(m * px);
    for (let k = 0; k < m; k++) {
      const src = raw.images[indices[i + k]].data;
      const off = k * px;
      for (let p = 0; p < px; p++) buf[off + p] = src[p] / 255;
    }
    const t = tf.tidy(() => {
      let x: tf.Tensor4D = tf.tensor4d(buf, [m, h, w, c], 'float32');
      if (h !== H || w !== W) x = tf.clipByValue(tf.image.resizeBilinear(x, [H, W], false, true), 0, 1);
      return x;
    });
    try {
      const values = t.dataSync() as Float32Array;
      if (c === 3) {
        out.set(values, i * per);
      } else {
        // Grayscale to 3 channels here, not with tf.tile: wasm's Tile took ~300 ms per 256 images at 64 px
        // (most of a 21,000-image dataset's 33 s load); this loop takes a few.
        const base = i * per;
        for (let p = 0, q = base; p < values.length; p++, q += 3) out[q] = out[q + 1] = out[q + 2] = values[p];
      }
    } finally {
      t.dispose();
    }
    i = j;
  }
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) labels[k] = raw.labels[indices[k]];
  return {
    x: tf.tensor4d(out, [n, H, W, 3], 'float32'),
    y: tf.tensor1d(labels, 'int32'),
  };
}

/** Splits (stratified, seeded) and materializes a raw dataset. Does not modify `raw`. */
export function materializeDataset(raw: RawDataset, opts: LoadDatasetOptions): LoadedDataset {
  const imageSize = validateImageSize(opts.imageSize);
  const idx = raw.presplit ? presplitIndices(raw.presplit, opts.split) : stratifiedSplit(raw.labels, raw.classNames.length, opts.split);
  const made: DatasetSplit[] = [];
  try {
    for (const part of [idx.train, idx.val, idx.test]) made.push(materializeSplit(raw, part, imageSize));
  } catch (e) {
    for (const s of made) tf.dispose([s.x, s.y]);
    throw e;
  }
  return {
    classNames: [...raw.classNames],
    train: made[0],
    val: made[1],
    test: made[2],
    skippedImages: raw.skippedImages,
    source: raw.source,
    ...(raw.contentDigest ? { contentDigest: raw.contentDigest } : {}),
  };
}

/**
 * Loads `spec` and returns stratified train/val/test tensors:
 * x `[n, H, W, 3]` float32 in [0, 1] (backbone-specific preprocessing is the
 * engine's job), y `[n]` int32. Release with {@link disposeDataset}.
 *
 * @throws DatasetError (never retryable) for missing paths, malformed specs
 *   or files, and classes without readable images.
 */
export async function loadDataset(spec: DatasetSpec, opts: LoadDatasetOptions): Promise<LoadedDataset> {
  validateImageSize(opts?.imageSize);
  validateSplitOptions(opts.split);
  const raw = await loadRawDataset(spec);
  return materializeDataset(raw, opts);
}

/** Disposes every tensor of `d`. Safe to call twice. */
export function disposeDataset(d: LoadedDataset): void {
  tf.dispose([d.train.x, d.train.y, d.val.x, d.val.y, d.test.x, d.test.y]);
}

// ---------------------------------------------------------------------------
// Raw-image cache: a worker runs many trials on the same dataset.

function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v as object)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * Stable cache key of a spec: defaults filled in, folder paths made absolute,
 * keys sorted — so `{kind:'synthetic'}` and `{seed:0, kind:'synthetic'}` match.
 */
export function datasetCacheKey(spec: DatasetSpec): string {
  switch (spec?.kind) {
    case 'fashion-mnist':
      return sortedJson({
        ...spec,
        dir: resolve(spec.dir ?? DEFAULT_FASHION_MNIST_DIR),
        perClass: spec.perClass ?? DEFAULT_FASHION_MNIST_PER_CLASS,
        // Absent and the default 'split' load the same images: one key.
        test: spec.test === 'split' ? undefined : spec.test,
      });
    case 'folder':
      return sortedJson({ ...spec, path: typeof spec.path === 'string' ? resolve(spec.path) : spec.path });
    case 'synthetic':
      return sortedJson({
        ...spec,
        classes: spec.classes ?? DEFAULT_SYNTHETIC_CLASSES,
        perClass: spec.perClass ?? DEFAULT_SYNTHETIC_PER_CLASS,
        seed: spec.seed ?? DEFAULT_SYNTHETIC_SEED,
      });
    default:
      throw badKind(spec);
  }
}

export interface DatasetCacheOptions {
  /** Most specs kept. @default 3 */
  maxEntries: number;
  /** Most decoded bytes kept over all entries; a dataset larger than this is not cached. @default 1 GiB */
  maxBytes: number;
}

interface CacheEntry {
  promise: Promise<RawDataset>;
  bytes: number; // 0 until resolved
  /** folderStamp() at load time (folder datasets); '' otherwise. */
  stamp: string;
}

const cacheConfig: DatasetCacheOptions = { maxEntries: 3, maxBytes: 1024 * 1024 * 1024 };
/** Insertion order = recency (oldest first). */
const cache = new Map<string, CacheEntry>();

function rawBytes(raw: RawDataset): number {
  let b = 0;
  for (const im of raw.images) b += im.data.byteLength + 64;
  return b;
}

function evict(): void {
  let total = 0;
  for (const e of cache.values()) total += e.bytes;
  for (const [k, e] of cache) {
    if (cache.size <= cacheConfig.maxEntries && total <= cacheConfig.maxBytes) break;
    cache.delete(k);
    total -= e.bytes;
  }
}

/** Changes the raw-image cache limits (evicting as needed). */
export function configureDatasetCache(opts: Partial<DatasetCacheOptions>): void {
  if (opts.maxEntries !== undefined) cacheConfig.maxEntries = Math.max(0, Math.floor(opts.maxEntries));
  if (opts.maxBytes !== undefined) cacheConfig.maxBytes = Math.max(0, opts.maxBytes);
  evict();
}

/** Drops every cached raw dataset. */
export function clearDatasetCache(): void {
  cache.clear();
}

/** Keys and sizes of the cached raw datasets, oldest first (for tests and diagnostics). */
export function datasetCacheStats(): { entries: number; bytes: number; keys: string[] } {
  let bytes = 0;
  for (const e of cache.values()) bytes += e.bytes;
  return { entries: cache.size, bytes, keys: [...cache.keys()] };
}

/**
 * Like {@link loadRawDataset}, but keeps the decoded images of the last few
 * specs (LRU by {@link datasetCacheKey}; see {@link configureDatasetCache}).
 * Concurrent calls for one spec share one load; failures are not cached.
 * A folder whose files changed since (folderStamp: paths, sizes, mtimes) is loaded again.
 */
export async function loadRawDatasetCached(spec: DatasetSpec): Promise<RawDataset> {
  const key = datasetCacheKey(spec);
  const stamp = spec?.kind === 'folder' && typeof spec.path === 'string' ? await folderStamp(spec.path) : '';
  const hit = cache.get(key);
  if (hit && hit.stamp === stamp) {
    cache.delete(key);
    cache.set(key, hit);
    return hit.promise;
  }
  if (hit) cache.delete(key);
  const entry: CacheEntry = { promise: loadRawDataset(spec), bytes: 0, stamp };
  if (cacheConfig.maxEntries > 0) cache.set(key, entry);
  try {
    const raw = await entry.promise;
    if (cache.get(key) === entry) {
      entry.bytes = rawBytes(raw);
      if (entry.bytes > cacheConfig.maxBytes) cache.delete(key);
      evict();
    }
    return raw;
  } catch (e) {
    if (cache.get(key) === entry) cache.delete(key);
    throw e;
  }
}

/**
 * {@link loadDataset} for workers that run many trials: the decoded raw
 * images are cached (not tensors), so a repeated spec skips file I/O and
 * decoding. Tensors are created fresh on every call; the caller disposes them.
 */
export async function loadDatasetCached(spec: DatasetSpec, opts: LoadDatasetOptions): Promise<LoadedDataset> {
  validateImageSize(opts?.imageSize);
  validateSplitOptions(opts.split);
  const raw = await loadRawDatasetCached(spec);
  return materializeDataset(raw, opts);
}
