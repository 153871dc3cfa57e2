import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** A named array for {@link writeTensorFile}. */
export interface TensorEntry {
  data: Float32Array | Int32Array;
  shape: number[];
}

/** What `<name>.json` says about each tensor in `<name>.bin`. */
export interface TensorFileManifest {
  bin: string;
  byteOrder: 'little';
  tensors: Record<string, { dtype: 'float32' | 'int32'; shape: number[]; offset: number }>;
  [extra: string]: unknown;
}

/**
 * Writes tensors as `<dir>/<name>.bin` (raw little-endian values, one after
 * the other) plus `<dir>/<name>.json` (dtype, shape, byte offset of each, and
 * `extra`): numpy reads each with `np.fromfile(path, dtype, count, offset)`
 * (bench/sweep/torch_mobilenet_v2.py read_tensor_file).
 */
export function writeTensorFile(dir: string, name: string, tensors: Record<string, TensorEntry>, extra: Record<string, unknown> = {}): TensorFileManifest {
  mkdirSync(dir, { recursive: true });
  const manifest: TensorFileManifest = { ...extra, bin: `${name}.bin`, byteOrder: 'little', tensors: {} };
  const fd = openSync(join(dir, `${name}.bin`), 'w');
  try {
    let offset = 0;
    for (const [key, t] of Object.entries(tensors)) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (count !== t.data.length) throw new Error(`${key}: shape [${t.shape.join(', ')}] holds ${count} values, data has ${t.data.length}`);
      const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      writeSync(fd, bytes);
      manifest.tensors[key] = { dtype: t.data instanceof Float32Array ? 'float32' : 'int32', shape: t.shape, offset };
      offset += bytes.byteLength;
    }
  } finally {
    closeSync(fd);
  }
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(manifest, null, 1));
  return manifest;
}

