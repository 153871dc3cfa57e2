import type { Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import type { FolderDatasetSpec } from './dataset-spec.js';
import { assertDirectory, DatasetError, intField } from './errors.js';
import type { RawDataset, RawImage } from './load-dataset.js';
import { deriveSeed, mulberry32, shuffleInPlace } from './prng.js';

const { PNG } = pngjs;

/** File extensions (lower-case) read as images; other files are ignored, not counted. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.png', '.jpg', '.jpeg']);

/** Largest decoded image accepted (megapixels); bigger ones count as undecodable. */
const MAX_MEGAPIXELS = 100;

/**
 * Decodes a PNG or JPEG (sniffed from the leading bytes, not the file name)
 * to 8-bit RGB: alpha is dropped, grayscale is expanded to 3 channels,
 * 16-bit PNGs are rescaled to 8 bits.
 * @throws Error when the bytes are not a decodable PNG/JPEG.
 */
export function decodeImage(buf: Uint8Array): RawImage {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let width: number;
  let height: number;
  let src: Uint8Array;
  let srcChannels: number;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    const png = PNG.sync.read(b); // always RGBA, 8 bits
    width = png.width;
    height = png.height;
    src = png.data;
    srcChannels = 4;
  } else if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    const img = jpeg.decode(b, {
      useTArray: true,
      formatAsRGBA: false, // RGB; grayscale JPEGs come out as 3 equal channels
      tolerantDecoding: true, // jpeg-js default; tolerates stray MCUs some encoders write
      maxResolutionInMP: MAX_MEGAPIXELS,
      maxMemoryUsageInMB: 1024,
    });
    width = img.width;
    height = img.height;
    src = img.data;
    srcChannels = 3;
  } else {
    throw new Error('not a PNG or JPEG (unrecognised leading bytes)');
  }
  if (!(width > 0 && height > 0)) throw new Error(`bad image size ${width}x${height}`);
  if (width * height > MAX_MEGAPIXELS * 1e6) throw new Error(`image ${width}x${height} exceeds ${MAX_MEGAPIXELS} MP`);
  const pixels = width * height;
  if (src.length < pixels * srcChannels) throw new Error(`decoded ${src.length} bytes, expected ${pixels * srcChannels}`);
  let data: Uint8Array;
  if (srcChannels === 3) {
    data = src.length === pixels * 3 ? src : src.slice(0, pixels * 3);
  } else {
    data = new Uint8Array(pixels * 3);
    for (let i = 0, j = 0; i < pixels; i++, j += 4) {
      data[3 * i] = src[j];
      data[3 * i + 1] = src[j + 1];
      data[3 * i + 2] = src[j + 2];
    }
  }
  return { width, height, channels: 3, data };
}

/** Code-point order, like Python's `sorted` (which Keras uses for class names). */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDirEntry(parent: string, e: Dirent): Promise<boolean> {
  if (e.isDirectory()) return true;
  if (!e.isSymbolicLink()) return false;
  try {
    return (await stat(join(parent, e.name))).isDirectory();
  } catch {
    return false;
  }
}

/** Image files under `dir`, recursively (following symlinks), sorted by path; hidden entries skipped. */
async function listImageFiles(dir: string, depth = 0): Promise<string[]> {
  if (depth > 32) return [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => byCodePoint(a.name, b.name));
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (await isDirEntry(dir, e)) {
      out.push(...(await listImageFiles(p, depth + 1)));
    } else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) {
      out.push(p);
    }
  }
  return out;
}

/**
 * A cheap stamp of a folder dataset's files (path, size, mtime of every
 * image, no reads): the worker's decoded-image cache reloads a folder whose
 * stamp changed instead of serving images edited since. The feature cache
 * keys on the content digest of the files actually read (loadImageFolderRaw).
 * Empty when the folder cannot be listed (the load then reports why).
 */
export async function folderStamp(root: string): Promise<string> {
  try {
    const h = createHash('sha256');
    for (const e of (await readdir(root, { withFileTypes: true })).sort((a, b) => byCodePoint(a.name, b.name))) {
      if (e.name.startsWith('.') || !(await isDirEntry(root, e))) continue;
      for (const f of await listImageFiles(join(root, e.name))) {
        const st = await stat(f);
        h.update(`${relative(root, f)}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
    return h.digest('hex');
  } catch {
    return '';
  }
}

/**
 * Loads a Keras `flow_from_directory`-style folder: every non-hidden
 * sub-folder of `spec.path` is a class (named after the folder, sorted by code
 * point, class id = position), holding .png/.jpg/.jpeg files at any depth.
 * Images are decoded to RGB at their own size. Files that fail to decode are
 * skipped and counted in `skippedImages`. With `perClass`, each class's files
 * are drawn in a fixed-seed random order (per class name) until `perClass`
 * images have decoded; otherwise all files are read in path order.
 *
 * @throws DatasetError DATASET_NOT_FOUND (path missing), DATASET_INVALID
 *   (not a directory, fewer than 2 class folders, bad perClass),
 *   DATASET_EMPTY_CLASS (a class with no readable image).
 */
export async function loadImageFolderRaw(spec: FolderDatasetSpec): Promise<RawDataset> {
  const root = spec.path;
  if (typeof root !== 'string' || root === '') {
    throw new DatasetError('DATASET_INVALID', `dataset.path: expected a directory path, got ${JSON.stringify(root)}`);
  }
  const perClass = spec.perClass === undefined ? undefined : intField(spec.perClass, 'dataset.perClass', 0, 1);
  await assertDirectory(root, 'dataset.path');

  const entries = await readdir(root, { withFileTypes: true });
  const classNames: string[] = [];
  for (const e of entries) {
    if (!e.name.startsWith('.') && (await isDirEntry(root, e))) classNames.push(e.name);
  }
  classNames.sort(byCodePoint);
  if (classNames.length < 2) {
    throw new DatasetError(
      'DATASET_INVALID',
      `dataset.path: expected at least 2 class sub-folders in ${root}, found ${classNames.length}` +
        (classNames.length === 1 ? ` ('${classNames[0]}')` : ''),
    );
  }

  const images: RawImage[] = [];
  const labels: number[] = [];
  let skipped = 0;
  // Over every file read, in order, with its class and name: equal digests mean equal data.
  const digest = createHash('sha256');
  for (let c = 0; c < classNames.length; c++) {
    const name = classNames[c];
    const classDir = join(root, name);
    const files = await listImageFiles(classDir);
    if (perClass !== undefined) shuffleInPlace(files, mulberry32(deriveSeed(0, 'folder', name)));
    let readable = 0;
    let classSkipped = 0;
    for (const file of files) {
      if (perClass !== undefined && readable >= perClass) break;
      let img: RawImage;
      try {
        const bytes = await readFile(file);
        digest.update(`${name}\0${relative(root, file)}\0${bytes.length}\0`).update(bytes);
        img = decodeImage(bytes);
      } catch {
        classSkipped++;
        continue;
      }
      images.push(img);
      labels.push(c);
      readable++;
    }
    skipped += classSkipped;
    if (readable === 0) {
      throw new DatasetError(
        'DATASET_EMPTY_CLASS',
        `dataset: class '${name}' has 0 readable images (${classSkipped} skipped as corrupt) in ${classDir}; ` +
          `expected at least one ${IMAGE_EXTENSIONS.join('/')} file`,
      );
    }
  }
  return {
    classNames,
    images,
    labels,
    skippedImages: skipped,
    source: `folder:${root}` + (perClass !== undefined ? ` (perClass=${perClass})` : ''),
    contentDigest: digest.digest('hex'),
  };
}

/**
 * One image of a folder dataset without decoding the rest: the `index`-th
 * readable file (wrapped around) over the classes in order, files in path
 * order. For previews (the dashboard's feature maps), not for training.
 * @throws DatasetError as {@link loadImageFolderRaw} for a missing or malformed folder, or one with no readable image.
 */
export async function loadImageFolderSample(spec: FolderDatasetSpec, index: number): Promise<{ image: RawImage; label: string }> {
  const root = spec.path;
  await assertDirectory(root, 'dataset.path');
  const entries = await readdir(root, { withFileTypes: true });
  const classNames: string[] = [];
  for (const e of entries) if (!e.name.startsWith('.') && (await isDirEntry(root, e))) classNames.push(e.name);
  classNames.sort(byCodePoint);
  const files: Array<{ file: string; label: string }> = [];
  for (const name of classNames) for (const file of await listImageFiles(join(root, name))) files.push({ file, label: name });
  for (let k = 0; k < files.length; k++) {
    const { file, label } = files[(index + k) % files.length];
    try {
      return { image: decodeImage(await readFile(file)), label };
    } catch {
      // Corrupt files are skipped, as in training.
    }
  }
  throw new DatasetError('DATASET_EMPTY_CLASS', `dataset: no readable ${IMAGE_EXTENSIONS.join('/')} image under ${root}`);
}
