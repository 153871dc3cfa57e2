/**
 * Backend selection, and one short tiny_cnn fine-tune on wasm with the
 * project's gradient kernels (the stock wasm backend lacks them).
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  EngineConfigError,
  registeredWasmGradientKernels,
  selectBackend,
  trainTrial,
} from '../services/worker/src/engine/index.js';
import type { BackendName } from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

/** Native TensorFlow (an optional dependency) is normally absent here; these tests assume so. */
const nativeInstalled = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].some((pkg) => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
});

describe('selectBackend', () => {
  it.skipIf(nativeInstalled)('throws a clear, typed error when the preferred backend is missing', async () => {
    // @tensorflow/tfjs-node(-gpu) are not installed in this project's CI.
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).message).toMatch(/backend 'tensorflow' is unavailable.*@tensorflow\/tfjs-node-gpu.*@tensorflow\/tfjs-node/);
    expect((err as BackendUnavailableError).tried).toEqual([{ name: 'tensorflow', error: expect.any(String) }]);
  });

  it('rejects an unknown backend name', async () => {
    await expect(selectBackend('webgpu' as BackendName)).rejects.toBeInstanceOf(EngineConfigError);
  });

  it('starts cpu when asked', async () => {
    expect(await selectBackend('cpu')).toEqual({ name: 'cpu', tried: [{ name: 'cpu' }] });
    expect(tf.getBackend()).toBe('cpu');
  });

  it.skipIf(nativeInstalled)('falls back past native TensorFlow to wasm, with the gradient kernels registered', async () => {
    const selection = await selectBackend();
    expect(selection.name).toBe('wasm');
    expect(selection.tried.map((t) => t.name)).toEqual(['tensorflow', 'wasm']);
    expect(selection.tried[0].error).toMatch(/tfjs-node/);
    expect(registeredWasmGradientKernels()).toEqual(
      expect.arrayContaining(['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']),
    );
    for (const k of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']) {
      expect(tf.getKernel(k, 'wasm')).toBeDefined();
    }
  });

  it('fine-tunes tiny_cnn on wasm (every conv gradient kernel runs)', async () => {
    await selectBackend('wasm');
    const data = stripesDataset({ train: 32, val: 16, test: 16, size: 16 });
    const before = tf.memory().numTensors;
    const outcome = await trainTrial(
      {
        backbone: 'tiny_cnn',
        imageSize: 16,
        unfreeze: 23,
        learningRate: 0.01,
        dropout: 0.1,
        headUnits: 16,
        headEpochs: 1,
        fineTuneEpochs: 1,
        fineTuneLrFactor: 1,
        batchSize: 16,
        seed: 1,
      },
      data,
      { onEpoch: () => 'CONTINUE' },
    );
    expect(tf.memory().numTensors).toBe(before);
    disposeData(data);
    expect(outcome.backend).toBe('wasm');
    expect(outcome.cutLayer).toBe('input_1');
    expect(outcome.history.map((r) => r.phase)).toEqual(['head', 'finetune']);
    expect(Number.isFinite(outcome.history[1].loss)).toBe(true);
  });
});
