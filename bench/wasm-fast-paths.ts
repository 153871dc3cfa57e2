/**
 * Measurement (not a test): the same MobileNetV2 trial (96 px, unfreeze 11 =
 * block 16 + Conv_1, phase 2 on activations cached at block_15_add) on the
 * wasm backend twice in one process — with tlsweep's fast paths for
 * transposed BatchMatMul and 1×1 Conv2DBackpropInput, then with the stock
 * tfjs-backend-wasm kernels — and the speed-up of each phase.
 *
 *   npm run bench:wasm-fast-paths -- [--train 700] [--epochs 2]
 *
 * Last line: JSON.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { registerWasmFastPaths, restoreStockWasmKernels } from '../services/worker/src/engine/wasm-kernels/index.js';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const SIZE = 96;
const CLASSES = 5;
const split = (n: number, seed: number) => ({ x: tf.randomUniform([n, SIZE, SIZE, 3], 0, 1, 'float32', seed) as tf.Tensor4D, y: tf.randomUniform([n], 0, CLASSES, 'int32', seed + 1) as tf.Tensor1D });

const backend = await selectBackend('wasm');
const data: LoadedDataset = {
  classNames: Array.from({ length: CLASSES }, (_, k) => `c${k}`),
  train: split(arg('train', 700), 1), val: split(150, 3), test: split(150, 5), skippedImages: 0, source: 'random',
};
const epochs = arg('epochs', 2);

async function run(label: string) {
  const phases: Record<string, number> = {};
  let phase = '';
  let t = performance.now();
  const o = await trainTrial(
    { backbone: 'mobilenet_v2', imageSize: SIZE, unfreeze: 11, learningRate: 1e-3, dropout: 0.2, headUnits: 128, headEpochs: epochs, fineTuneEpochs: epochs, fineTuneLrFactor: 0.1, batchSize: 32, seed: 1 },
    data,
    {
      onEpoch: () => 'CONTINUE',
      onPhase: (p) => {
        if (phase) phases[phase] = (performance.now() - t) / 1000;
        phase = p;
        t = performance.now();
      },
    },
  );
  phases[phase] = (performance.now() - t) / 1000;
  console.log(label, JSON.stringify(phases));
  return { phases, losses: o.history.map((h) => h.loss) };
}

// The worker registers the fast paths in selectBackend; measure them first, then the stock kernels.
registerWasmFastPaths();
const fast = await run('fast paths');
restoreStockWasmKernels();
const stock = await run('stock kernels');
const ratio = (k: string) => Number((stock.phases[k] / fast.phases[k]).toFixed(2));
const maxLossDiff = Math.max(...fast.losses.map((l, i) => Math.abs(l - stock.losses[i])));
console.log(JSON.stringify({
  backend: backend.name,
  fastPaths: fast.phases,
  stock: stock.phases,
  speedup: { head: ratio('head'), finetune: ratio('finetune') },
  maxLossDiff,
}));
