/**
 * Measurement (not a test): what the wasm `Slice` fast path
 * (engine/wasm-kernels/slice-view.ts) saves where it matters — taking
 * batches off a large tensor, as computeTrialFeatures does with a dataset
 * split (and tfjs-layers' fit with an epoch's inputs). Runs the MobileNetV2
 * prefix (the frozen part up to layer --cut) over the first --images images of
 * a Fashion-MNIST split of --per-class × 10 images, in batches of 32, with
 * tlsweep's kernels and with the stock ones, in one process.
 *
 *   npm run bench:wasm-slice -- [--per-class 1000] [--size 64] [--images 1024] [--cut 100]
 *
 * Last stdout line: JSON { imagesPerSec: {fastPaths, stock}, ratio, ... }.
 */
import * as tf from '@tensorflow/tfjs';
import { foldedInference, loadBackbone, selectBackend } from '../services/worker/src/engine/index.js';
import { registerWasmFastPaths, restoreStockWasmKernels } from '../services/worker/src/engine/wasm-kernels/index.js';
import { loadRawDatasetCached, materializeDataset } from '../services/worker/src/data/load-dataset.js';
import { positiveIntFlag } from './flags.js';

const perClass = positiveIntFlag('per-class', 1000);
const size = positiveIntFlag('size', 64);
const images = positiveIntFlag('images', 1024);
const cutAt = positiveIntFlag('cut', 100);
const batch = 32;

await selectBackend('wasm');
const raw = await loadRawDatasetCached({ kind: 'fashion-mnist', perClass });
const data = materializeDataset(raw, { imageSize: [size, size], split: { valFraction: 0.1, testFraction: 0.1, seed: 7 } });
const x = data.train.x;
const n = Math.min(images, x.shape[0]);
const backbone = await loadBackbone('mobilenet_v2', { imageSize: size });
const prefix = foldedInference(backbone.model, cutAt);

async function imagesPerSec(): Promise<number> {
  const started = performance.now();
  for (let s = 0; s < n; s += batch) {
    const out = tf.tidy(() => prefix.run(backbone.preprocess(x.slice([s, 0, 0, 0], [Math.min(batch, n - s), -1, -1, -1]))));
    await out.data();
    out.dispose();
  }
  return n / ((performance.now() - started) / 1000);
}

registerWasmFastPaths();
await imagesPerSec(); // warm-up
const fastPaths = await imagesPerSec();
restoreStockWasmKernels();
const stock = await imagesPerSec();
registerWasmFastPaths();
console.log(`split of ${x.shape[0]} images at ${size} px (${((x.size * 4) / 2 ** 20).toFixed(0)} MiB), prefix to layer ${cutAt}, ${n} images in batches of ${batch}`);
console.log(`  tlsweep kernels: ${fastPaths.toFixed(1)} images/s; stock kernels: ${stock.toFixed(1)} images/s`);
console.log(JSON.stringify({
  bench: 'wasm-slice', backend: tf.getBackend(), splitImages: x.shape[0], imageSize: size, images: n, batch, cut: cutAt,
  imagesPerSec: { fastPaths: Number(fastPaths.toFixed(1)), stock: Number(stock.toFixed(1)) }, ratio: Number((fastPaths / stock).toFixed(2)),
}));
