/**
 * `DepthwiseConv2dNativeBackpropFilter` for the tfjs `wasm` backend (missing
 * in 4.22.0, so fine-tuning any depthwise conv — MobileNet — throws on wasm).
 *
 * Math (NHWC, filter [KH,KW,C,M], dy channel c*M + m):
 *   dW[kh, kw, c, m] = sum_{b, oh, ow} xTap_{kh,kw}[b, oh, ow, c] * dy[b, oh, ow, c*M + m]
 * with xTap_{kh,kw}[b, oh, ow, c] = x[b, oh*sH + kh*dH - padTop, ow*sW + kw*dW - padLeft, c]
 * (zero outside x).
 *
 * Per tap the kernel forms the elementwise product of (shifted) x and dy and
 * sums it with an XNNPACK average pool over the whole batch-stacked image.
 * Stride 1 shifts dy with pad onto a canvas aligned with padded x; strided
 * convs extract each x tap at dy's resolution with a one-hot depthwise conv.
 * Avoided on purpose (measured on wasm): stridedSlice with stride > 1 and
 * gather (generic per-element C++ paths, ~100 ns/element), tf.sum over
 * leading axes (transposes first), and a ones-vector matMul (repacks the
 * fresh [N, C] operand as matMul "weights" every call, ~13 ns/element).
 */
import * as tf from '@tensorflow/tfjs';
import { asTensor, oneHotTapFilter } from './conv2d-backprop-filter.js';

/**
 * Kernel function computing dW for a depthwise 2-D convolution on wasm.
 * Inputs: x [B,H,W,C], dy [B,OH,OW,C*M]. Attrs as
 * tf.DepthwiseConv2dNativeBackpropFilterAttrs (strides, dilations, pad,
 * dimRoundingMode, filterShape [KH,KW,C,M]). Returns float32 [KH,KW,C,M].
 */
export const depthwiseConv2dNativeBackpropFilterWasm: tf.KernelFunc = ({
  inputs,
  backend,
  attrs,
}) => {
  const { strides, dilations, pad, dimRoundingMode, filterShape } =
    attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const $dilations = dilations ?? 1;
  const xInfo = inputs.x as tf.TensorInfo;
  const dyInfo = inputs.dy as tf.TensorInfo;
  if (xInfo.shape.length !== 4 || dyInfo.shape.length !== 4) {
    throw new Error(
      `wasm DepthwiseConv2dNativeBackpropFilter: x and dy must be rank 4, got ` +
        `${xInfo.shape} and ${dyInfo.shape}.`,
    );
  }
  const info = tf.backend_util.computeConv2DInfo(
    xInfo.shape as [number, number, number, number],
    filterShape,
    strides,
    $dilations,
    pad,
    dimRoundingMode,
    true,
  );
  if (dyInfo.shape.some((d, i) => d !== info.outShape[i])) {
    throw new Error(
      `wasm DepthwiseConv2dNativeBackpropFilter: dy shape ${dyInfo.shape} does not ` +
        `match the forward output shape ${info.outShape}.`,
    );
  }
  const [B, OH, OW] = info.outShape;
  const [KH, KW, C, M] = filterShape;
  const K = KH * KW;
  const N = B * OH * OW;
  const { top, bottom, left, right } = info.padInfo;

  return tf.tidy(() => {
    const x = asTensor(xInfo, backend) as tf.Tensor4D;
    const dy = asTensor(dyInfo, backend) as tf.Tensor4D;
    // Sum of P [B, R, S, CM] over B, R, S as an XNNPACK average pool over the
    // whole (batch-stacked) image; the 1/count is undone once at the end.
    // On wasm this is ~5x faster than tf.sum over the leading axes (which
    // transposes first) and ~20x faster than a ones-vector matMul (which
    // repacks the fresh [N, CM] operand as matMul "weights" on every call).
    const poolSum = (p: tf.Tensor4D) => {
      const [b, r, s, cm] = p.shape;
      const stacked = tf.reshape(p, [1, b * r, s, cm]) as tf.Tensor4D;
      return tf.reshape(tf.avgPool(stacked, [b * r, s], 1, 'valid'), [1, cm]);
    };
    const finish = (rows: tf.Tensor[], count: number) =>
      tf.reshape(tf.mul(rows.length === 1 ? rows[0] : tf.concat(rows, 0), count), filterShape);

    // 1x1 / stride 1 / unpadded with M = 1: x already lines up with dy.
    if (
      K === 1 && M === 1 &&
      info.strideHeight === 1 && info.strideWidth === 1 &&
      top === 0 && bottom === 0 && left === 0 && right === 0
    ) {
      return finish([poolSum(tf.mul(x, dy))], N);
    }

    if (info.strideHeight === 1 && info.strideWidth === 1) {
      // Stride 1: instead of shifting x per tap, place dy at the tap's offset
      // on a zero canvas aligned with the padded x. Per tap that is pad + mul +
      // pool (~3.5 ns/element on wasm) versus ~6.5 ns/element for one-hot
      // depthwise extraction + mul + pool; the canvas is only (OH+KH-1)/OH
      // larger per axis, which vanishes at MobileNet's larger resolutions.
      const dH = info.dilationHeight;
      const dW = info.dilationWidth;
      const Hc = Math.max(OH + (KH - 1) * dH, top + info.inHeight);
      const Wc = Math.max(OW + (KW - 1) * dW, left + info.inWidth);
      let xc: tf.Tensor4D = x;
      const padB = Hc - info.inHeight - top;
      const padR = Wc - info.inWidth - left;
      if (top + padB + left + padR > 0) {
        xc = tf.pad(x, [[0, 0], [top, padB], [left, padR], [0, 0]]);
      }
      if (M > 1) {
        // Replicate each input channel M times (channel c*M + m) to match dy.
        xc = tf.depthwiseConv2d(xc, oneHotTapFilter(1, 1, C, new Array<number>(M).fill(0)), 1, 'valid');
      }
      const rows: tf.Tensor[] = [];
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++) {
          const dyShift = tf.pad(dy, [
            [0, 0],
            [kh * dH, Hc - OH - kh * dH],
            [kw * dW, Wc - OW - kw * dW],
            [0, 0],
          ]);
          rows.push(poolSum(tf.mul(xc, dyShift)));
        }
      }
      return finish(rows, B * Hc * Wc);
    }

    // Strided: one-hot depthwise conv per tap produces the strided, padded
    // tap of x directly at dy's resolution (a canvas would be stride^2 larger).
    const rows: tf.Tensor[] = [];
    for (let k = 0; k < K; k++) {
      // Same strides/pad/dilations/rounding as the forward op, so padding and
      // output size follow exactly the forward's conventions.
      const xTap = tf.depthwiseConv2d(
        x,
        oneHotTapFilter(KH, KW, C, new Array<number>(M).fill(k)),
        [info.strideHeight, info.strideWidth],
        pad,
        'NHWC',
        [info.dilationHeight, info.dilationWidth],
        dimRoundingMode,
      );
      rows.push(poolSum(tf.mul(xTap, dy)));
    }
    // Rows are taps in (kh, kw) order and columns c*M + m: exactly [KH,KW,C,M].
    return finish(rows, N);
  });
};

/** Kernel config for `tf.registerKernel` (wasm backend). */
export const depthwiseConv2dNativeBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropFilterWasm,
};
