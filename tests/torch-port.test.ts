/**
 * The PyTorch baseline of `npm run bench:sweep` must run the same network as
 * tlsweep: tlsweep's pretrained MobileNetV2 weights, exported by
 * bench/export-mobilenet-v2-weights.ts and loaded into torchvision's
 * mobilenet_v2 by bench/sweep/torch_mobilenet_v2.py, give tfjs' `out_relu`
 * features on the same images to within 1e-3 (measured ~3e-5; values lie in
 * [0, 6]), at an even size (Keras pads stride-2 convolutions asymmetrically)
 * and an odd one (symmetrically). Skipped when /usr/bin/python3 with torch
 * and torchvision is not installed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportMobileNetV2Weights, type WeightsManifest } from '../bench/export-mobilenet-v2-weights.js';
import { runPortCheck, writePortCheck } from '../bench/sweep/port-check.js';
import { pythonMissing } from '../bench/sweep/run-python.js';
import { selectBackend } from '../services/worker/src/engine/index.js';

const PYTHON = '/usr/bin/python3';
const missing = pythonMissing(PYTHON, ['torch', 'torchvision']);
if (missing) console.warn(`tests/torch-port.test.ts skipped: ${missing} (apt-get install python3-torch python3-torchvision)`);

describe.skipIf(missing !== null)('torch port of tlsweep MobileNetV2', () => {
  let dir: string;
  let manifest: WeightsManifest;

  beforeAll(async () => {
    await selectBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'tlsweep-torch-port-'));
    manifest = await exportMobileNetV2Weights(join(dir, 'weights'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exports every weight of the 155 Keras layers up to out_relu, in Keras layout', () => {
    expect(manifest.layers).toHaveLength(155);
    expect(manifest.layers[0].className).toBe('InputLayer');
    expect(manifest.layers.at(-1)!.name).toBe('out_relu');
    const byName = new Map(manifest.layers.flatMap((l) => l.weights.map((w) => [w.name, w] as const)));
    expect(byName.get('Conv1/kernel')!.shape).toEqual([3, 3, 3, 32]);
    expect(byName.get('block_1_depthwise/depthwise_kernel')!.shape).toEqual([3, 3, 96, 1]);
    expect(byName.get('Conv_1_bn/moving_variance')!.shape).toEqual([1280]);
    const values = [...byName.values()].reduce((n, w) => n + w.size, 0);
    expect(values).toBe(2_257_984);
    expect(readFileSync(join(dir, 'weights', manifest.bin)).byteLength).toBe(values * 4);
  });

  for (const size of [64, 47]) {
    it(`torch features match tfjs out_relu within 1e-3 at ${size} px, and torchvision's own padding does not`, async () => {
      const checkDir = join(dir, `check-${size}`);
      const images = tf.randomUniform([3, size, size, 3], 0, 1, 'float32', size) as tf.Tensor4D;
      try {
        await writePortCheck(checkDir, images);
      } finally {
        images.dispose();
      }
      const weightsDir = join(dir, 'weights');
      const good = await runPortCheck({ python: PYTHON, weightsDir, checkDir });
      expect(good.featureShape).toEqual([Math.ceil(size / 32), Math.ceil(size / 32), 1280]);
      expect(good.maxFeature).toBeGreaterThan(1);
      expect(good.maxAbsDiff).toBeLessThanOrEqual(1e-3);
      expect(good.ok).toBe(true);
      // The check can fail: symmetric padding shifts every stride-2 grid after the first even size.
      const wrong = await runPortCheck({ python: PYTHON, weightsDir, checkDir, torchvisionPadding: true });
      expect(wrong.maxAbsDiff).toBeGreaterThan(0.1);
      expect(wrong.ok).toBe(false);
    });
  }
});
