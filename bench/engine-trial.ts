/**
 * Measurement (not a test): one mobilenet_v2 trial through the engine on
 * random images, seconds per phase.
 *
 *   npx tsx bench/engine-trial.ts [--backend wasm|cpu|tensorflow] [--size 96]
 *        [--train 700] [--val 150] [--test 150] [--unfreeze 11]
 *        [--head-epochs 3] [--finetune-epochs 2] [--batch 32]
 *
 * Defaults: the fastest backend selectBackend finds; unfreeze 11 = all of
 * block 16 + Conv_1 (so phase 2 trains on activations cached at
 * block_15_add). The last line is JSON.
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import type { BackendName, TrialPhase } from '../services/worker/src/engine/index.js';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const backendArg = process.argv.indexOf('--backend');
const preferred = backendArg >= 0 ? (process.argv[backendArg + 1] as BackendName) : undefined;
const SIZE = arg('size', 96);
const CLASSES = 5;

function randomSplit(n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.randomUniform([n, SIZE, SIZE, 3], 0, 1, 'float32', seed),
    y: tf.randomUniform([n], 0, CLASSES, 'int32', seed + 1),
  };
}

const backend = await selectBackend(preferred);
const data: LoadedDataset = {
  classNames: Array.from({ length: CLASSES }, (_, k) => `class_${k}`),
  train: randomSplit(arg('train', 700), 11),
  val: randomSplit(arg('val', 150), 13),
  test: randomSplit(arg('test', 150), 15),
  skippedImages: 0,
  source: 'random',
};

const phaseSeconds: Record<string, number> = {};
let phase: TrialPhase | 'load' = 'load';
let phaseStart = performance.now();
const endPhase = (next: TrialPhase | 'done'): void => {
  phaseSeconds[phase] = (performance.now() - phaseStart) / 1000;
  console.log(`${phase}: ${phaseSeconds[phase].toFixed(2)} s`);
  if (next !== 'done') phase = next;
  phaseStart = performance.now();
};

const outcome = await trainTrial(
  {
    backbone: 'mobilenet_v2',
    imageSize: SIZE,
    unfreeze: arg('unfreeze', 11),
    learningRate: 1e-3,
    dropout: 0.2,
    headUnits: 128,
    headEpochs: arg('head-epochs', 3),
    fineTuneEpochs: arg('finetune-epochs', 2),
    fineTuneLrFactor: 0.1,
    batchSize: arg('batch', 32),
    seed: 1,
  },
  data,
  {
    onPhase: (p) => endPhase(p),
    onEpoch: (r) => {
      console.log(`epoch ${r.epoch} (${r.phase}): ${r.seconds.toFixed(2)} s, loss ${r.loss.toFixed(3)}, val acc ${r.valAccuracy.toFixed(3)}`);
      return 'CONTINUE';
    },
  },
);
endPhase('done');
tf.dispose([data.train.x, data.train.y, data.val.x, data.val.y, data.test.x, data.test.y]);

console.log(
  JSON.stringify({
    backend: backend.name,
    imageSize: SIZE,
    images: { train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0] },
    phaseSeconds,
    epochSeconds: outcome.history.map((r) => ({ phase: r.phase, seconds: Number(r.seconds.toFixed(3)) })),
    totalSeconds: Number(outcome.seconds.toFixed(2)),
    cutLayer: outcome.cutLayer,
    totalParams: outcome.totalParams,
    trainableParams: outcome.trainableParams,
    testAccuracy: outcome.testAccuracy,
  }),
);
