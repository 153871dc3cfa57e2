import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastPaths } from '../services/worker/src/engine/wasm-kernels/index.js';
import { mulberry32 } from '../services/worker/src/data/prng.js';

/** The fast-path overrides of stock wasm kernels agree with the cpu backend. */
const rand = mulberry32(11);
const data = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1);
const relErr = (a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array) => {
  let d = 0;
  let m = 1e-6;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
};

async function onBoth(f: () => tf.Tensor): Promise<[Float32Array, Float32Array]> {
  await tf.setBackend('cpu');
  const ref = f();
  const r = (await ref.data()) as Float32Array;
  ref.dispose();
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  const out = f();
  const w = (await out.data()) as Float32Array;
  out.dispose();
  expect(tf.memory().numTensors).toBe(before);
  return [w, r];
}

describe('wasm fast paths', () => {
  beforeAll(async () => {
    expect(registerWasmFastPaths()).toEqual(['BatchMatMul', 'Conv2DBackpropInput', 'Slice']);
    await tf.setBackend('wasm');
    await tf.ready();
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([
    // [shape, begin, size]: batches along axis 0 (contiguous), boxes in inner axes, -1 sizes, rank 1..5, empty.
    [[10, 4, 4, 3], [3, 0, 0, 0], [4, -1, -1, -1]],
    [[10, 4, 4, 3], [9, 0, 0, 0], [1, 4, 4, 3]],
    [[10, 6], [2, 0], [5, 6]],
    [[10, 6], [2, 1], [5, 3]],
    [[5, 4, 4, 3], [1, 1, 2, 0], [3, 2, 2, 3]],
    [[5, 4, 4, 3], [0, 0, 0, 1], [-1, -1, -1, 2]],
    [[2, 3, 4, 5, 6], [1, 1, 0, 2, 3], [1, 2, 4, 2, 3]],
    [[7], [2], [4]],
    [[6, 5], [2, 0], [0, 5]],
  ])('slice of %j at %j size %j matches cpu, float32 and int32', async (shape, begin, size) => {
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    const values = data([n]);
    for (const dtype of ['float32', 'int32'] as const) {
      const [w, r] = await onBoth(() =>
        tf.tidy(() => tf.slice(tf.tensor(dtype === 'int32' ? Int32Array.from(values, (v) => Math.round(v * 1000)) : values, shape as number[], dtype), begin as number[], size as number[])),
      );
      expect(Array.from(w)).toEqual(Array.from(r));
    }
  });

  it('slice leaves its input intact and takes batches of a large tensor without reading it whole', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor4d(data([64 * 16 * 16 * 3]), [64, 16, 16, 3]);
    const before = Float32Array.from(x.dataSync() as Float32Array);
    const backend = tf.backend() as unknown as { readSync: (...a: unknown[]) => unknown };
    const readSync = backend.readSync;
    let reads = 0;
    backend.readSync = (...a: unknown[]) => { reads += 1; return readSync.apply(backend, a); };
    try {
      const parts = Array.from({ length: 8 }, (_, i) => tf.slice(x, [i * 8, 0, 0, 0], [8, -1, -1, -1]));
      expect(reads).toBe(0);
      const joined = tf.concat(parts, 0);
      expect(Array.from(joined.dataSync())).toEqual(Array.from(before));
      tf.dispose([...parts, joined]);
    } finally {
      backend.readSync = readSync;
    }
    expect(Array.from(x.dataSync())).toEqual(Array.from(before));
    x.dispose();
  });

  it.each([
    [false, false], [true, false], [false, true], [true, true],
  ])('matMul transposeA=%s transposeB=%s matches cpu (batched too)', async (ta, tb) => {
    const a = data([3, 7, 5]);
    const b = data([3, 5, 4]);
    const [w, r] = await onBoth(() =>
      tf.tidy(() => {
        const A = tf.tensor3d(a, [3, 7, 5]);
        const B = tf.tensor3d(b, [3, 5, 4]);
        return tf.matMul(ta ? tf.transpose(A, [0, 2, 1]) : A, tb ? tf.transpose(B, [0, 2, 1]) : B, ta, tb);
      }),
    );
    expect(relErr(w, r)).toBeLessThan(1e-5);
  });

  it.each([
    [[1, 1, 8, 6], 1, 'same'], [[1, 1, 8, 6], 1, 'valid'], [[1, 1, 8, 6], 2, 'same'], [[3, 3, 8, 6], 1, 'same'], [[3, 3, 8, 6], 2, 'valid'],
  ] as const)('conv2d input gradient, filter %j stride %i pad %s, matches cpu', async (fshape, stride, pad) => {
    const x = data([2, 7, 7, 8]);
    const f = data([...fshape]);
    const [w, r] = await onBoth(() =>
      tf.tidy(() => {
        const X = tf.tensor4d(x, [2, 7, 7, 8]);
        const F = tf.tensor4d(f, [...fshape] as [number, number, number, number]);
        return tf.grad((xx: tf.Tensor) => tf.sum(tf.square(tf.conv2d(xx as tf.Tensor4D, F, stride, pad))))(X);
      }),
    );
    expect(relErr(w, r)).toBeLessThan(1e-5);
  });
});
