import { readFileSync, writeFileSync } from 'node:fs';
import { decodeImage } from '../../../worker/src/data/image-folder.js';
import { loadBackbone, KNOWN_BACKBONES } from '../../../worker/src/engine/backbones/registry.js';
import { selectBackend } from '../../../worker/src/engine/backend.js';
import { featureMapGrid, featureMapLayers } from '../../../worker/src/engine/feature-maps.js';

export interface FeatureMapsOptions {
  /** A backbone name (its shipped or random weights). */
  backbone: string;
  image: string;
  /** Without a layer, the command lists the layers that have maps. */
  layer?: string;
  /** @default 'feature-maps.png' */
  out?: string;
  imageSize?: number;
  /** @default 64 */
  channels?: number;
}

/**
 * `tlsweep feature-maps <backbone> <image> --layer NAME --out grid.png`:
 * the activation grid of one layer for one image, computed on this machine.
 */
export async function runFeatureMaps(o: FeatureMapsOptions): Promise<number> {
  if (!KNOWN_BACKBONES.includes(o.backbone)) {
    throw new Error(`feature-maps: unknown backbone '${o.backbone}'; known: ${KNOWN_BACKBONES.join(', ')}`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(o.image);
  } catch (err) {
    throw new Error(`feature-maps: cannot read image '${o.image}': ${(err as Error).message}`);
  }
  const image = decodeImage(bytes);
  await selectBackend();
  const backbone = await loadBackbone(o.backbone, { imageSize: o.imageSize });
  try {
    if (!o.layer) {
      console.log(`layers of ${o.backbone} at ${backbone.inputSize.join('×')} with feature maps (pass one with --layer):`);
      for (const l of featureMapLayers(backbone.model)) console.log(`  ${String(l.index).padStart(4)}  ${l.name.padEnd(28)} ${l.className.padEnd(22)} ${l.shape.join('×')}`);
      return 0;
    }
    const grid = featureMapGrid(backbone, image, o.layer, { maxChannels: o.channels ?? 64 });
    const out = o.out ?? 'feature-maps.png';
    writeFileSync(out, grid.png);
    console.log(`${out}: ${grid.channelsShown} of ${grid.layer.shape[2]} channels of '${grid.layer.name}' (${grid.layer.shape.join('×')}), ${grid.width}×${grid.height} px; weights: ${backbone.weightsSource}`);
    return 0;
  } finally {
    backbone.model.dispose();
  }
}
