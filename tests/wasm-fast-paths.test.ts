import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmFastPaths } from '../services/worker/src/engine/wasm-kernels/index.js';
import { createOptimizer, keepSlotsPerVariable } from '../services/worker/src/engine/optimizer.js';
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
    expect(registerWasmFastPaths()).toEqual(['BatchMatMul', 'Conv2DBackpropInput', 'Slice', 'Sum', 'ClipByValue gradient', 'Relu gradient', 'Adam update']);
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

  it.each([
    // [shape, axis, keepDims]: leading axes (the fast path) and others (stock), negative axes, keepDims.
    [[4, 3, 3, 5], [0, 1, 2], false],
    [[4, 3, 3, 5], [0, 1, 2], true],
    [[4, 3, 3, 5], [0], false],
    [[4, 3, 3, 5], [0, 1], true],
    [[300, 7], [0], false],
    [[300, 7], -2, false],
    [[4, 3, 3, 5], [1, 2], false],
    [[4, 3, 3, 5], [0, 1, 2, 3], false],
    [[4, 3, 3, 5], [3], true],
    [[1, 6], [0], false],
  ] as const)('sum of %j over %j (keepDims %s) matches cpu', async (shape, axis, keepDims) => {
    const x = data([...shape]);
    await tf.setBackend('cpu');
    const refShape = tf.tidy(() => tf.sum(tf.tensor(x, [...shape]), axis as number | number[], keepDims).shape);
    const [w, r] = await onBoth(() => tf.tidy(() => tf.sum(tf.tensor(x, [...shape]), axis as number | number[], keepDims)));
    await tf.setBackend('wasm');
    expect(tf.tidy(() => tf.sum(tf.tensor(x, [...shape]), axis as number | number[], keepDims).shape)).toEqual(refShape);
    expect(relErr(w, r)).toBeLessThan(1e-5);
  });

  it('sum of int32 over leading axes stays exact (stock path)', async () => {
    const v = Int32Array.from({ length: 24 }, (_, i) => i * 1000003);
    const out = tf.tidy(() => tf.sum(tf.tensor(v, [4, 6], 'int32'), 0));
    expect(out.dtype).toBe('int32');
    expect(Array.from(await out.data())).toEqual([0, 1, 2, 3, 4, 5].map((c) => [0, 1, 2, 3].reduce((a, r) => a + v[r * 6 + c], 0)));
    out.dispose();
  });

  it('ReLU6 (relu + clipByValue, as tfjs-layers builds it) and relu gradients match cpu, edges 0 and 6 included', async () => {
    // Values exactly on the edges, inside, outside, and a NaN-free spread.
    const x = Float32Array.from([...data([200]).map((v) => v * 8 - 1), 0, 6, -0, 6.000001, 5.999999, -1e-7]);
    const dy = data([x.length]);
    for (const f of [
      (t: tf.Tensor) => tf.clipByValue(tf.relu(t), 0, 6),
      (t: tf.Tensor) => tf.clipByValue(t, -0.5, 2),
      (t: tf.Tensor) => tf.relu(t),
    ]) {
      const [w, r] = await onBoth(() =>
        tf.tidy(() => {
          const X = tf.tensor2d(x, [2, x.length / 2]);
          const DY = tf.tensor2d(dy, [2, x.length / 2]);
          return tf.grad((t: tf.Tensor) => f(t))(X, DY);
        }),
      );
      expect(Array.from(w)).toEqual(Array.from(r).map((v) => v + 0));
    }
  });

  it('clipByValue gradient passes NaN and Inf in dy through where x is inside, +0 where outside or NaN, as the stock where()', async () => {
    const x = Float32Array.from([1, 1, -1, Number.NaN, 3]);
    const dy = Float32Array.from([Number.NaN, Number.POSITIVE_INFINITY, Number.NaN, 5, -2]);
    const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.clipByValue(t, 0, 2))(tf.tensor1d(x), tf.tensor1d(dy)));
    const v = Array.from(await g.data());
    g.dispose();
    expect(v[0]).toBeNaN();
    expect(v[1]).toBe(Number.POSITIVE_INFINITY);
    expect(v.slice(2)).toEqual([0, 0, 0]);
  });

  it('takes the fast routes on wasm: the heap passes for ReLU6 and relu gradients, a pool for sums over leading axes', async () => {
    await tf.setBackend('wasm');
    const info = await tf.profile(() =>
      tf.tidy(() => {
        const x = tf.randomNormal([2, 3, 3, 4], 0, 4, 'float32', 3);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.clipByValue(tf.relu(t), 0, 6)))(x);
        return tf.sum(g, [0, 1, 2]);
      }),
    );
    const names = info.kernels.map((k) => k.name);
    expect(names).toContain('TlsweepClipByValueGrad');
    expect(names).toContain('TlsweepReluGrad');
    expect(names).not.toContain('LogicalAnd');
    expect(names).toContain('AvgPool');
    info.result instanceof tf.Tensor && info.result.dispose();
  });

  it('fused Adam (createOptimizer on wasm) equals tfjs Adam over steps: moments and slot names bit for bit, weights to float32 rounding; one kernel per variable', async () => {
    await tf.setBackend('wasm');
    const shapes = [[3, 3, 8, 1], [8, 16], [16], [1]];
    const init = shapes.map((s) => data(s));
    const make = (tag: string) => shapes.map((s, i) => tf.variable(tf.tensor(init[i], s), true, `adam_${tag}_${i}`));
    const stockVars = make('stock');
    const fusedVars = make('fused');
    const stock = tf.train.adam(3e-3, 0.9, 0.999);
    const fused = keepSlotsPerVariable(createOptimizer('adam', 3e-3));
    for (let step = 0; step < 6; step++) {
      const grads = shapes.map((s) => data(s).map((v) => v * (step + 1)));
      // A zero and a large gradient too: exercises the divide near epsilon and big moments.
      grads[2][0] = 0;
      grads[2][1] = 1e4;
      tf.tidy(() => stock.applyGradients(Object.fromEntries(stockVars.map((v, i) => [v.name, tf.tensor(grads[i], shapes[i])])) as tf.NamedTensorMap as never));
      if (step === 5) {
        const info = await tf.profile(() => tf.tidy(() => fused.applyGradients(Object.fromEntries(fusedVars.map((v, i) => [v.name, tf.tensor(grads[i], shapes[i])])))));
        const names = info.kernels.map((k) => k.name);
        expect(names.filter((n) => n === 'TlsweepAdamUpdate')).toHaveLength(shapes.length);
        expect(names).not.toContain('Sqrt');
      } else {
        tf.tidy(() => fused.applyGradients(Object.fromEntries(fusedVars.map((v, i) => [v.name, tf.tensor(grads[i], shapes[i])]))));
      }
    }
    // Weights: the step is rounded once instead of after each of tfjs' float32 operations.
    for (let i = 0; i < shapes.length; i++) {
      const [a, b] = [fusedVars[i].dataSync(), stockVars[i].dataSync()];
      for (let j = 0; j < a.length; j++) expect(Math.abs(a[j] - b[j])).toBeLessThanOrEqual(2e-7 * Math.max(1, Math.abs(b[j])));
      // ...and they did move: 6 steps of 3e-3.
      expect(Math.max(...Array.from(a, (x, j) => Math.abs(x - init[i][j])))).toBeGreaterThan(1e-3);
    }
    // Moments (and the iteration count) bit for bit, under tfjs' slot names.
    const [ws, wf] = [await stock.getWeights(), await fused.getWeights()];
    expect(wf.map((w) => w.name.replace('fused', 'stock'))).toEqual(ws.map((w) => w.name));
    for (let i = 0; i < ws.length; i++) expect(Array.from(wf[i].tensor.dataSync())).toEqual(Array.from(ws[i].tensor.dataSync()));
    // Off wasm the stock update runs.
    await tf.setBackend('cpu');
    const cpuVar = tf.variable(tf.tensor(init[1], shapes[1]), true, 'adam_cpu');
    const cpuOpt = createOptimizer('adam', 3e-3);
    const info = await tf.profile(() => tf.tidy(() => cpuOpt.applyGradients({ adam_cpu: tf.onesLike(cpuVar) })));
    expect(info.kernels.map((k) => k.name)).toContain('Sqrt');
    cpuOpt.dispose();
    cpuVar.dispose();
    await tf.setBackend('wasm');
    stock.dispose();
    fused.dispose();
    tf.dispose([...stockVars, ...fusedVars]);
  });
});
