/**
 * Dumps the pretrained MobileNetV2 weights tlsweep trains with (Keras
 * MobileNetV2 bundled in nsfwjs, decoded by nsfwjs-bundle.ts) so another
 * framework can load exactly the same numbers:
 *
 *   npx tsx bench/export-mobilenet-v2-weights.ts --out <dir>
 *
 * writes `<dir>/manifest.json` and `<dir>/weights.bin` (float32, little
 * endian, concatenated in manifest order). The manifest lists every layer of
 * the `include_top=False` model up to `out_relu` in Keras order (what
 * `base_model.layers[-N:]` counts), with its class, the config fields another
 * framework needs to reproduce it (padding, strides, epsilon, max_value) and
 * its weights in Keras layout (conv kernels HWIO, depthwise kernels HWC1).
 * bench/sweep/torch_mobilenet_v2.py reads it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadBackbone } from '../services/worker/src/engine/index.js';

export const WEIGHTS_MANIFEST = 'manifest.json';
export const WEIGHTS_BIN = 'weights.bin';
export const WEIGHTS_FORMAT = 'tlsweep-keras-weights/1';

/** One weight of a layer, e.g. `Conv1/kernel`, in Keras layout. */
export interface ExportedWeight {
  name: string;
  shape: number[];
  /** Byte offset into weights.bin. */
  offset: number;
  /** Number of float32 values. */
  size: number;
}

export interface ExportedLayer {
  name: string;
  className: string;
  /** The Keras config fields that change what the layer computes (absent when the layer has none). */
  config: { padding?: unknown; strides?: unknown; epsilon?: number; maxValue?: number | null; kernelSize?: unknown; useBias?: boolean };
  weights: ExportedWeight[];
}

export interface WeightsManifest {
  format: typeof WEIGHTS_FORMAT;
  backbone: 'mobilenet_v2';
  weightsSource: string;
  /** The input size the topology was instantiated at; weights do not depend on it, ZeroPadding2D configs do. */
  inputSize: number;
  dtype: 'float32';
  byteOrder: 'little';
  bin: typeof WEIGHTS_BIN;
  layers: ExportedLayer[];
}

const CONFIG_FIELDS = { padding: 'padding', strides: 'strides', epsilon: 'epsilon', max_value: 'maxValue', kernel_size: 'kernelSize', use_bias: 'useBias' } as const;

function layerConfig(layer: tf.layers.Layer): ExportedLayer['config'] {
  const raw = layer.getConfig() as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  // tfjs reports camelCase config keys; accept both spellings.
  for (const [snake, camel] of Object.entries(CONFIG_FIELDS)) {
    const v = raw[camel] ?? raw[snake];
    if (v !== undefined) out[camel] = v;
  }
  return out as ExportedLayer['config'];
}

/**
 * Writes manifest.json + weights.bin for mobilenet_v2 into `outDir`
 * (created if missing). `inputSize` only affects the recorded paddings.
 */
export async function exportMobileNetV2Weights(outDir: string, inputSize = 96): Promise<WeightsManifest> {
  mkdirSync(outDir, { recursive: true });
  const backbone = await loadBackbone('mobilenet_v2', { imageSize: inputSize });
  try {
    const chunks: Buffer[] = [];
    let offset = 0;
    const layers: ExportedLayer[] = backbone.model.layers.map((layer) => {
      const values = layer.getWeights();
      const weights = layer.weights.map((w, k): ExportedWeight => {
        const data = values[k].dataSync() as Float32Array;
        if (!(data instanceof Float32Array)) throw new Error(`${w.originalName}: expected float32 weights, got ${values[k].dtype}`);
        const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        chunks.push(Buffer.from(bytes));
        const entry = { name: w.originalName, shape: [...values[k].shape], offset, size: data.length };
        offset += bytes.byteLength;
        return entry;
      });
      return { name: layer.name, className: layer.getClassName(), config: layerConfig(layer), weights };
    });
    const manifest: WeightsManifest = {
      format: WEIGHTS_FORMAT,
      backbone: 'mobilenet_v2',
      weightsSource: backbone.weightsSource,
      inputSize,
      dtype: 'float32',
      // Float32Array bytes are in the platform's order; every platform Node 20 ships for is little endian.
      byteOrder: 'little',
      bin: WEIGHTS_BIN,
      layers,
    };
    writeFileSync(join(outDir, WEIGHTS_BIN), Buffer.concat(chunks));
    writeFileSync(join(outDir, WEIGHTS_MANIFEST), JSON.stringify(manifest, null, 1));
    return manifest;
  } finally {
    backbone.model.dispose();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const i = process.argv.indexOf('--out');
  if (i < 0 || !process.argv[i + 1]) {
    console.error('usage: npx tsx bench/export-mobilenet-v2-weights.ts --out <dir>');
    process.exit(2);
  }
  const out = resolve(process.argv[i + 1]);
  const manifest = await exportMobileNetV2Weights(out);
  const values = manifest.layers.reduce((n, l) => n + l.weights.reduce((m, w) => m + w.size, 0), 0);
  console.log(JSON.stringify({ out, layers: manifest.layers.length, weights: manifest.layers.reduce((n, l) => n + l.weights.length, 0), values }));
}
