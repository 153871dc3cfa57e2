import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { FashionMnistDatasetSpec } from './dataset-spec.js';
import { assertDirectory, DatasetError, intField, isErrno } from './errors.js';
import type { RawDataset, RawImage } from './load-dataset.js';
import { deriveSeed, mulberry32, randInt } from './prng.js';

const gunzipAsync = promisify(gunzip);

/** Where Debian's `dataset-fashion-mnist` package puts the IDX files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** @see FashionMnistDatasetSpec.perClass */
export const DEFAULT_FASHION_MNIST_PER_CLASS = 100;

/** Class names, indexed by the label stored in the IDX label file. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Base names (without `.gz`) of the official training files. */
export const FASHION_MNIST_TRAIN_FILES = {
  images: 'train-images-idx3-ubyte',
  labels: 'train-labels-idx1-ubyte',
} as const;

/** Element type codes of the IDX format (third magic byte). */
export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** A parsed IDX file: row-major `data` of shape `dims`. */
export interface IdxArray {
  dtype: IdxDType;
  dims: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const IDX_TYPES: Record<number, { dtype: IdxDType; bytes: number }> = {
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
};

/**
 * Parses an (uncompressed) IDX buffer: magic `00 00 <type> <ndims>`, then
 * `ndims` big-endian uint32 dimension sizes, then the big-endian data.
 * `uint8` data is returned as a view into `buf` (no copy).
 *
 * @param what names the source in error messages (e.g. the file path).
 * @throws DatasetError DATASET_INVALID on a bad magic, unknown type or wrong length.
 */
export function parseIdx(buf: Uint8Array, what = 'IDX data'): IdxArray {
  const invalid = (msg: string) => new DatasetError('DATASET_INVALID', `${what}: ${msg}`);
  if (buf.length < 4) throw invalid(`expected an IDX file (>= 4 header bytes), got ${buf.length} bytes`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    throw invalid(`expected IDX magic 00 00 <type> <ndims>, got ${hex(buf.subarray(0, 4))}`);
  }
  const type = IDX_TYPES[buf[2]];
  if (!type) throw invalid(`unknown IDX element type 0x${buf[2].toString(16).padStart(2, '0')}`);
  const ndims = buf[3];
  const headerLen = 4 + 4 * ndims;
  if (ndims === 0) throw invalid('expected at least 1 dimension, got 0');
  if (buf.length < headerLen) throw invalid(`truncated header: ${ndims} dimensions need ${headerLen} bytes, got ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerLen + count * type.bytes;
  if (buf.length !== expected) {
    throw invalid(`expected ${expected} bytes for ${type.dtype} data of shape [${dims.join(', ')}], got ${buf.length}`);
  }
  const off = headerLen;
  let data: IdxArray['data'];
  switch (type.dtype) {
    case 'uint8':
      data = buf.subarray(off, off + count);
      break;
    case 'int8':
      data = new Int8Array(buf.buffer, buf.byteOffset + off, count);
      break;
    case 'int16': {
      const a = new Int16Array(count);
      for (let i = 0; i < count; i++) a[i] = view.getInt16(off + 2 * i, false);
      data = a;
      break;
    }
    case 'int32': {
      const a = new Int32Array(count);
      for (let i = 0; i < count; i++) a[i] = view.getInt32(off + 4 * i, false);
      data = a;
      break;
    }
    case 'float32': {
      const a = new Float32Array(count);
      for (let i = 0; i < count; i++) a[i] = view.getFloat32(off + 4 * i, false);
      data = a;
      break;
    }
    case 'float64': {
      const a = new Float64Array(count);
      for (let i = 0; i < count; i++) a[i] = view.getFloat64(off + 8 * i, false);
      data = a;
      break;
    }
  }
  return { dtype: type.dtype, dims, data };
}

/**
 * Reads and parses an IDX file, gunzipping it first when it starts with the
 * gzip magic (1f 8b), whatever its extension.
 * @throws DatasetError DATASET_NOT_FOUND when missing, DATASET_INVALID when malformed.
 */
export async function readIdxFile(path: string): Promise<IdxArray> {
  let buf: Uint8Array;
  try {
    buf = await readFile(path);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw new DatasetError('DATASET_NOT_FOUND', `${path}: file does not exist`, { cause: e });
    throw new DatasetError('DATASET_INVALID', `${path}: cannot read file (${(e as Error).message})`, { cause: e });
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = await gunzipAsync(buf);
    } catch (e) {
      throw new DatasetError('DATASET_INVALID', `${path}: expected a valid gzip stream (${(e as Error).message})`, { cause: e });
    }
  }
  return parseIdx(buf, path);
}

/**
 * Finds `<base>.gz`, `<base>` or the dotted variant (`train-images.idx3-ubyte`)
 * in `dir`.
 */
async function findIdxFile(dir: string, base: string): Promise<string> {
  const dotted = base.replace(/-(idx\d)/, '.$1');
  const candidates = [`${base}.gz`, base, `${dotted}.gz`, dotted];
  for (const name of candidates) {
    const p = join(dir, name);
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      // try the next name
    }
  }
  throw new DatasetError(
    'DATASET_NOT_FOUND',
    `dataset.dir: expected ${base}.gz (or ${base}) in ${dir}, found neither ` +
      `(on Debian/Ubuntu: apt-get install dataset-fashion-mnist)`,
  );
}

/** Base names (without `.gz`) of the official test files. */
export const FASHION_MNIST_TEST_FILES = {
  images: 't10k-images-idx3-ubyte',
  labels: 't10k-labels-idx1-ubyte',
} as const;

/** One IDX image file with its label file, checked against each other. */
interface IdxImageSet {
  imagesPath: string;
  rows: number;
  cols: number;
  /** n × rows × cols bytes. */
  pixels: Uint8Array;
  labels: ArrayLike<number>;
}

async function readImageSet(dir: string, files: { images: string; labels: string }): Promise<IdxImageSet> {
  const imagesPath = await findIdxFile(dir, files.images);
  const labelsPath = await findIdxFile(dir, files.labels);
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  if (images.dtype !== 'uint8' || images.dims.length !== 3) {
    throw new DatasetError(
      'DATASET_INVALID',
      `${imagesPath}: expected uint8 images of shape [n, rows, cols], got ${images.dtype} [${images.dims.join(', ')}]`,
    );
  }
  if (labels.dtype !== 'uint8' || labels.dims.length !== 1) {
    throw new DatasetError(
      'DATASET_INVALID',
      `${labelsPath}: expected uint8 labels of shape [n], got ${labels.dtype} [${labels.dims.join(', ')}]`,
    );
  }
  const [n, rows, cols] = images.dims;
  if (labels.dims[0] !== n) {
    throw new DatasetError('DATASET_INVALID', `${labelsPath}: expected ${n} labels (one per image in ${imagesPath}), got ${labels.dims[0]}`);
  }
  const numClasses = FASHION_MNIST_CLASSES.length;
  for (let i = 0; i < n; i++) {
    if (labels.data[i] >= numClasses) {
      throw new DatasetError('DATASET_INVALID', `${labelsPath}: label ${labels.data[i]} of image ${i} is outside [0, ${numClasses})`);
    }
  }
  return { imagesPath, rows, cols, pixels: images.data as Uint8Array, labels: labels.data };
}

function imageAt(set: IdxImageSet, k: number): RawImage {
  const px = set.rows * set.cols;
  return { width: set.cols, height: set.rows, channels: 1, data: set.pixels.slice(k * px, (k + 1) * px) };
}

/**
 * Loads a stratified sample of `perClass` images per class from the official
 * Fashion-MNIST training file. The draw is deterministic (one fixed-seed
 * stream per class, so a smaller `perClass` draws a subset of a larger one);
 * which images land in train/val/test is decided later by the split seed.
 * Images are 28×28, 1 channel; output is class-major.
 *
 * With `test: 'official'` the same stream continues past `perClass` for up to
 * `perClass` more images per class (the pool validation is drawn from, see
 * {@link presplitIndices}), and all images of the official test files follow;
 * `presplit` records which is which. The training images are then exactly
 * those of `test: 'split'` at the same `perClass`.
 *
 * @throws DatasetError DATASET_NOT_FOUND (dir or files missing),
 *   DATASET_INVALID (bad perClass or test, malformed files, too few images of a class).
 */
export async function loadFashionMnistRaw(spec: FashionMnistDatasetSpec): Promise<RawDataset> {
  const dir = spec.dir ?? DEFAULT_FASHION_MNIST_DIR;
  if (typeof dir !== 'string' || dir === '') {
    throw new DatasetError('DATASET_INVALID', `dataset.dir: expected a directory path, got ${JSON.stringify(dir)}`);
  }
  const perClass = intField(spec.perClass, 'dataset.perClass', DEFAULT_FASHION_MNIST_PER_CLASS, 1);
  const test = spec.test ?? 'split';
  if (test !== 'split' && test !== 'official') {
    throw new DatasetError('DATASET_INVALID', `dataset.test: expected 'split' or 'official', got ${JSON.stringify(test)}`);
  }
  await assertDirectory(dir, 'dataset.dir');
  const train = await readImageSet(dir, FASHION_MNIST_TRAIN_FILES);

  const numClasses = FASHION_MNIST_CLASSES.length;
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < train.labels.length; i++) byClass[train.labels[i]].push(i);

  const out: RawImage[] = [];
  const outLabels: number[] = [];
  const poolByClass: number[][] = [];
  for (let c = 0; c < numClasses; c++) {
    const idx = byClass[c];
    if (idx.length === 0) {
      throw new DatasetError('DATASET_EMPTY_CLASS', `dataset: class '${FASHION_MNIST_CLASSES[c]}' has 0 images in ${train.imagesPath}`);
    }
    if (idx.length < perClass) {
      throw new DatasetError(
        'DATASET_INVALID',
        `dataset.perClass: expected at most ${idx.length} (images of class '${FASHION_MNIST_CLASSES[c]}' in ${train.imagesPath}), got ${perClass}`,
      );
    }
    // Validation may take at most perClass × valFraction < perClass further images.
    const draw = test === 'official' ? Math.min(idx.length, 2 * perClass) : perClass;
    const pool: number[] = [];
    // Partial Fisher–Yates: the first `draw` entries become the sample.
    const rng = mulberry32(deriveSeed(0, 'fashion-mnist', c));
    for (let i = 0; i < draw; i++) {
      const j = i + randInt(rng, idx.length - i);
      const t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
      pool.push(out.length);
      out.push(imageAt(train, idx[i]));
      outLabels.push(c);
    }
    poolByClass.push(pool);
  }
  if (test === 'split') {
    return {
      classNames: [...FASHION_MNIST_CLASSES],
      images: out,
      labels: outLabels,
      skippedImages: 0,
      source: `fashion-mnist:${train.imagesPath} (perClass=${perClass})`,
    };
  }

  const official = await readImageSet(dir, FASHION_MNIST_TEST_FILES);
  const testIdx: number[] = [];
  for (let k = 0; k < official.labels.length; k++) {
    testIdx.push(out.length);
    out.push(imageAt(official, k));
    outLabels.push(official.labels[k]);
  }
  return {
    classNames: [...FASHION_MNIST_CLASSES],
    images: out,
    labels: outLabels,
    skippedImages: 0,
    source: `fashion-mnist:${train.imagesPath} (perClass=${perClass}) + ${official.imagesPath} (test, ${testIdx.length} images)`,
    presplit: { trainPerClass: perClass, poolByClass, test: testIdx },
  };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
