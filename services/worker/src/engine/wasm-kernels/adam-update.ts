/**
 * Adam's update for the tfjs `wasm` backend as one pass per variable.
 *
 * tfjs' AdamOptimizer.applyGradients runs 13 element-wise kernels per
 * variable (moments, bias correction, sqrt, divide, scale, add), each with
 * fresh scalar tensors and a pass over memory. Fine-tuning MobileNetV2's top
 * blocks on cached activations has ~40 trainable variables with up to 2M
 * values and small activations (2×2 to 4×4 at 64 px), so the optimizer is a
 * large part of a step there. This kernel reads value, m, v and the gradient
 * once and writes the three new tensors.
 *
 * The moments (the optimizer's state) are tfjs' own arithmetic, in its order,
 * each operation rounded to float32 (`Math.fround` after an IEEE double
 * operation on float32 inputs gives the correctly rounded float32 result, as
 * wasm's f32 ops do): they equal the stock ones bit for bit. The weight step
 * is computed in double with one division and one square root (the exact
 * float32 chain of three divisions is twice as slow here: 14.7 against
 * 8.7 ms for 1.4M values) and rounded once, so a new weight differs from
 * tfjs' by float32 rounding of the step only (tests/wasm-fast-paths.test.ts).
 * Slots keep tfjs' layout and names, so checkpoints and getWeights/setWeights
 * are unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm-backend.js';

export const ADAM_UPDATE_KERNEL = 'TlsweepAdamUpdate';

/** float32 constants exactly as tfjs' scalar tensors hold them. */
interface AdamConstants {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** 1 - beta1^t and 1 - beta2^t as tfjs computes them (float32 accumulators). */
  c1: number;
  c2: number;
  epsilon: number;
  negLearningRate: number;
}

const f = Math.fround;

function adamLoop(value: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, outValue: Float32Array, outM: Float32Array, outV: Float32Array, k: AdamConstants): void {
  const { beta1, oneMinusBeta1, beta2, oneMinusBeta2, c1, c2, epsilon, negLearningRate } = k;
  // lr · (m/c1) / (sqrt(v/c2) + eps) = (lr/c1) · m / (sqrt(v) / sqrt(c2) + eps): one division and one square root per value.
  const scale = negLearningRate / c1;
  const invSqrtC2 = 1 / Math.sqrt(c2);
  const n = value.length;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    // The moments are the optimizer's state: tfjs' float32 operations in its order, bit for bit.
    const m1 = f(f(m[i] * beta1) + f(gi * oneMinusBeta1));
    const v1 = f(f(v[i] * beta2) + f(f(gi * gi) * oneMinusBeta2));
    outM[i] = m1;
    outV[i] = v1;
    outValue[i] = value[i] + (scale * m1) / (Math.sqrt(v1) * invSqrtC2 + epsilon);
  }
}

export const adamUpdateWasmConfig: tf.KernelConfig = {
  kernelName: ADAM_UPDATE_KERNEL,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { value, m, v, g } = inputs as { value: tf.TensorInfo; m: tf.TensorInfo; v: tf.TensorInfo; g: tf.TensorInfo };
    const be = backend as unknown as WasmBackendLike;
    const outs = [be.makeOutput(value.shape.slice(), 'float32'), be.makeOutput(value.shape.slice(), 'float32'), be.makeOutput(value.shape.slice(), 'float32')];
    // makeOutput may grow the heap and detach earlier views: take every view after the last one.
    const view = (t: tf.TensorInfo) => be.typedArrayFromHeap(t) as Float32Array;
    adamLoop(view(value), view(m), view(v), view(g), view(outs[0]), view(outs[1]), view(outs[2]), attrs as unknown as AdamConstants);
    return outs;
  },
};

/** The AdamOptimizer internals (tfjs-core 4.22) the fused update reads and writes. */
interface AdamInternals {
  beta1: number;
  beta2: number;
  epsilon: number;
  learningRate: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  incrementIterations(): void;
  applyGradients(grads: tf.NamedTensorMap | Array<{ name: string; tensor: tf.Tensor }>): void;
}

function fusable(value: tf.Variable | undefined, gradient: tf.Tensor | undefined): boolean {
  if (!value) return false;
  if (gradient == null) return true; // skipped, as tfjs does
  return value.dtype === 'float32' && gradient.dtype === 'float32' && tf.util.arraysEqual(gradient.shape, value.shape);
}
/**
 * Makes `optimizer` (a tf.train.adam) update with one kernel per variable
 * while the wasm backend is active and the kernel is registered; otherwise,
 * or when a gradient is not float32 of its variable's shape, tfjs' own
 * applyGradients runs. Returns the optimizer.
 */
export function fuseAdamOnWasm(optimizer: tf.Optimizer): tf.Optimizer {
  if (!(optimizer instanceof tf.AdamOptimizer)) return optimizer;
  const o = optimizer as unknown as AdamInternals;
  const stock = o.applyGradients.bind(optimizer);
  o.applyGradients = (grads) => {
    if (tf.getBackend() !== 'wasm' || tf.getKernel(ADAM_UPDATE_KERNEL, 'wasm') == null) return stock(grads);
    const names = Array.isArray(grads) ? grads.map((g) => g.name) : Object.keys(grads);
    const gradientOf = (i: number): tf.Tensor | undefined => (Array.isArray(grads) ? grads[i].tensor : grads[names[i]]);
    // Slots tfjs has made are zeros of the variable's shape; a call with anything else (never seen
    // in training: gradients are float32 of their variable's shape) goes to tfjs as a whole.
    if (!names.every((name, i) => fusable(tf.engine().registeredVariables[name], gradientOf(i)))) return stock(grads);
    tf.tidy(() => {
      // As tfjs: 1 - beta^t from the float32 accumulators, scalars rounded to float32.
      const [acc1] = o.accBeta1.dataSync();
      const [acc2] = o.accBeta2.dataSync();
      const k: AdamConstants = {
        beta1: f(o.beta1),
        oneMinusBeta1: f(1 - o.beta1),
        beta2: f(o.beta2),
        oneMinusBeta2: f(1 - o.beta2),
        c1: f(1 - acc1),
        c2: f(1 - acc2),
        epsilon: f(o.epsilon),
        negLearningRate: f(-o.learningRate),
      };
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        o.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        o.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = gradientOf(i);
        if (gradient == null) return;
        const m = o.accumulatedFirstMoment[i]!.variable;
        const v = o.accumulatedSecondMoment[i]!.variable;
        const [newValue, newM, newV] = tf.engine().runKernel(ADAM_UPDATE_KERNEL, { value, m, v, g: gradient }, k as unknown as tf.NamedAttrMap) as tf.Tensor[];
        m.assign(newM);
        v.assign(newV);
        value.assign(newValue);
      });
      o.accBeta1.assign(tf.mul(o.accBeta1, o.beta1));
      o.accBeta2.assign(tf.mul(o.accBeta2, o.beta2));
    });
    o.incrementIterations();
  };
  return optimizer;
}
