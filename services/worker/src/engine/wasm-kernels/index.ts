/**
 * Gradient kernels that @tensorflow/tfjs-backend-wasm 4.22.0 lacks, so that
 * convolutional nets (MobileNetV2 in particular) can be fine-tuned on wasm.
 *
 * Usage (once per process, before training on wasm):
 *   import '@tensorflow/tfjs-backend-wasm';
 *   registerWasmGradientKernels();
 *   await tf.setBackend('wasm');
 */
import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { depthwiseConv2dNativeBackpropFilterConfig } from './depthwise-backprop-filter.js';
import { depthwiseConv2dNativeBackpropInputConfig } from './depthwise-backprop-input.js';

export { conv2DBackpropFilterWasm } from './conv2d-backprop-filter.js';
export { depthwiseConv2dNativeBackpropFilterWasm } from './depthwise-backprop-filter.js';
export { depthwiseConv2dNativeBackpropInputWasm } from './depthwise-backprop-input.js';
export { registerWasmFastPaths, restoreStockWasmKernels } from './fast-paths.js';

/** All kernel configs this module can provide, in registration order. */
export const WASM_GRADIENT_KERNEL_CONFIGS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
];

/**
 * Registers the missing wasm gradient kernels (Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput).
 *
 * Idempotent, and defers to any implementation that is already registered
 * for 'wasm' (a future tfjs-backend-wasm release, or an earlier call), since
 * tf.registerKernel would otherwise warn and overwrite it. Works whether or
 * not the wasm backend has been imported/initialised yet: kernels are looked
 * up by (name, backend) at run time.
 *
 * @returns the kernel names registered by this call (empty on repeat calls).
 */
export function registerWasmGradientKernels(): string[] {
  const registered: string[] = [];
  for (const config of WASM_GRADIENT_KERNEL_CONFIGS) {
    if (tf.getKernel(config.kernelName, 'wasm') != null) continue;
    tf.registerKernel(config);
    registered.push(config.kernelName);
  }
  return registered;
}
