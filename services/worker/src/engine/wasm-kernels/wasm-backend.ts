import type * as tf from '@tensorflow/tfjs';

/**
 * The parts of tfjs-backend-wasm's BackendWasm that the kernels in this
 * folder written in JS use: a fresh output on the wasm heap, and a typed
 * view of a tensor's heap memory. makeOutput may grow the heap and detach
 * earlier views, so a kernel takes its views after its last makeOutput.
 */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
}
