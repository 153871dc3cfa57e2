/**
 * BatchNorm folded into convolutions for the frozen prefix: same outputs as
 * the layer-by-layer model (to float rounding), no leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { foldedInference, loadBackbone, releaseLayers, selectBackend } from '../services/worker/src/engine/index.js';

function compare(model: tf.LayersModel, upTo: number, x: tf.Tensor4D): { maxDiff: number; maxAbs: number; folded: string[] } {
  const before = tf.memory().numTensors;
  const plan = foldedInference(model, upTo);
  const reference = model.layers[upTo].inboundNodes[0].outputTensors[0];
  const [maxDiff, maxAbs] = tf.tidy(() => {
    const want = tf.model({ inputs: model.inputs, outputs: reference }).predict(x) as tf.Tensor;
    const got = plan.run(x);
    expect(got.shape).toEqual(want.shape);
    return [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0], tf.max(tf.abs(want)).dataSync()[0]];
  });
  plan.dispose();
  expect(tf.memory().numTensors).toBe(before);
  return { maxDiff, maxAbs, folded: [...plan.foldedLayers] };
}

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('foldedInference', () => {
  it('matches tiny_cnn with non-trivial BatchNorm statistics, across the residual Add', async () => {
    const b = await loadBackbone('tiny_cnn', { imageSize: 16, seed: 5 });
    // Fresh BN layers are nearly the identity; give them statistics worth folding.
    let seed = 100;
    for (const layer of b.model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
      const c = layer.weights[0].shape[0] as number;
      layer.setWeights([
        tf.randomUniform([c], 0.5, 2, 'float32', seed++),
        tf.randomUniform([c], -1, 1, 'float32', seed++),
        tf.randomUniform([c], -1, 1, 'float32', seed++),
        tf.randomUniform([c], 0.2, 3, 'float32', seed++),
      ]);
    }
    const x = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const last = b.model.layers.length - 1;
    const all = compare(b.model, last, x);
    expect(all.maxAbs).toBeGreaterThan(0.1);
    expect(all.maxDiff / all.maxAbs).toBeLessThan(1e-5);
    // 8 conv → BN pairs; ReLU6 fused after all but the two project convs (linear bottlenecks).
    expect(all.folded.filter((n) => /bn|BN/.test(n))).toHaveLength(8);
    expect(all.folded.filter((n) => /relu/.test(n))).toHaveLength(6);
    // Stopping at a BN output must not fold past it.
    const atBn = compare(b.model, b.model.layers.findIndex((l) => l.name === 'block_1_expand_BN'), x);
    expect(atBn.maxDiff / atBn.maxAbs).toBeLessThan(1e-5);
    expect(atBn.folded).not.toContain('block_1_expand_relu');
    // The input layer alone is the identity.
    expect(compare(b.model, 0, x).maxDiff).toBe(0);
    x.dispose();
    releaseLayers(b.model.layers);
  });

  it('matches MobileNetV2 up to out_relu', async () => {
    const b = await loadBackbone('mobilenet_v2', { imageSize: 64 });
    const x = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const r = compare(b.model, b.model.layers.length - 1, x);
    expect(r.folded.filter((n) => /bn|BN/.test(n))).toHaveLength(52);
    expect(r.maxDiff / r.maxAbs).toBeLessThan(2e-5);
    x.dispose();
    releaseLayers(b.model.layers);
  });
});
