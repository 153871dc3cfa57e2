/**
 * wasm gradient kernels (services/worker/src/engine/wasm-kernels) vs the
 * tfjs cpu backend on identical random inputs, plus an end-to-end gradient
 * check of a small conv net and tensor-leak checks.
 *
 * Relative error = max|wasm - cpu| / max(1e-6, max|cpu|); bound 1e-4.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWasmGradientKernels } from '../services/worker/src/engine/wasm-kernels/index.js';

const TOL = 1e-4;
type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

/** Deterministic uniform(-1, 1) data (mulberry32). */
function randomData(shape: number[], seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(shape.reduce((p, d) => p * d, 1));
  for (let i = 0; i < out.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return maxDiff / Math.max(1e-6, maxRef);
}

async function use(backend: 'cpu' | 'wasm'): Promise<void> {
  await tf.setBackend(backend);
  await tf.ready();
}

/** Runs one kernel on the active backend from plain arrays; returns its values. */
function runKernel(
  kernel: string,
  inputs: Record<string, { shape: number[]; data: Float32Array }>,
  attrs: object,
): Float32Array {
  return tf.tidy(() => {
    const ins = Object.fromEntries(
      Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]),
    );
    const out = tf.engine().runKernel(kernel, ins, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    return out.dataSync() as Float32Array;
  }).slice();
}

/** Kernel on wasm (with a leak check) and the cpu reference; returns rel. error. */
async function compareWithCpu(
  kernel: string,
  inputs: Record<string, { shape: number[]; data: Float32Array }>,
  attrs: object,
  reference?: () => Float32Array,
): Promise<number> {
  await use('cpu');
  const want = reference ? reference() : runKernel(kernel, inputs, attrs);
  await use('wasm');
  const before = tf.memory().numTensors;
  const got = runKernel(kernel, inputs, attrs);
  expect(tf.memory().numTensors).toBe(before);
  return relErr(got, want);
}

const worst: Record<string, number> = {};
function record(kernel: string, err: number): void {
  worst[kernel] = Math.max(worst[kernel] ?? 0, err);
  expect(err).toBeLessThanOrEqual(TOL);
}

const label = (p: Pad) => (typeof p === 'object' ? 'explicit' : String(p));

/** Zero-inserts a [KH,KW,C,M] filter for dilation d: [(KH-1)d+1, (KW-1)d+1, C, M]. */
function dilateFilter(data: Float32Array, [kh, kw, c, m]: Shape4, d: number) {
  const eh = (kh - 1) * d + 1;
  const ew = (kw - 1) * d + 1;
  const out = new Float32Array(eh * ew * c * m);
  for (let i = 0; i < kh; i++)
    for (let j = 0; j < kw; j++)
      out.set(data.subarray((i * kw + j) * c * m, (i * kw + j + 1) * c * m), (i * d * ew + j * d) * c * m);
  return { shape: [eh, ew, c, m] as Shape4, data: out };
}

beforeAll(async () => {
  const registered = registerWasmGradientKernels();
  expect(registered.sort()).toEqual(
    ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'],
  );
  await use('wasm');
});

afterAll(() => {
  // Reported in the test log; the bound itself is asserted per case.
  console.log('max relative error vs cpu:', JSON.stringify(worst));
});

describe('registerWasmGradientKernels', () => {
  it('is idempotent and leaves the kernels registered for wasm', () => {
    expect(registerWasmGradientKernels()).toEqual([]);
    for (const name of [
      'Conv2DBackpropFilter',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
    ]) {
      expect(tf.getKernel(name, 'wasm')).toBeDefined();
    }
  });
});

describe('Conv2DBackpropFilter (wasm vs cpu)', () => {
  const cases: [Shape4, Shape4, number, Pad][] = [
    [[2, 5, 5, 4], [1, 1, 4, 6], 1, 'valid'], // 1x1 fast path, Co > Ci
    [[3, 5, 5, 8], [1, 1, 8, 3], 1, 'same'], // 1x1 fast path, Co < Ci
    [[2, 7, 7, 4], [1, 1, 4, 5], 2, 'same'], // strided 1x1 -> tap path
    [[2, 7, 7, 3], [3, 3, 3, 8], 2, 'same'], // stem-like, im2col path
    [[2, 7, 7, 3], [3, 3, 3, 8], 1, 'valid'],
    [[3, 6, 6, 5], [3, 3, 5, 4], 2, 'valid'],
    [[2, 5, 5, 20], [3, 3, 20, 6], 1, 'same'], // per-tap path (Ci*K > 64)
    [[2, 7, 7, 12], [3, 3, 12, 4], 2, 'same'], // per-tap path, strided
    [[2, 6, 6, 3], [2, 2, 3, 4], 2, 'same'], // even kernel
    [[2, 5, 5, 3], [5, 5, 3, 4], 1, 'same'], // 5x5 kernel
    [[2, 7, 6, 3], [3, 3, 3, 2], 1, 1], // numeric pad
    [[2, 7, 7, 3], [3, 3, 3, 4], 1, [[0, 0], [2, 1], [0, 2], [0, 0]]],
    [[2, 3, 3, 96], [1, 1, 96, 576], 1, 'same'], // MobileNetV2 expand (channels)
    [[2, 3, 3, 576], [1, 1, 576, 160], 1, 'same'], // MobileNetV2 project (channels)
  ];
  it.each(cases)('x %j filter %j stride %d pad %s', async (xShape, filterShape, stride, pad) => {
    const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, stride, 1, pad);
    const inputs = {
      x: { shape: xShape, data: randomData(xShape, 1) },
      dy: { shape: info.outShape, data: randomData(info.outShape, 2) },
    };
    const attrs = { strides: stride, pad, dataFormat: 'NHWC', filterShape };
    record('Conv2DBackpropFilter', await compareWithCpu('Conv2DBackpropFilter', inputs, attrs));
  });

  it('rejects NCHW with a clear error', async () => {
    await use('wasm');
    const x = tf.zeros([1, 3, 5, 5]);
    const dy = tf.zeros([1, 2, 5, 5]);
    expect(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [1, 1, 3, 2],
      } as unknown as tf.NamedAttrMap),
    ).toThrow(/NCHW/);
    tf.dispose([x, dy]);
  });
});

/** [input shape, filter shape [KH,KW,C,M], stride, pad, dilation] */
const depthwiseCases: [Shape4, Shape4, number, Pad, number][] = [
  [[2, 6, 6, 4], [3, 3, 4, 1], 1, 'same', 1],
  [[2, 6, 6, 4], [3, 3, 4, 1], 2, 'same', 1],
  [[2, 7, 7, 3], [3, 3, 3, 2], 2, 'same', 1], // multiplier 2, odd size
  [[3, 5, 5, 3], [3, 3, 3, 2], 1, 'valid', 1],
  [[2, 5, 5, 3], [1, 1, 3, 1], 1, 'valid', 1], // 1x1 fast path
  [[2, 5, 5, 3], [1, 1, 3, 2], 1, 'valid', 1],
  [[2, 7, 7, 3], [1, 1, 3, 2], 2, 'same', 1], // stride > kernel: cropping path
  [[2, 7, 7, 3], [5, 5, 3, 1], 2, 'same', 1],
  [[1, 8, 8, 3], [3, 3, 3, 1], 2, 'valid', 1],
  [[2, 7, 7, 3], [3, 3, 3, 1], 1, [[0, 0], [2, 1], [0, 2], [0, 0]], 1],
  [[2, 7, 6, 3], [3, 3, 3, 1], 2, 1, 1],
  [[4, 6, 6, 96], [3, 3, 96, 1], 1, 'same', 1], // MobileNetV2 dw stride 1
  [[4, 7, 7, 96], [3, 3, 96, 1], 2, 'same', 1], // MobileNetV2 dw stride 2
  [[2, 7, 7, 3], [3, 3, 3, 1], 1, 'same', 2], // dilation 2
  [[2, 9, 9, 3], [3, 3, 3, 2], 1, 'valid', 2], // dilation 2, multiplier 2
];

describe('DepthwiseConv2dNativeBackpropFilter (wasm vs cpu)', () => {
  it.each(depthwiseCases)(
    'x %j filter %j stride %d pad %s dilation %d',
    async (xShape, filterShape, stride, pad, dilation) => {
      const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, stride, dilation, pad, undefined, true);
      const inputs = {
        x: { shape: xShape, data: randomData(xShape, 3) },
        dy: { shape: info.outShape, data: randomData(info.outShape, 4) },
      };
      const attrs = { strides: stride, pad, dilations: dilation, filterShape };
      // The cpu kernel ignores dilations in its loops (tfjs' gradient never
      // passes dilation > 1), so for dilation d the reference is the cpu
      // gradient of the equivalent zero-inserted filter, read at every d-th tap.
      const reference =
        dilation === 1
          ? undefined
          : () => {
              const big = dilateFilter(randomData(filterShape, 0), filterShape, dilation).shape;
              const full = runKernel('DepthwiseConv2dNativeBackpropFilter', inputs, {
                ...attrs, dilations: 1, filterShape: big,
              });
              const [kh, kw, c, m] = filterShape;
              const out = new Float32Array(kh * kw * c * m);
              for (let i = 0; i < kh; i++)
                for (let j = 0; j < kw; j++)
                  out.set(
                    full.subarray((i * dilation * big[1] + j * dilation) * c * m, (i * dilation * big[1] + j * dilation + 1) * c * m),
                    (i * kw + j) * c * m,
                  );
              return out;
            };
      record(
        'DepthwiseConv2dNativeBackpropFilter',
        await compareWithCpu('DepthwiseConv2dNativeBackpropFilter', inputs, attrs, reference),
      );
    },
  );
});

describe('DepthwiseConv2dNativeBackpropInput (wasm vs cpu)', () => {
  it.each(depthwiseCases)(
    'x %j filter %j stride %d pad %s dilation %d',
    async (xShape, filterShape, stride, pad, dilation) => {
      const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, stride, dilation, pad, undefined, true);
      const filterData = randomData(filterShape, 5);
      const inputs = {
        dy: { shape: info.outShape, data: randomData(info.outShape, 6) },
        filter: { shape: filterShape, data: filterData },
      };
      const attrs = { strides: stride, pad, dilations: dilation, inputShape: xShape };
      // Dilation d: reference is the cpu kernel with the zero-inserted filter.
      const reference =
        dilation === 1
          ? undefined
          : () =>
              runKernel(
                'DepthwiseConv2dNativeBackpropInput',
                { ...inputs, filter: dilateFilter(filterData, filterShape, dilation) },
                { ...attrs, dilations: 1 },
              );
      record(
        'DepthwiseConv2dNativeBackpropInput',
        await compareWithCpu('DepthwiseConv2dNativeBackpropInput', inputs, attrs, reference),
      );
    },
  );
});

describe('end-to-end gradients of a small conv net (wasm vs cpu)', () => {
  const shapes: Record<string, number[]> = {
    x: [4, 9, 9, 3],
    w1: [3, 3, 3, 8], // conv 3x3 stride 2 (fused conv + bias + relu)
    b1: [8],
    g1: [8], // batch-norm scale / offset
    o1: [8],
    w2: [3, 3, 8, 2], // depthwise 3x3 stride 1, multiplier 2
    g2: [16],
    o2: [16],
    w3: [3, 3, 16, 1], // fused depthwise 3x3 stride 2 + relu
    w4: [1, 1, 16, 12], // pointwise conv
    wd: [12, 5], // dense
    bd: [5],
  };
  const names = Object.keys(shapes);
  const labels = Array.from({ length: 4 }, (_, i) => (i * 3) % 5);

  function loss(p: Record<string, tf.Tensor>): tf.Scalar {
    const bn = (h: tf.Tensor4D, scale: tf.Tensor, offset: tf.Tensor) => {
      const { mean, variance } = tf.moments(h, [0, 1, 2]);
      return tf.batchNorm(h, mean, variance, offset, scale, 1e-3);
    };
    let h = tf.fused.conv2d({
      x: p.x as tf.Tensor4D, filter: p.w1 as tf.Tensor4D, strides: 2, pad: 'same', bias: p.b1, activation: 'relu',
    });
    h = tf.relu(bn(h, p.g1, p.o1)) as tf.Tensor4D;
    h = tf.depthwiseConv2d(h, p.w2 as tf.Tensor4D, 1, 'same');
    h = tf.relu6(bn(h, p.g2, p.o2)) as tf.Tensor4D;
    h = tf.fused.depthwiseConv2d({ x: h, filter: p.w3 as tf.Tensor4D, strides: 2, pad: 'same', activation: 'relu' });
    h = tf.relu(tf.conv2d(h, p.w4 as tf.Tensor4D, 1, 'valid'));
    const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
    const logits = tf.add(tf.matMul(pooled, p.wd as tf.Tensor2D), p.bd);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 5), logits) as tf.Scalar;
  }

  function gradients(): Record<string, Float32Array> {
    return tf.tidy(() => {
      const params = names.map((n, i) => tf.tensor(randomData(shapes[n], 100 + i), shapes[n]));
      const grads = tf.grads((...ts: tf.Tensor[]) => loss(Object.fromEntries(names.map((n, i) => [n, ts[i]]))))(params);
      return Object.fromEntries(names.map((n, i) => [n, grads[i].dataSync().slice() as Float32Array]));
    });
  }

  it('tf.grads of every parameter and the input match within 1e-4', async () => {
    await use('cpu');
    const want = gradients();
    await use('wasm');
    const before = tf.memory().numTensors;
    const got = gradients();
    expect(tf.memory().numTensors).toBe(before);
    const errs = Object.fromEntries(names.map((n) => [n, relErr(got[n], want[n])]));
    for (const n of names) record('endToEnd', errs[n]);
  });

  it('tf.variableGrads on wasm leaves no tensors behind', async () => {
    await use('wasm');
    const vars = Object.fromEntries(
      names.map((n, i) => [n, n === 'x' ? tf.tensor(randomData(shapes[n], 7), shapes[n]) : tf.variable(tf.tensor(randomData(shapes[n], 200 + i), shapes[n]))]),
    );
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => loss(vars));
    expect(Object.keys(grads).length).toBe(names.length - 1);
    for (const g of Object.values(grads)) expect(Number.isFinite(g.dataSync()[0])).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(vars));
  });
});
