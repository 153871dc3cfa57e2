/**
 * Keras `imagenet_utils.correct_pad`: the zero padding before a stride-2
 * 'valid' convolution (or pooling) with a `kernelSize` window over a
 * `size`-pixel input, so that it maps size s to ceil(s / 2) like 'same'
 * padding but with TensorFlow's placement (one pixel less at the top/left
 * when s is even). Saved topologies carry the padding of their input size,
 * so it must be recomputed at any other size.
 */
export function correctPad(size: number, kernelSize: number): [[number, number], [number, number]] {
  const adjust = 1 - (size % 2);
  const half = Math.floor(kernelSize / 2);
  return [
    [half - adjust, half],
    [half - adjust, half],
  ];
}
