import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backbone } from '../../../worker/src/engine/backbones/backbone.js';
import { applyPreprocessing } from '../../../worker/src/engine/preprocess.js';
import { loadClassifier } from './predict.js';
import { decodeImage } from '../../../worker/src/data/image-folder.js';
import { loadBackbone, KNOWN_BACKBONES } from '../../../worker/src/engine/backbones/registry.js';
import { selectBackend } from '../../../worker/src/engine/backend.js';
import { featureMapGrid, featureMapLayers } from '../../../worker/src/engine/feature-maps.js';

export interface FeatureMapsOptions {
  /** A backbone name (its shipped or random weights), or the folder of an exported trial model (`tlsweep export`). */
  backbone: string;
  /** Required with `layer`; without a layer the command lists the layers that have maps. */
  image?: string;
  layer?: string;
  /** @default 'feature-maps.png' */
  out?: string;
  imageSize?: number;
  /** @default 64 */
  channels?: number;
  /** Print the layer list or the result as JSON. */
  json?: boolean;
}

function readImage(path: string) {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`feature-maps: cannot read image '${path}': ${(err as Error).message}`);
  }
  try {
    return decodeImage(bytes);
  } catch (err) {
    throw new Error(`feature-maps: '${path}' is not a readable PNG/JPEG: ${(err as Error).message}`);
  }
}

/**
 * `tlsweep feature-maps <backbone> [image] [--layer NAME] [--out grid.png]`:
 * the activation grid of one layer for one image, computed on this machine;
 * without `--layer`, the layers that have maps. The dashboard runs this same
 * command in a child process, so a slow backbone never blocks the coordinator.
 */
export async function runFeatureMaps(o: FeatureMapsOptions): Promise<number> {
  const exported = existsSync(join(o.backbone, 'tlsweep.json'));
  if (!exported && !KNOWN_BACKBONES.includes(o.backbone)) {
    throw new Error(`feature-maps: '${o.backbone}' is neither a backbone (${KNOWN_BACKBONES.join(', ')}) nor an exported model folder (with tlsweep.json)`);
  }
  if (o.layer && !o.image) throw new Error('feature-maps: --layer needs an image, e.g. `tlsweep feature-maps mobilenet_v2 shoe.png --layer block_3_expand_relu`');
  const image = o.image ? readImage(o.image) : null;
  await selectBackend();
  const backbone = exported ? await exportedAsBackbone(o.backbone) : await loadBackbone(o.backbone, { imageSize: o.imageSize });
  try {
    if (!o.layer || !image) {
      const layers = featureMapLayers(backbone.model);
      if (o.json) {
        console.log(JSON.stringify({ backbone: o.backbone, inputSize: backbone.inputSize, layers }));
        return 0;
      }
      console.log(`layers of ${o.backbone} at ${backbone.inputSize.join('×')} with feature maps (pass one with --layer):`);
      for (const l of layers) console.log(`  ${String(l.index).padStart(4)}  ${l.name.padEnd(28)} ${l.className.padEnd(22)} ${l.shape.join('×')}`);
      return 0;
    }
    const grid = featureMapGrid(backbone, image, o.layer, { maxChannels: o.channels ?? 64 });
    const out = o.out ?? 'feature-maps.png';
    writeFileSync(out, grid.png);
    const summary = { out, layer: grid.layer, channelsShown: grid.channelsShown, width: grid.width, height: grid.height, weightsSource: backbone.weightsSource };
    if (o.json) console.log(JSON.stringify(summary));
    else console.log(`${out}: ${grid.channelsShown} of ${grid.layer.shape[2]} channels of '${grid.layer.name}' (${grid.layer.shape.join('×')}), ${grid.width}×${grid.height} px; weights: ${backbone.weightsSource}`);
    return 0;
  } finally {
    backbone.model.dispose();
  }
}

/**
 * An exported trial model (backbone with its fine-tuned weights + head, as
 * one flat model) seen as a backbone: its feature maps are the trained ones.
 */
async function exportedAsBackbone(dir: string): Promise<Backbone> {
  const { model, meta } = await loadClassifier(dir);
  return {
    name: `${meta.backbone} (trial ${meta.trialId ?? dir})`,
    model,
    inputSize: meta.inputSize as [number, number],
    preprocess: (x) => applyPreprocessing(meta.preprocessing, x),
    preprocessing: meta.preprocessing,
    blockStarts: [],
    pretrained: true,
    weightsSource: `exported model of trial ${meta.trialId ?? "?"} (${dir})`,
  };
}
