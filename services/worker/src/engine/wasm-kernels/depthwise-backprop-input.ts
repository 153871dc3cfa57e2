/**
 * `DepthwiseConv2dNativeBackpropInput` for the tfjs `wasm` backend (missing in
 * 4.22.0; needed to backpropagate through any depthwise conv that is not the
 * first layer).
 *
 * dx is the transposed depthwise convolution of dy:
 *   dx[b, h, w, c] = sum_{kh,kw,m} dy[b, oh, ow, c*M + m] * W[kh, kw, c, m]
 *   over all (oh, kh) with oh*sH + kh*dH - padTop = h (same for columns).
 * Computed as: insert sH-1 / sW-1 zeros between dy rows / columns (a rank-6
 * reshape + pad, which the wasm pad kernel does at memcpy speed), pad by
 * (K-1)*d - padTop on the leading side (the remainder on the trailing side so
 * exactly H rows come out), then run a stride-1 'valid' XNNPACK depthwise conv
 * with the filter rotated 180 degrees and the forward's dilations. The padding
 * is passed to the conv as explicit padding, so no padded copy of dy is made.
 * For multiplier M > 1 the filter is viewed as [KH,KW,C*M,1] (its memory order
 * already matches dy's channel order c*M + m) and the M partial results are
 * summed over the innermost axis (cheap; no transpose).
 */
import * as tf from '@tensorflow/tfjs';
import { asTensor } from './conv2d-backprop-filter.js';

/**
 * Padding for one spatial axis of the zero-dilated dy.
 * `lead` zeros precede each dy element inside its stride slot (0..s-1), chosen
 * so that both pads come out non-negative whenever possible; `cropLead` /
 * `cropTrail` (rare: oversized explicit padding or stride > filter size) are
 * rows to slice off because a negative pad is not expressible.
 */
interface AxisPlan {
  lead: number;
  padBefore: number;
  padAfter: number;
  cropLead: number;
  cropTrail: number;
}

function planAxis(
  outSize: number,
  inSize: number,
  stride: number,
  filterSize: number,
  dilation: number,
  padBeforeFwd: number,
): AxisPlan {
  const span = (filterSize - 1) * dilation;
  const before = span - padBeforeFwd; // pad needed before dy element 0
  const total = inSize + span; // rows the stride-1 valid conv must see
  const len = outSize * stride; // rows of the zero-dilated dy
  // With `lead` zeros before each element: padBefore = before - lead,
  // padAfter = total - padBefore - len. Find lead in [0, stride-1] making both >= 0.
  const lo = Math.max(0, len + before - total);
  const hi = Math.min(stride - 1, before);
  const lead = lo <= hi ? lo : Math.min(Math.max(lo, 0), stride - 1);
  const padBefore = before - lead;
  const padAfter = total - padBefore - len;
  return {
    lead,
    padBefore: Math.max(0, padBefore),
    padAfter: Math.max(0, padAfter),
    cropLead: Math.max(0, -padBefore),
    cropTrail: Math.max(0, -padAfter),
  };
}

/**
 * Kernel function computing dx for a depthwise 2-D convolution on wasm.
 * Inputs: dy [B,OH,OW,C*M], filter [KH,KW,C,M]. Attrs as
 * tf.DepthwiseConv2dNativeBackpropInputAttrs (strides, dilations, pad,
 * dimRoundingMode, inputShape [B,H,W,C]). Returns float32 of inputShape.
 */
export const depthwiseConv2dNativeBackpropInputWasm: tf.KernelFunc = ({
  inputs,
  backend,
  attrs,
}) => {
  const { strides, dilations, pad, dimRoundingMode, inputShape } =
    attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const dyInfo = inputs.dy as tf.TensorInfo;
  const filterInfo = inputs.filter as tf.TensorInfo;
  if (dyInfo.shape.length !== 4 || filterInfo.shape.length !== 4) {
    throw new Error(
      `wasm DepthwiseConv2dNativeBackpropInput: dy and filter must be rank 4, got ` +
        `${dyInfo.shape} and ${filterInfo.shape}.`,
    );
  }
  const filterShape = filterInfo.shape as [number, number, number, number];
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  if (dyInfo.shape.some((d, i) => d !== info.outShape[i])) {
    throw new Error(
      `wasm DepthwiseConv2dNativeBackpropInput: dy shape ${dyInfo.shape} does not ` +
        `match the forward output shape ${info.outShape} for input ${inputShape}.`,
    );
  }
  const [B, OH, OW, CM] = info.outShape;
  const [KH, KW, C, M] = filterShape;
  const sH = info.strideHeight;
  const sW = info.strideWidth;
  const rowPlan = planAxis(OH, info.inHeight, sH, KH, info.dilationHeight, info.padInfo.top);
  const colPlan = planAxis(OW, info.inWidth, sW, KW, info.dilationWidth, info.padInfo.left);

  return tf.tidy(() => {
    let g = asTensor(dyInfo, backend) as tf.Tensor4D;
    if (sH > 1 || sW > 1) {
      // Zero-insertion: [B,OH,1,OW,1,CM] padded to [B,OH,sH,OW,sW,CM]. Each dy
      // element sits at offset `lead` inside its stride slot.
      const six = tf.reshape(g, [B, OH, 1, OW, 1, CM]);
      g = tf.reshape(
        tf.pad(six, [
          [0, 0],
          [0, 0],
          [rowPlan.lead, sH - 1 - rowPlan.lead],
          [0, 0],
          [colPlan.lead, sW - 1 - colPlan.lead],
          [0, 0],
        ]),
        [B, OH * sH, OW * sW, CM],
      );
    }
    if (rowPlan.cropLead + rowPlan.cropTrail + colPlan.cropLead + colPlan.cropTrail > 0) {
      g = tf.slice(
        g,
        [0, rowPlan.cropLead, colPlan.cropLead, 0],
        [
          B,
          OH * sH - rowPlan.cropLead - rowPlan.cropTrail,
          OW * sW - colPlan.cropLead - colPlan.cropTrail,
          CM,
        ],
      );
    }
    // Rotating the filter 180 degrees reverses the flattened tap index
    // k = kh*KW + kw. A [K,K] anti-identity matMul does that exactly and is
    // ~3x faster on wasm than tf.reverse (a generic per-element C++ loop).
    // Viewing the result as [KH, KW, C*M, 1] also handles multiplier M.
    const K = KH * KW;
    const anti = new Float32Array(K * K);
    for (let k = 0; k < K; k++) anti[k * K + (K - 1 - k)] = 1;
    const filter = tf.reshape(asTensor(filterInfo, backend), [K, CM]);
    const rotated = tf.reshape(tf.matMul(tf.tensor2d(anti, [K, K]), filter), [KH, KW, CM, 1]) as tf.Tensor4D;
    const out = tf.depthwiseConv2d(
      g,
      rotated,
      1,
      [
        [0, 0],
        [rowPlan.padBefore, rowPlan.padAfter],
        [colPlan.padBefore, colPlan.padAfter],
        [0, 0],
      ],
      'NHWC',
      [info.dilationHeight, info.dilationWidth],
    );
    if (M === 1) return out;
    return tf.sum(tf.reshape(out, [B, info.inHeight, info.inWidth, C, M]), 4);
  });
};

/** Kernel config for `tf.registerKernel` (wasm backend). */
export const depthwiseConv2dNativeBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInputWasm,
};
