/**
 * Measurement (not a test): K fusable trials (same recipe, different learning
 * rates and dropouts) trained fused (engine/fused-trials.ts) vs one by one
 * (trainTrial each), on random images.
 *
 *   npm run bench:fused -- [--backend wasm|cpu|tensorflow] [--backbone mobilenet_v2] [--size 32]
 *        [--k 6] [--train 400] [--val 100] [--test 100] [--unfreeze 11]
 *        [--head-epochs 2] [--finetune-epochs 2] [--batch 32]
 *
 * Three runs of the same K trials: separate without sharing (every trial its
 * own frozen features, as peers run trials), separate with the per-process
 * feature memo (today's worker: consecutive trials reuse the features), and
 * fused. The last line is JSON.
 */
import * as tf from '@tensorflow/tfjs';
import { FeatureMemo, selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import type { BackendName, TrialHyperparams } from '../services/worker/src/engine/index.js';
import { trainFusedTrials } from '../services/worker/src/engine/fused-trials.js';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
function strArg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const SIZE = arg('size', 32);
const CLASSES = 5;
const K = arg('k', 6);

function randomSplit(n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return { x: tf.randomUniform([n, SIZE, SIZE, 3], 0, 1, 'float32', seed), y: tf.randomUniform([n], 0, CLASSES, 'int32', seed + 1) };
}

const backend = await selectBackend(strArg('backend', '') as BackendName || undefined);
const data: LoadedDataset = {
  classNames: Array.from({ length: CLASSES }, (_, k) => `class_${k}`),
  train: randomSplit(arg('train', 400), 11),
  val: randomSplit(arg('val', 100), 13),
  test: randomSplit(arg('test', 100), 15),
  skippedImages: 0,
  source: 'random',
};
const base: TrialHyperparams = {
  backbone: strArg('backbone', 'mobilenet_v2'), imageSize: SIZE, unfreeze: arg('unfreeze', 11),
  learningRate: 0.001, dropout: 0.2, headUnits: 64, headEpochs: arg('head-epochs', 2), fineTuneEpochs: arg('finetune-epochs', 2),
  fineTuneLrFactor: 0.1, batchSize: arg('batch', 32), seed: 1,
};
const rates = [0.003, 0.001, 0.0003];
const dropouts = [0.2, 0.5];
const trials = Array.from({ length: K }, (_, k) => ({ ...base, learningRate: rates[k % rates.length], dropout: dropouts[Math.floor(k / rates.length) % dropouts.length] }));
const onEpoch = () => 'CONTINUE' as const;

async function timed<T>(f: () => Promise<T>): Promise<{ seconds: number; result: T }> {
  const t = performance.now();
  const result = await f();
  return { seconds: (performance.now() - t) / 1000, result };
}

console.log(`backend ${backend.name}, ${base.backbone} at ${SIZE} px, unfreeze ${String(base.unfreeze)}, K=${K}, train ${data.train.x.shape[0]}, epochs ${base.headEpochs}+${base.fineTuneEpochs}`);
const alone = await timed(async () => { for (const hp of trials) await trainTrial(hp, data, { onEpoch }); });
console.log(`separate, no sharing: ${alone.seconds.toFixed(1)} s`);
const memo = new FeatureMemo(512 * 1024 * 1024);
const memoed = await timed(async () => { for (const hp of trials) await trainTrial(hp, data, { onEpoch }, { featureMemo: { memo, dataKey: 'bench' } }); });
memo.clear();
console.log(`separate, feature memo: ${memoed.seconds.toFixed(1)} s`);
const fused = await timed(() => trainFusedTrials(trials, data, { onEpoch: () => 'CONTINUE' }));
console.log(`fused: ${fused.seconds.toFixed(1)} s (phases ${JSON.stringify(fused.result[0].phaseSeconds)})`);
console.log(JSON.stringify({
  backend: backend.name, backbone: base.backbone, size: SIZE, k: K, unfreeze: base.unfreeze,
  separateSeconds: +alone.seconds.toFixed(2), separateMemoSeconds: +memoed.seconds.toFixed(2), fusedSeconds: +fused.seconds.toFixed(2),
  speedupVsSeparate: +(alone.seconds / fused.seconds).toFixed(2), speedupVsMemo: +(memoed.seconds / fused.seconds).toFixed(2),
}));
