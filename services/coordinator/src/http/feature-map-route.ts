/**
 * Feature maps for the dashboard. This module loads TensorFlow.js and the
 * worker's engine, so the dashboard imports it only on the first request: a
 * coordinator whose users never open the panel never pays for tfjs.
 */
import type { Backbone } from '../../../worker/src/engine/backbones/backbone.js';
import { loadBackbone } from '../../../worker/src/engine/backbones/registry.js';
import { selectBackend } from '../../../worker/src/engine/backend.js';
import { featureMapGrid, featureMapLayers, type LayerInfo } from '../../../worker/src/engine/feature-maps.js';
import { loadRawDatasetCached } from '../../../worker/src/data/load-dataset.js';
import type { DatasetSpec } from '../spec/sweep-spec.js';
import { InvalidArgumentError } from '../errors.js';

let backendReady: Promise<unknown> | null = null;
// One backbone stays loaded: the panel asks for many layers/images of the same one.
let loaded: { key: string; backbone: Promise<Backbone> } | null = null;
// tfjs runs one computation at a time anyway; queue requests instead of interleaving loads.
let queue: Promise<unknown> = Promise.resolve();

function serial<T>(f: () => Promise<T>): Promise<T> {
  const run = queue.then(f, f);
  queue = run.catch(() => undefined);
  return run;
}

async function backboneFor(name: string, imageSize: number | null): Promise<Backbone> {
  backendReady ??= selectBackend();
  await backendReady;
  const key = `${name}@${imageSize ?? 'default'}`;
  if (loaded?.key !== key) {
    const previous = loaded;
    loaded = { key, backbone: loadBackbone(name, { imageSize: imageSize ?? undefined }) };
    loaded.backbone.catch(() => (loaded = null));
    previous?.backbone.then((b) => b.model.dispose(), () => undefined);
  }
  return loaded.backbone;
}

export function layersOf(name: string, imageSize: number | null): Promise<{ backbone: string; inputSize: number[]; layers: LayerInfo[] }> {
  return serial(async () => {
    const b = await backboneFor(name, imageSize);
    return { backbone: name, inputSize: b.inputSize, layers: featureMapLayers(b.model) };
  });
}

/** PNG of `layer`'s activations for image `index` of `dataset` (raw order, wrapped around). */
export function featureMapPng(name: string, imageSize: number | null, dataset: DatasetSpec, index: number, layer: string): Promise<{ png: Buffer; label: string }> {
  return serial(async () => {
    const b = await backboneFor(name, imageSize);
    const raw = await loadRawDatasetCached(dataset);
    if (raw.images.length === 0) throw new InvalidArgumentError([{ field: 'image', message: 'the sweep\'s dataset has no images' }]);
    const i = ((index % raw.images.length) + raw.images.length) % raw.images.length;
    try {
      const grid = featureMapGrid(b, raw.images[i], layer);
      return { png: grid.png, label: raw.classNames[raw.labels[i]] ?? '' };
    } catch (err) {
      throw new InvalidArgumentError([{ field: 'layer', message: (err as Error).message }], 'invalid feature-map request');
    }
  });
}
