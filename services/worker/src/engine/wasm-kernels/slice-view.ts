/**
 * Slice for tfjs-backend-wasm without the whole-input copy. The stock kernel
 * (4.22.0) starts with `backend.readSync(x)`, which copies *all* of x out of
 * the wasm heap into a fresh JS buffer before taking the slice; taking
 * batches off a large tensor (a dataset split, an epoch's cached
 * activations, tfjs-layers' own fit loop) then copies the whole tensor once
 * per batch: measured on 30,000 Fashion-MNIST images at 64 px (490 MB), the
 * features pass spent most of its time in that memmove and in page faults on
 * the fresh buffers. Here both sides are views onto the heap, and only the
 * slice is copied: one `set` for a contiguous slice (any slice along the
 * first axis), one per innermost run otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm-backend.js';

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Copies the box begin..begin+size of `src` (shape `shape`) into `dst`, row-major. */
export function copyBox(src: tf.TypedArray, shape: readonly number[], begin: readonly number[], size: readonly number[], dst: tf.TypedArray): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const st = strides(shape);
  // Trailing axes taken whole (with the first partial one) form one contiguous run per outer index.
  let inner = rank - 1;
  while (inner > 0 && begin[inner] === 0 && size[inner] === shape[inner]) inner--;
  const run = size.slice(inner).reduce((a, b) => a * b, 1);
  const outer = size.slice(0, inner);
  const count = outer.reduce((a, b) => a * b, 1);
  const idx = new Array<number>(inner).fill(0);
  let o = 0;
  for (let k = 0; k < count; k++) {
    let off = begin[inner] * st[inner];
    for (let a = 0; a < inner; a++) off += (begin[a] + idx[a]) * st[a];
    dst.set(src.subarray(off, off + run), o);
    o += run;
    for (let a = inner - 1; a >= 0; a--) {
      if (++idx[a] < outer[a]) break;
      idx[a] = 0;
    }
  }
}

export function sliceViewConfig(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    ...stock,
    kernelFunc: (args) => {
      const { inputs, attrs, backend } = args as unknown as { inputs: { x: tf.TensorInfo }; attrs: { begin: number | number[]; size?: number | number[] }; backend: WasmBackendLike };
      const { x } = inputs;
      if (x.dtype === 'string') return stock.kernelFunc(args);
      const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin, attrs.size);
      // makeOutput may grow the heap and detach earlier views: take both views after it.
      const out = backend.makeOutput(size, x.dtype);
      if (size.some((d) => d === 0)) return out;
      copyBox(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
      return out;
    },
  };
}
