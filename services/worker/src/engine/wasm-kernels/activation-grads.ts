/**
 * Gradients of ReLU6 (tfjs-layers' `ReLU(maxValue)` = relu, then
 * clipByValue(0, max)) and ReLU for the tfjs `wasm` backend, as one pass in
 * JS over the wasm heap.
 *
 * The stock ClipByValue gradient is where(logicalAnd(x >= lo, x <= hi), dy, 0):
 * four wasm kernels, two bool temporaries and a zeros tensor per activation.
 * Profiled on MobileNetV2's tail at 224 px (batch 16, `bench:tail-kernels`)
 * it took 63 of 374 ms per step; this pass takes ~1/7 of that. The select is
 * branch-free (the mask's sign bits AND-ed with dy's bits): with a
 * data-dependent branch half the elements mispredict and the loop is 3×
 * slower. The ClipByValue gradient equals the stock one bit for bit, NaN
 * in x or dy included (NaN x fails both comparisons, so the gradient is +0
 * as with `where`). The Relu gradient equals the stock dy · step(x) for
 * finite values, except that it gives +0 where the stock product gives -0
 * (negative dy at x <= 0), and 0 where NaN x would give NaN.
 *
 * Gradients are registered per kernel for every backend at once, so the
 * overrides keep the stock formulas for any backend other than wasm.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm-backend.js';

/** dy where lo <= x <= hi, +0 elsewhere. */
export const CLIP_GRAD_KERNEL = 'TlsweepClipByValueGrad';
/** dy where x > 0, +0 elsewhere. */
export const RELU_GRAD_KERNEL = 'TlsweepReluGrad';

function bitsOf(a: tf.TypedArray): Int32Array {
  return new Int32Array(a.buffer, a.byteOffset, a.length);
}

function clipGradLoop(x: Float32Array, dy: Int32Array, out: Int32Array, lo: number, hi: number): void {
  const n = x.length;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    // -(true & true) = -1 (all bits set), anything else 0.
    out[i] = dy[i] & -((v >= lo ? 1 : 0) & (v <= hi ? 1 : 0));
  }
}

function reluGradLoop(x: Float32Array, dy: Int32Array, out: Int32Array): void {
  const n = x.length;
  for (let i = 0; i < n; i++) out[i] = dy[i] & -(x[i] > 0 ? 1 : 0);
}

function maskedGrad(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown },
  loop: (x: Float32Array, dy: Int32Array, out: Int32Array) => void,
): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const backend = args.backend as WasmBackendLike;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`wasm activation gradient: x and dy must be float32, got ${x.dtype} and ${dy.dtype}.`);
  }
  // makeOutput may grow the heap and detach earlier views: take every view after it.
  const out = backend.makeOutput(dy.shape.slice(), 'float32');
  loop(backend.typedArrayFromHeap(x) as Float32Array, bitsOf(backend.typedArrayFromHeap(dy)), bitsOf(backend.typedArrayFromHeap(out)));
  return out;
}

export const clipGradWasmConfig: tf.KernelConfig = {
  kernelName: CLIP_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: (args) => {
    const { lo, hi } = args.attrs as unknown as { lo: number; hi: number };
    return maskedGrad(args, (x, dy, out) => clipGradLoop(x, dy, out, lo, hi));
  },
};

export const reluGradWasmConfig: tf.KernelConfig = {
  kernelName: RELU_GRAD_KERNEL,
  backendName: 'wasm',
  kernelFunc: (args) => maskedGrad(args, reluGradLoop),
};

function sameShapes(x: tf.Tensor, dy: tf.Tensor | tf.Tensor[]): dy is tf.Tensor {
  return !Array.isArray(dy) && x.dtype === 'float32' && dy.dtype === 'float32' && tf.util.arraysEqual(x.shape, dy.shape);
}

function onWasm(kernel: string): boolean {
  return tf.getBackend() === 'wasm' && tf.getKernel(kernel, 'wasm') != null;
}

/** ClipByValue's gradient: the wasm pass where it applies, tfjs' formula elsewhere. */
export function clipByValueGradConfig(stock: tf.GradConfig): tf.GradConfig {
  return {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const { clipValueMin, clipValueMax } = attrs as unknown as { clipValueMin: number; clipValueMax: number };
      if (!onWasm(CLIP_GRAD_KERNEL) || !sameShapes(x, dy)) return stock.gradFunc(dy, saved, attrs);
      return {
        x: () => tf.engine().runKernel(CLIP_GRAD_KERNEL, { x, dy }, { lo: clipValueMin, hi: clipValueMax } as unknown as tf.NamedAttrMap) as tf.Tensor,
      };
    },
  };
}

/** Relu's gradient: the wasm pass where it applies, tfjs' formula elsewhere. */
export function reluGradConfig(stock: tf.GradConfig): tf.GradConfig {
  return {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      if (!onWasm(RELU_GRAD_KERNEL) || !sameShapes(x, dy)) return stock.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(RELU_GRAD_KERNEL, { x, dy }) as tf.Tensor };
    },
  };
}
