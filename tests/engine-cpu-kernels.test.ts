/**
 * The engine's flat-array cpu filter gradients against the stock tfjs cpu
 * kernels they replace, on the shapes MobileNet-style nets use.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerFastCpuGradientKernels } from '../services/worker/src/engine/cpu-kernels.js';

type Shape4 = [number, number, number, number];
type Case = { name: string; x: Shape4; filter: Shape4; strides: number; pad: 'same' | 'valid'; depthwise: boolean };

const CASES: Case[] = [
  { name: 'conv 1x1', x: [2, 9, 9, 5], filter: [1, 1, 5, 7], strides: 1, pad: 'same', depthwise: false },
  { name: 'conv 3x3 stride 2 same', x: [2, 9, 9, 5], filter: [3, 3, 5, 7], strides: 2, pad: 'same', depthwise: false },
  { name: 'conv 3x3 stride 2 valid', x: [2, 8, 8, 5], filter: [3, 3, 5, 7], strides: 2, pad: 'valid', depthwise: false },
  { name: 'depthwise 3x3', x: [2, 9, 9, 4], filter: [3, 3, 4, 1], strides: 1, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2, multiplier 2', x: [2, 10, 10, 4], filter: [3, 3, 4, 2], strides: 2, pad: 'same', depthwise: true },
  { name: 'depthwise 3x3 stride 2 valid', x: [2, 9, 9, 4], filter: [3, 3, 4, 1], strides: 2, pad: 'valid', depthwise: true },
];

function filterGradient(c: Case, seed: number): Float32Array {
  return tf.tidy(() => {
    // ReLU'd input, as after an activation: exercises the zero-skipping path.
    const x = tf.relu(tf.randomNormal(c.x, 0, 1, 'float32', seed)) as tf.Tensor4D;
    const f = tf.randomNormal(c.filter, 0, 1, 'float32', seed + 1) as tf.Tensor4D;
    const loss = (w: tf.Tensor) => {
      const y = c.depthwise ? tf.depthwiseConv2d(x, w as tf.Tensor4D, c.strides, c.pad) : tf.conv2d(x, w as tf.Tensor4D, c.strides, c.pad);
      return y.square().sum();
    };
    return tf.grad(loss)(f).dataSync() as Float32Array;
  });
}

describe('fast cpu filter-gradient kernels', () => {
  const stock: Float32Array[] = [];

  beforeAll(async () => {
    await tf.setBackend('cpu');
    CASES.forEach((c, i) => stock.push(filterGradient(c, 10 * i + 1)));
    expect(registerFastCpuGradientKernels()).toEqual(['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter']);
  });

  it.each(CASES.map((c, i) => [c.name, i] as const))('%s matches the stock kernel', (_name, i) => {
    const fast = filterGradient(CASES[i], 10 * i + 1);
    let maxDiff = 0;
    let maxRef = 0;
    stock[i].forEach((v, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - fast[j]));
      maxRef = Math.max(maxRef, Math.abs(v));
    });
    expect(maxRef).toBeGreaterThan(1);
    expect(maxDiff / maxRef).toBeLessThan(1e-5);
  });

  it('is idempotent', () => {
    expect(registerFastCpuGradientKernels()).toEqual(['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter']);
  });
});
