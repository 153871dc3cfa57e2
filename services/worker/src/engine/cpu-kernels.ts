import * as tf from '@tensorflow/tfjs';

/**
 * Faster cpu kernels for the two filter gradients fine-tuning needs. The
 * stock ones read every element through `TensorBuffer.get` in a 7-deep loop
 * over (filter, channels, batch, positions): a tiny_cnn training step at
 * 32 px spent ~80% of its time there. These walk the flat NHWC arrays once,
 * accumulating into the filter gradient with a contiguous inner loop; the
 * arithmetic is the same, so results match to float rounding. Anything they
 * do not cover (NCHW, dilation) goes to the stock kernel.
 */

type KernelFunc = tf.KernelConfig['kernelFunc'];

interface CpuBackendLike {
  data: { get(id: unknown): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

interface FilterGradArgs {
  inputs: { x: tf.TensorInfo; dy: tf.TensorInfo };
  backend: CpuBackendLike;
  attrs: {
    strides: number | [number, number];
    pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
    dataFormat?: 'NHWC' | 'NCHW';
    dilations?: number | [number, number];
  };
}

function isUnitDilation(d: number | [number, number] | undefined): boolean {
  return d === undefined || d === 1 || (Array.isArray(d) && d[0] === 1 && d[1] === 1);
}

/**
 * dW[wR, wC, d1, :] += x[b, xR, xC, d1] * dy[b, yR, yC, :] over all positions.
 * `depthwise`: dW[wR, wC, d1, m] += x[.., d1] * dy[.., d1 * chMul + m].
 */
function filterGradient(args: FilterGradArgs, depthwise: boolean): tf.TensorInfo {
  const { x, dy } = args.inputs;
  const { strides, pad, dimRoundingMode, filterShape } = args.attrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    depthwise,
  );
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const xv = args.backend.data.get(x.dataId).values;
  const dyv = args.backend.data.get(dy.dataId).values;
  const dW = new Float32Array(filterShape[0] * filterShape[1] * filterShape[2] * filterShape[3]);
  const chMul = depthwise ? outChannels / inChannels : 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      for (let yC = 0; yC < outWidth; yC++) {
        const dyOff = ((b * outHeight + yR) * outWidth + yC) * outChannels;
        for (let wR = 0; wR < filterHeight; wR++) {
          const xR = yR * strideHeight + wR - top;
          if (xR < 0 || xR >= inHeight) continue;
          for (let wC = 0; wC < filterWidth; wC++) {
            const xC = yC * strideWidth + wC - left;
            if (xC < 0 || xC >= inWidth) continue;
            const xOff = ((b * inHeight + xR) * inWidth + xC) * inChannels;
            const wBase = (wR * filterWidth + wC) * inChannels;
            if (depthwise) {
              for (let d1 = 0; d1 < inChannels; d1++) {
                const v = xv[xOff + d1];
                const wOff = (wBase + d1) * chMul;
                const yOff = dyOff + d1 * chMul;
                for (let m = 0; m < chMul; m++) dW[wOff + m] += v * dyv[yOff + m];
              }
            } else {
              for (let d1 = 0; d1 < inChannels; d1++) {
                const v = xv[xOff + d1];
                if (v === 0) continue; // post-ReLU inputs are often zero
                const wOff = (wBase + d1) * outChannels;
                for (let d2 = 0; d2 < outChannels; d2++) dW[wOff + d2] += v * dyv[dyOff + d2];
              }
            }
          }
        }
      }
    }
  }
  return args.backend.makeTensorInfo(filterShape, 'float32', dW);
}

const FAST_KERNELS: Array<{ name: string; depthwise: boolean; covers(a: FilterGradArgs['attrs']): boolean }> = [
  { name: 'Conv2DBackpropFilter', depthwise: false, covers: (a) => (a.dataFormat ?? 'NHWC') === 'NHWC' },
  { name: 'DepthwiseConv2dNativeBackpropFilter', depthwise: true, covers: (a) => isUnitDilation(a.dilations) },
];

let registered: string[] | null = null;

/**
 * Replaces the cpu backend's Conv2DBackpropFilter and
 * DepthwiseConv2dNativeBackpropFilter with the flat-array versions above.
 * Idempotent. @returns the kernel names replaced.
 */
export function registerFastCpuGradientKernels(): string[] {
  if (registered) return registered;
  registered = [];
  for (const k of FAST_KERNELS) {
    const stock = tf.getKernel(k.name, 'cpu');
    if (!stock) continue;
    const stockFunc = stock.kernelFunc;
    const kernelFunc: KernelFunc = (args) => {
      const a = args as unknown as FilterGradArgs;
      if (!k.covers(a.attrs)) return stockFunc(args);
      return filterGradient(a, k.depthwise);
    };
    tf.unregisterKernel(k.name, 'cpu');
    tf.registerKernel({ ...stock, kernelFunc });
    registered.push(k.name);
  }
  return registered;
}
