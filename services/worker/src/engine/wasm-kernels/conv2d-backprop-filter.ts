/**
 * `Conv2DBackpropFilter` for the tfjs `wasm` backend (4.22.0 ships without it,
 * so the filter gradient of every `tf.conv2d` / `tf.layers.conv2d` throws on
 * wasm).
 *
 * The kernel is composed from ops the wasm backend already implements with
 * XNNPACK (depthwiseConv2d, matMul, transpose, reshape). Measured on wasm in
 * Node (single-threaded), the cheap primitives are XNNPACK convolutions, plain
 * (non-transposed) matMul, same-shape elementwise ops and pad; the expensive
 * ones are the generic C++/JS kernels: stridedSlice with stride > 1 (~100x
 * slower per element than a copy), gather, tile, rank > 4 transposes/slices,
 * and matMul with transposeA/transposeB (~12x slower than transpose + matMul).
 * The design below only uses the cheap ones.
 *
 * Math (NHWC, dilation 1 — tfjs's conv2d gradient rejects dilations > 1):
 *   dW[kh, kw, ci, co] = sum_{b, oh, ow} xTap_{kh,kw}[b, oh, ow, ci] * dy[b, oh, ow, co]
 * where xTap_{kh,kw}[b, oh, ow, :] = x[b, oh*sH + kh - padTop, ow*sW + kw - padLeft, :]
 * (zero outside x). With N = B*OH*OW each tap is one [Ci, N] x [N, Co] matMul.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Wraps a kernel input as a `tf.Tensor` so tf ops can consume it. Inputs that
 * reach a kernel through `ENGINE.runKernel` from an op are already tensors and
 * are returned untouched (never disposed here). A bare TensorInfo gets its
 * backend refcount bumped first, so disposing the wrapper (inside the
 * caller's tf.tidy) cannot free the caller's data.
 * Shared with the depthwise kernels in this folder.
 */
export function asTensor(info: tf.TensorInfo, backend: unknown): tf.Tensor {
  if ((info as tf.Tensor).rank != null) return info as tf.Tensor;
  (backend as { incRef?: (dataId: object) => void }).incRef?.(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend as tf.KernelBackend);
}

/**
 * Builds the [KH, KW, C, mult] depthwise filter that copies input channel c
 * into output channel c*mult + m, where for each m only tap `taps[m]`
 * (row-major index kh*KW + kw) is 1.
 * Convolving x with it (same strides/pad/dilations as the forward op) yields
 * the tap-shifted, strided, zero-padded copies of x that line up with dy —
 * computed by XNNPACK, which is far faster on wasm than stridedSlice/gather,
 * and exact for finite inputs (every output is 1*x + 0*others; a non-finite
 * x would also poison its neighbours' taps via 0*Inf = NaN).
 * Shared with the depthwise kernels in this folder.
 */
export function oneHotTapFilter(
  kh: number,
  kw: number,
  channels: number,
  taps: number[],
): tf.Tensor4D {
  const mult = taps.length;
  const vals = new Float32Array(kh * kw * channels * mult);
  for (let m = 0; m < mult; m++) {
    const base = taps[m] * channels * mult;
    for (let c = 0; c < channels; c++) vals[base + c * mult + m] = 1;
  }
  return tf.tensor4d(vals, [kh, kw, channels, mult]);
}

/**
 * Up to this many im2col channels (Ci*KH*KW) a single channel-multiplier
 * depthwise conv builds the whole im2col matrix (best for the RGB stem conv,
 * Ci*K = 27); above it one multiplier-1 conv per tap is faster, since
 * XNNPACK's multiplier > 1 path is several times slower per output.
 */
const IM2COL_MAX_CHANNELS = 64;

/**
 * Kernel function computing dW for a 2-D convolution on the wasm backend.
 * Inputs: x [B,H,W,Ci], dy [B,OH,OW,Co]. Attrs as tf.Conv2DBackpropFilterAttrs
 * (strides, pad 'same'|'valid'|number|explicit, dataFormat, dimRoundingMode,
 * filterShape). Returns a float32 tensor of shape filterShape [KH,KW,Ci,Co].
 * Only NHWC is supported (the wasm forward conv is NHWC-only as well).
 */
export const conv2DBackpropFilterWasm: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (dataFormat === 'NCHW') {
    throw new Error(
      "wasm Conv2DBackpropFilter: dataFormat 'NCHW' is not supported; use 'NHWC'.",
    );
  }
  const xInfo = inputs.x as tf.TensorInfo;
  const dyInfo = inputs.dy as tf.TensorInfo;
  if (xInfo.shape.length !== 4 || dyInfo.shape.length !== 4) {
    throw new Error(
      `wasm Conv2DBackpropFilter: x and dy must be rank 4, got ${xInfo.shape} and ${dyInfo.shape}.`,
    );
  }
  const info = tf.backend_util.computeConv2DInfo(
    xInfo.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const [B, OH, OW, Co] = info.outShape;
  if (dyInfo.shape.some((d, i) => d !== info.outShape[i])) {
    throw new Error(
      `wasm Conv2DBackpropFilter: dy shape ${dyInfo.shape} does not match the ` +
        `forward output shape ${info.outShape}.`,
    );
  }
  const [KH, KW, Ci] = filterShape;
  const K = KH * KW;
  const N = B * OH * OW;
  const { top, bottom, left, right } = info.padInfo;

  return tf.tidy(() => {
    const x = asTensor(xInfo, backend);
    const dy2 = tf.reshape(asTensor(dyInfo, backend), [N, Co]);

    // 1x1, stride 1, no padding (MobileNet's pointwise convs): x already lines
    // up with dy, so dW = x^T dy. One [N, *] operand must be transposed and
    // the other is packed by XNNPACK as matMul "weights"; interleaved A/B
    // timings on MobileNetV2 shapes favour transposing the wider operand and
    // packing the narrower one (the [Co,Ci] result transpose is negligible).
    if (
      K === 1 &&
      info.strideHeight === 1 &&
      info.strideWidth === 1 &&
      top === 0 && bottom === 0 && left === 0 && right === 0
    ) {
      const x2 = tf.reshape(x, [N, Ci]);
      const dW =
        Co > Ci
          ? tf.transpose(tf.matMul(tf.transpose(dy2), x2))
          : tf.matMul(tf.transpose(x2), dy2);
      return tf.reshape(dW, filterShape);
    }

    // General case: gather the K strided/padded taps of x with one-hot
    // depthwise convs (same strides/pad/rounding as the forward conv, so the
    // padding conventions match it exactly), then contract over N with plain
    // matMuls tap^T @ dy. dy is the matMul "weights" operand in every call;
    // it is the same tensor each time, so wasm's XNNPACK operator cache packs
    // it once. (Measured: this beats transposing dy once and packing every
    // tap instead, by 10-40% on 3x3 convs.)
    const extract = (taps: number[]) =>
      tf.depthwiseConv2d(
        x as tf.Tensor4D,
        oneHotTapFilter(KH, KW, Ci, taps),
        [info.strideHeight, info.strideWidth],
        pad,
        'NHWC',
        [1, 1],
        dimRoundingMode,
      );

    if (Ci * K <= IM2COL_MAX_CHANNELS) {
      // Small Ci (e.g. the RGB stem conv): one multiplier-K depthwise conv
      // produces the whole im2col matrix [N, Ci*K] (column ci*K + k), so a
      // single matMul does the contraction: [Ci*K, Co] -> [Ci, K, Co] -> [K, Ci, Co].
      const cols = tf.reshape(extract([...Array(K).keys()]), [N, Ci * K]);
      const r = tf.reshape(tf.matMul(tf.transpose(cols), dy2), [Ci, K, Co]);
      return tf.reshape(tf.transpose(r, [1, 0, 2]), filterShape);
    }

    const perTap: tf.Tensor2D[] = [];
    for (let k = 0; k < K; k++) {
      const tap = tf.reshape(extract([k]), [N, Ci]) as tf.Tensor2D;
      perTap.push(tf.matMul(tf.transpose(tap), dy2)); // [Ci, Co]
    }
    return tf.reshape(tf.stack(perTap), filterShape); // [K, Ci, Co]
  });
};

/** Kernel config for `tf.registerKernel` (wasm backend). */
export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilterWasm,
};
