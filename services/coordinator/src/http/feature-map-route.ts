/**
 * Feature maps for the dashboard. The work (loading a backbone, a forward
 * pass: seconds to minutes for a big backbone on a CPU) runs in a child
 * process — the `tlsweep feature-maps` command — so it never blocks the
 * coordinator's event loop, which also serves the workers' reports, and its
 * memory goes away with it. Only the one requested image is decoded here.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { loadRawDatasetCached, type RawImage } from '../../../worker/src/data/load-dataset.js';
import { loadImageFolderSample } from '../../../worker/src/data/image-folder.js';
import type { LayerInfo } from '../../../worker/src/engine/feature-maps.js';
import type { DatasetSpec } from '../spec/sweep-spec.js';
import { InvalidArgumentError, CoordinatorError } from '../errors.js';

const CLI = fileURLToPath(new URL('../../../sweeper/src/main.ts', import.meta.url));
/** A feature-map request that takes longer than this is abandoned. */
const TIMEOUT_MS = 180_000;
const MAX_CACHED_PNGS = 64;

// One child at a time: the coordinator's machine is not a training node.
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(f: () => Promise<T>): Promise<T> {
  const run = queue.then(f, f);
  queue = run.catch(() => undefined);
  return run;
}

function runCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, 'feature-maps', ...args, '--json'], { timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const said = stderr.split('\n').find((l) => l.startsWith('tlsweep: ')) ?? '';
      const message = said.replace(/^tlsweep: (feature-maps: )?/, '');
      if (message) reject(new InvalidArgumentError([{ field: /layer/.test(message) ? 'layer' : 'backbone', message }], 'invalid feature-map request'));
      else reject(new CoordinatorError('INTERNAL', `feature maps failed: ${err.killed ? `no answer within ${TIMEOUT_MS / 1000} s` : err.message}`));
    });
  });
}

const sizeArgs = (imageSize: number | null) => (imageSize ? ['--image-size', String(imageSize)] : []);
const layerCache = new Map<string, Promise<{ backbone: string; inputSize: number[]; layers: LayerInfo[] }>>();
const pngCache = new Map<string, { png: Buffer; label: string }>();

export function layersOf(name: string, imageSize: number | null): Promise<{ backbone: string; inputSize: number[]; layers: LayerInfo[] }> {
  const key = `${name}@${imageSize ?? 'default'}`;
  let hit = layerCache.get(key);
  if (!hit) {
    hit = serial(async () => JSON.parse(await runCli([name, ...sizeArgs(imageSize)])));
    layerCache.set(key, hit);
    hit.catch(() => layerCache.delete(key));
  }
  return hit;
}

/** Image `index` (wrapped around) of a dataset, and its class: one decoded image, not the whole dataset. */
async function sampleImage(dataset: DatasetSpec, index: number): Promise<{ image: RawImage; label: string }> {
  if (dataset.kind === 'folder') return loadImageFolderSample(dataset, index);
  // Fashion-MNIST and synthetic sets are small (perClass images of 28×28 or 32×32) and cached.
  const raw = await loadRawDatasetCached(dataset);
  const i = index % raw.images.length;
  return { image: raw.images[i], label: raw.classNames[raw.labels[i]] ?? '' };
}

function toPng(img: RawImage): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  for (let p = 0; p < img.width * img.height; p++) {
    for (let c = 0; c < 3; c++) png.data[p * 4 + c] = img.data[p * img.channels + (img.channels === 1 ? 0 : c)];
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

/** PNG of `layer`'s activations for image `index` of `dataset`. */
export async function featureMapPng(name: string, imageSize: number | null, dataset: DatasetSpec, index: number, layer: string): Promise<{ png: Buffer; label: string }> {
  const key = JSON.stringify([name, imageSize, dataset, index, layer]);
  const hit = pngCache.get(key);
  if (hit) return hit;
  const { image, label } = await sampleImage(dataset, index);
  const result = await serial(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tlsweep-fm-'));
    try {
      await writeFile(join(dir, 'in.png'), toPng(image));
      await runCli([name, join(dir, 'in.png'), '--layer', layer, '--out', join(dir, 'out.png'), ...sizeArgs(imageSize)]);
      return { png: await readFile(join(dir, 'out.png')), label };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  pngCache.set(key, result);
  if (pngCache.size > MAX_CACHED_PNGS) pngCache.delete(pngCache.keys().next().value as string);
  return result;
}
