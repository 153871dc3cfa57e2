import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import type { RawImage } from '../data/load-dataset.js';
import { materializeSplit } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { modelNodeOf } from './clean-cuts.js';
import { EngineConfigError } from './errors.js';

/** A layer that can be shown as feature maps. */
export interface LayerInfo {
  index: number;
  name: string;
  className: string;
  /** Output shape without the batch axis, e.g. [12, 12, 96]. */
  shape: number[];
}

/** Layers with one [H, W, C] output: the ones whose activations form a grid. */
export function featureMapLayers(model: tf.LayersModel): LayerInfo[] {
  const out: LayerInfo[] = [];
  model.layers.forEach((layer, index) => {
    const outputs = modelNodeOf(layer).outputTensors;
    if (index === 0 || outputs.length !== 1 || outputs[0].shape.length !== 4) return;
    out.push({ index, name: layer.name, className: layer.getClassName(), shape: outputs[0].shape.slice(1) as number[] });
  });
  return out;
}

/** Options of {@link featureMapGrid}. */
export interface FeatureMapOptions {
  /** Channels shown, the first ones of the layer. @default 64 */
  maxChannels?: number;
  /** Each map is scaled up (nearest) to at least this many pixels a side. @default 48 */
  minCellPixels?: number;
}

export interface FeatureMapGrid {
  /** PNG bytes: channels left to right, top to bottom, each min–max normalised, viridis-coloured. */
  png: Buffer;
  layer: LayerInfo;
  channelsShown: number;
  width: number;
  height: number;
}

// Five viridis stops; enough for a readable activation ramp.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function colour(t: number): [number, number, number] {
  const f = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(f));
  const u = f - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u, a[2] + (b[2] - a[2]) * u];
}

/**
 * Runs `image` through `backbone` up to `layerName` (inference mode, the
 * backbone's own preprocessing) and tiles the channels of that activation
 * into one PNG, as the seed tutorials plot feature maps.
 * @throws EngineConfigError naming the layer and listing valid ones when it has no [H, W, C] output.
 */
export function featureMapGrid(backbone: Backbone, image: RawImage, layerName: string, opts: FeatureMapOptions = {}): FeatureMapGrid {
  const layers = featureMapLayers(backbone.model);
  const layer = layers.find((l) => l.name === layerName);
  if (!layer) {
    const names = layers.map((l) => l.name);
    const shown = names.length > 12 ? [...names.slice(0, 6), '…', ...names.slice(-6)] : names;
    throw new EngineConfigError(`layer '${layerName}' of '${backbone.name}' has no feature maps; layers with [H, W, C] outputs: ${shown.join(', ')} (${names.length} in all)`);
  }
  const maxChannels = opts.maxChannels ?? 64;
  const [h, w, c] = layer.shape;
  const n = Math.min(c, maxChannels);
  const input = materializeSplit({ classNames: ['image'], images: [image], labels: [0], skippedImages: 0, source: 'image' }, [0], backbone.inputSize);
  const upTo = tf.model({ inputs: backbone.model.inputs, outputs: modelNodeOf(backbone.model.layers[layer.index]).outputTensors[0] });
  let values: Float32Array;
  try {
    const act = tf.tidy(() => {
      const y = upTo.predict(backbone.preprocess(input.x as tf.Tensor4D)) as tf.Tensor4D;
      return y.slice([0, 0, 0, 0], [1, h, w, n]).transpose([3, 1, 2, 0]).reshape([n, h * w]);
    });
    values = act.dataSync() as Float32Array;
    act.dispose();
  } finally {
    tf.dispose([input.x, input.y]);
  }
  const scale = Math.max(1, Math.ceil((opts.minCellPixels ?? 48) / Math.max(h, w)));
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const pad = 2;
  const cellW = w * scale;
  const cellH = h * scale;
  const width = cols * (cellW + pad) + pad;
  const height = rows * (cellH + pad) + pad;
  const png = new PNG({ width, height });
  png.data.fill(255);
  for (let k = 0; k < n; k++) {
    const map = values.subarray(k * h * w, (k + 1) * h * w);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of map) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const range = hi - lo || 1;
    const x0 = pad + (k % cols) * (cellW + pad);
    const y0 = pad + Math.floor(k / cols) * (cellH + pad);
    for (let y = 0; y < cellH; y++) {
      for (let x = 0; x < cellW; x++) {
        const [r, g, b] = colour((map[Math.floor(y / scale) * w + Math.floor(x / scale)] - lo) / range);
        const o = ((y0 + y) * width + x0 + x) * 4;
        png.data[o] = r;
        png.data[o + 1] = g;
        png.data[o + 2] = b;
        png.data[o + 3] = 255;
      }
    }
  }
  return { png: PNG.sync.write(png), layer, channelsShown: n, width, height };
}
