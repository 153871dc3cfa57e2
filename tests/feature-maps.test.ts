import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import { featureMapGrid, featureMapLayers } from '../services/worker/src/engine/feature-maps.js';
import { buildPrefixModel } from '../services/worker/src/engine/tail-model.js';
import type { RawImage } from '../services/worker/src/data/load-dataset.js';

await tf.setBackend('cpu');

function diagonal(size: number): RawImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) data[(y * size + x) * 3 + c] = x > y ? 230 : 20 + 3 * c;
  return { width: size, height: size, channels: 3, data };
}

describe('feature maps', () => {
  it('lists the layers with [H, W, C] outputs', async () => {
    const b = await loadBackbone('tiny_cnn', { imageSize: 32, seed: 1 });
    const layers = featureMapLayers(b.model);
    expect(layers[0]).toMatchObject({ name: 'Conv1', shape: [16, 16, 8] });
    expect(layers.map((l) => l.name)).toContain('out_relu');
    b.model.dispose();
  });

  it('tiles a layer\'s channels into a PNG whose brightest pixel sits where the activation peaks', async () => {
    const b = await loadBackbone('tiny_cnn', { imageSize: 32, seed: 1 });
    const img = diagonal(32);
    const grid = featureMapGrid(b, img, 'Conv1', { minCellPixels: 16 });
    expect(grid.channelsShown).toBe(8);
    const png = PNG.sync.read(grid.png);
    // 8 channels → 3×3 cells of 16×16 (scale 1) with 2-px gutters.
    expect([png.width, png.height]).toEqual([3 * 18 + 2, 3 * 18 + 2]);

    // Channel 0's maximum, computed directly, is the top of the colour ramp in cell 0.
    const idx = b.model.layers.findIndex((l) => l.name === 'Conv1');
    const act = tf.tidy(() => (buildPrefixModel(b.model, idx).predict(tf.tensor4d(Float32Array.from(img.data, (v) => v / 255), [1, 32, 32, 3])) as tf.Tensor4D)
      .slice([0, 0, 0, 0], [1, 16, 16, 1]).reshape([256]));
    const a = await act.data();
    act.dispose();
    const peak = a.indexOf(Math.max(...a));
    const [py, px] = [Math.floor(peak / 16), peak % 16];
    const o = ((2 + py) * png.width + 2 + px) * 4;
    expect([png.data[o], png.data[o + 1], png.data[o + 2]]).toEqual([253, 231, 37]);

    const other = featureMapGrid(b, { ...img, data: img.data.map((v) => 255 - v) }, 'Conv1', { minCellPixels: 16 });
    expect(Buffer.compare(other.png, grid.png)).not.toBe(0);
    b.model.dispose();
  });

  it('names the layer and lists the valid ones when a layer has no maps', async () => {
    const b = await loadBackbone('tiny_cnn', { imageSize: 32, seed: 1 });
    expect(() => featureMapGrid(b, diagonal(32), 'nope')).toThrow(/layer 'nope' of 'tiny_cnn' has no feature maps; .*Conv1/);
    b.model.dispose();
  });
});
