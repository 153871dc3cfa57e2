/**
 * The recipe knobs on tiny_cnn (cpu), each shown to change training as
 * claimed; unfreeze forms resolved on the real MobileNetV2 layer list.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import type { Backbone } from '../services/worker/src/engine/backbones/backbone.js';
import { classWeightsFor } from '../services/worker/src/engine/class-weights.js';
import { learningRateAt } from '../services/worker/src/engine/lr-schedule.js';
import { createOptimizer, keepSlotsPerVariable } from '../services/worker/src/engine/optimizer.js';
import { resolveUnfreeze, unfreezeStages } from '../services/worker/src/engine/unfreeze.js';
import type { TrialHyperparams, TrialOutcome } from '../services/worker/src/engine/index.js';
import { EngineConfigError, loadBackbone, selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { parseSweepSpec, type TrialConfig } from '../services/coordinator/src/index.js';
import { toTrialError } from '../services/worker/src/errors.js';
import { runTrial } from '../services/worker/src/runner/run-trial.js';
import { disposeData, sameBits, snapshotWeights, stripesDataset } from './engine-helpers.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn',
  imageSize: 16,
  unfreeze: 0,
  learningRate: 0.01,
  dropout: 0.1,
  headUnits: 16,
  headEpochs: 1,
  fineTuneEpochs: 0,
  fineTuneLrFactor: 0.5,
  batchSize: 16,
  seed: 3,
};

/** Learning rate so small that one epoch leaves the weights (and so the loss) as initialised. */
const FROZEN_LR = 1e-12;

let data: LoadedDataset;

beforeAll(async () => {
  await selectBackend('cpu');
  data = stripesDataset({ train: 48, val: 24, test: 12, size: 16, seed: 4 });
});
afterAll(() => disposeData(data));

/** Runs a trial and checks that it freed every tensor it made, whatever the knobs (or the error). */
async function run(hp: Partial<TrialHyperparams>, d: LoadedDataset = data, onModel?: (stage: string, m: tf.LayersModel) => void): Promise<TrialOutcome> {
  const before = tf.memory().numTensors;
  try {
    return await trainTrial({ ...BASE, ...hp }, d, { onEpoch: () => 'CONTINUE', onModel });
  } finally {
    expect(tf.memory().numTensors, `tensors leaked by ${JSON.stringify(hp)}`).toBe(before);
  }
}

/** Classes 0 and 1 of `d` only. */
function twoClasses(d: LoadedDataset): LoadedDataset {
  const pick = (s: { x: tf.Tensor4D; y: tf.Tensor1D }) => {
    const labels = s.y.dataSync();
    const idx = tf.tensor1d([...labels.keys()].filter((i) => labels[i] < 2), 'int32');
    const out = { x: tf.gather(s.x, idx) as tf.Tensor4D, y: tf.gather(s.y, idx) as tf.Tensor1D };
    idx.dispose();
    return out;
  };
  return { ...d, classNames: d.classNames.slice(0, 2), train: pick(d.train), val: pick(d.val), test: pick(d.test) };
}

describe('unfreeze forms on mobilenet_v2', () => {
  let b: Backbone;
  let names: string[];
  beforeAll(async () => {
    b = await loadBackbone('mobilenet_v2', { imageSize: 32 });
    names = b.model.layers.map((l) => l.name);
  });
  afterAll(() => b.model.dispose());

  it('has 18 blocks: the stem, expanded_conv and block_1..block_16 (the top joins block_16)', () => {
    expect(b.blockStarts.map((i) => names[i])).toEqual([
      'Conv1_pad',
      'expanded_conv_depthwise',
      ...Array.from({ length: 16 }, (_, k) => `block_${k + 1}_expand`),
    ]);
  });

  it('resolves { blocks: N } to whole blocks from the top, with the top layers', () => {
    const one = resolveUnfreeze({ blocks: 1 }, b);
    expect(names[one.firstTrainable]).toBe('block_16_expand');
    expect(names.slice(one.firstTrainable).filter((n) => !n.startsWith('block_16_'))).toEqual(['Conv_1', 'Conv_1_bn', 'out_relu']);
    expect(one).toMatchObject({ layers: names.length - one.firstTrainable, label: 'blocks:1' });
    expect(names[resolveUnfreeze({ blocks: 3 }, b).firstTrainable]).toBe('block_14_expand');
    expect(names[resolveUnfreeze({ blocks: 17 }, b).firstTrainable]).toBe('expanded_conv_depthwise');
    expect(names[resolveUnfreeze({ blocks: 18 }, b).firstTrainable]).toBe('Conv1_pad');
  });

  it('resolves numbers as Keras layers[-N:] and fineTuneAt by name or index', () => {
    expect(resolveUnfreeze(11, b)).toEqual({ firstTrainable: 144, layers: 11, label: '11' });
    expect(resolveUnfreeze(0, b).layers).toBe(0);
    const at = resolveUnfreeze({ fineTuneAt: 'block_14_add' }, b);
    expect(names[at.firstTrainable]).toBe('block_14_add');
    expect(at.label).toBe('at:block_14_add');
    expect(resolveUnfreeze({ fineTuneAt: 100 }, b)).toEqual({ firstTrainable: 100, layers: 55, label: 'at:#100' });
  });

  it('rejects an unknown layer name, too many blocks and too deep, naming the field', () => {
    expect(() => resolveUnfreeze({ fineTuneAt: 'block_99_add' }, b)).toThrow(/unfreeze\.fineTuneAt: .*no layer named 'block_99_add'/);
    expect(() => resolveUnfreeze({ blocks: 19 }, b)).toThrow(/unfreeze\.blocks must be an integer in 1\.\.18/);
    expect(() => resolveUnfreeze(155, b)).toThrow(EngineConfigError);
    expect(() => resolveUnfreeze({ fineTuneAt: 0 }, b)).toThrow(/unfreeze\.fineTuneAt/);
  });

  it('plans gradual unfreezing one block at a time down to the depth', () => {
    const stages = unfreezeStages(b.blockStarts, resolveUnfreeze({ blocks: 3 }, b).firstTrainable).map((i) => names[i]);
    expect(stages).toEqual(['block_16_expand', 'block_15_expand', 'block_14_expand']);
    // A depth inside a block: the last stage is the part block.
    expect(names[140]).toMatch(/^block_15_/);
    expect(unfreezeStages(b.blockStarts, 140).map((i) => names[i])).toEqual(['block_16_expand', names[140]]);
    // A depth within the top block: one stage.
    expect(unfreezeStages(b.blockStarts, 150)).toEqual([150]);
  });
});

describe('an unknown layer name fails the trial', () => {
  it('with a non-retryable error naming the layer, and frees everything', async () => {
    const before = tf.memory().numTensors;
    const err = await run({ unfreeze: { fineTuneAt: 'nope_layer' }, fineTuneEpochs: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineConfigError);
    expect((err as EngineConfigError).retryable).toBe(false);
    expect((err as Error).message).toContain("'nope_layer'");
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('early stopping', () => {
  // A large Adam step makes val_loss bounce (seeded, so always the same way): best at epoch 4 of 5.
  const noisy = { learningRate: 1, headEpochs: 5, dropout: 0 };

  it('restores the best epoch’s weights at the end of the phase', async () => {
    const o = await run({ ...noisy, earlyStopping: { patience: 10, minDelta: 0, restoreBestWeights: true } });
    const losses = o.history.map((h) => h.valLoss);
    const best = losses.indexOf(Math.min(...losses));
    expect(o.history).toHaveLength(5);
    expect(best, 'the run must have a best epoch before the last').toBeLessThan(4);
    expect(o.earlyStops).toEqual([{ phase: 'head', bestEpoch: best + 1, stoppedEpoch: 0, restored: true }]);
    expect(o.valLoss).toBeCloseTo(losses[best], 5);
    expect(o.valAccuracy).toBeCloseTo(o.history[best].valAccuracy, 6);
  });

  it('without restore, keeps the last weights; with patience, stops after that many epochs without improvement', async () => {
    const keep = await run({ ...noisy, earlyStopping: { patience: 10, minDelta: 0, restoreBestWeights: false } });
    expect(keep.valLoss).toBeCloseTo(keep.history.at(-1)!.valLoss, 5);
    expect(keep.earlyStops[0].restored).toBe(false);

    const losses = keep.history.map((h) => h.valLoss);
    // Keras: stop at the first epoch with `patience` epochs since the best (never after the first epoch).
    let best = Infinity;
    let wait = 0;
    let expectedStop = 0;
    for (let e = 0; e < losses.length && !expectedStop; e++) {
      wait += 1;
      if (losses[e] < best) { best = losses[e]; wait = 0; } else if (wait >= 1 && e > 0) expectedStop = e + 1;
    }
    expect(expectedStop, 'the run must have an epoch without improvement').toBeGreaterThan(0);
    const stopped = await run({ ...noisy, earlyStopping: { patience: 1, minDelta: 0, restoreBestWeights: false } });
    expect(stopped.history).toHaveLength(expectedStop);
    expect(stopped.earlyStops[0].stoppedEpoch).toBe(expectedStop);
    // Early stopping ends the phase, not the trial: the scheduler did not stop it.
    expect(stopped.stopped).toBe(false);
  });
});

describe('head', () => {
  it('sigmoid: one unit with binary cross-entropy trains on 2 classes', async () => {
    const two = twoClasses(stripesDataset({ train: 90, val: 30, test: 30, size: 16, seed: 2 }));
    let units = 0;
    let lossName = '';
    const o = await run({ binaryHead: 'sigmoid', headEpochs: 8, learningRate: 0.03, dropout: 0 }, two, (stage, m) => {
      if (stage !== 'head') return;
      units = m.outputs[0].shape[1] as number;
      lossName = String(m.loss);
    });
    // With label smoothing the sigmoid head's loss sees y·(1 − s) + s/2 while accuracy reads the 0/1 targets.
    const frozen = await run({ binaryHead: 'sigmoid', learningRate: FROZEN_LR }, two);
    const smoothed = await run({ binaryHead: 'sigmoid', learningRate: FROZEN_LR, labelSmoothing: 0.3 }, two);
    disposeData(two);
    expect(smoothed.history[0].loss).not.toBe(frozen.history[0].loss);
    expect(smoothed.history[0].valAccuracy).toBe(frozen.history[0].valAccuracy);
    expect(units).toBe(1);
    expect(lossName).toBe('binaryCrossentropy');
    expect(o.history.at(-1)!.loss).toBeLessThan(o.history[0].loss);
    expect(o.testAccuracy).toBeGreaterThan(0.6);
  });

  it('sigmoid on 3 classes is refused naming binaryHead', async () => {
    await expect(run({ binaryHead: 'sigmoid' })).rejects.toThrow(/binaryHead 'sigmoid' needs exactly 2 classes/);
  });

  it('l2 adds l2·Σw² to the training loss; label smoothing changes the loss but not the predictions', async () => {
    const plain = await run({ learningRate: FROZEN_LR });
    const l2 = await run({ learningRate: FROZEN_LR, l2: 0.01 });
    expect(l2.history[0].loss).toBeGreaterThan(plain.history[0].loss + 1e-3);
    let lossName = '';
    const smooth = await run({ learningRate: FROZEN_LR, labelSmoothing: 0.2 }, data, (stage, m) => {
      if (stage === 'head') lossName = String(m.loss);
    });
    // One-hot targets y·0.8 + 0.2/3: a near-uniform initial head moves the loss only slightly, but it moves.
    expect(lossName).toBe('categoricalCrossentropy');
    expect(smooth.history[0].loss).not.toBe(plain.history[0].loss);
    expect(smooth.history[0].valAccuracy).toBe(plain.history[0].valAccuracy);
  });
});

describe('class weights', () => {
  it('scale each example’s loss by its class weight', async () => {
    const plain = await run({ learningRate: FROZEN_LR });
    const doubled = await run({ learningRate: FROZEN_LR, classWeights: { deg0: 2, deg60: 2, deg120: 2 } });
    const one = await run({ learningRate: FROZEN_LR, classWeights: { deg0: 3 } });
    expect(doubled.history[0].loss / plain.history[0].loss).toBeCloseTo(2, 4);
    expect(one.history[0].loss).toBeGreaterThan(plain.history[0].loss);
    // Validation is unweighted (as in Keras).
    expect(doubled.history[0].valLoss).toBeCloseTo(plain.history[0].valLoss, 6);
  });

  it("'balanced' is scikit-learn's n / (classes · count)", () => {
    expect(classWeightsFor('balanced', [0, 0, 0, 1, 2, 2], ['a', 'b', 'c'])).toEqual({ 0: 6 / 9, 1: 2, 2: 1 });
    expect(classWeightsFor({ b: 4 }, [0, 1], ['a', 'b'])).toEqual({ 0: 1, 1: 4 });
    expect(() => classWeightsFor({ cat: 2 }, [0, 1], ['a', 'b'])).toThrow(/classWeights\.cat: the dataset has no class 'cat'; classes: a, b/);
    expect(() => classWeightsFor('balanced', [0, 0], ['a', 'b'])).toThrow(/class 'b' has no training images/);
  });
});

describe('optimizers and schedules', () => {
  it.each([
    ['adam', {}, 'Adam'],
    ['sgd', { momentum: 0.9 }, 'Momentum'],
    ['sgd', {}, 'SGD'],
    ['rmsprop', {}, 'RMSProp'],
  ] as const)('%s %j trains the head (%s)', async (optimizer, extra, className) => {
    let seen = '';
    const lr = optimizer === 'sgd' ? 0.1 : 0.01;
    const o = await run({ optimizer, ...extra, learningRate: lr, headEpochs: 3, dropout: 0 }, data, (stage, m) => {
      if (stage === 'head') seen = m.optimizer.getClassName();
    });
    expect(seen).toBe(className);
    expect(o.history.at(-1)!.loss).toBeLessThan(o.history[0].loss);
  });

  it('cosine and step schedules set each epoch’s rate, per phase', async () => {
    expect([0, 1, 2, 3].map((e) => learningRateAt('cosine', 1, e, 4))).toEqual([1, 0.5 * (1 + Math.SQRT1_2), 0.5, 0.5 * (1 - Math.SQRT1_2)].map((x) => expect.closeTo(x, 12)));
    expect([0, 1, 2, 3, 4].map((e) => learningRateAt({ step: { everyEpochs: 2, factor: 0.5 } }, 0.1, e, 5))).toEqual([0.1, 0.1, 0.05, 0.05, 0.025]);
    expect(learningRateAt('constant', 0.3, 7, 8)).toBe(0.3);

    const o = await run({ lrSchedule: 'cosine', headEpochs: 2, unfreeze: 9, fineTuneEpochs: 2, learningRate: 0.02, fineTuneLrFactor: 0.5 });
    expect(o.history.map((h) => [h.phase, h.learningRate])).toEqual([
      ['head', 0.02], ['head', expect.closeTo(0.01, 12)], ['finetune', 0.01], ['finetune', expect.closeTo(0.005, 12)],
    ]);
  });
});

describe('optimizer slots when variables are added', () => {
  it('keep each variable’s Adam moments when a new variable comes first', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]), true, 'slot_test_a');
    const b = tf.variable(tf.tensor1d([5]), true, 'slot_test_b');
    const twin = tf.variable(tf.tensor1d([5]), true, 'slot_test_twin');
    const opt = keepSlotsPerVariable(createOptimizer('adam', 0.1));
    const ref = createOptimizer('adam', 0.1);
    const g = () => tf.tensor1d([1]);
    // Step 1: b alone (and its twin on a reference optimizer).
    opt.applyGradients({ slot_test_b: g() });
    ref.applyGradients({ slot_test_twin: g() });
    // Step 2: a is unfrozen and listed first, as lower layers are.
    opt.applyGradients({ slot_test_a: tf.tensor1d([1, 1, 1]), slot_test_b: g() });
    ref.applyGradients({ slot_test_twin: g() });
    expect(b.dataSync()[0]).toBeCloseTo(twin.dataSync()[0], 6);
    expect(a.dataSync()[0]).toBeLessThan(1);
    tf.dispose([a, b, twin]);
    opt.dispose();
    ref.dispose();
  });
});

describe('gradual unfreezing and trainBatchNorm on tiny_cnn', () => {
  it('unfreezes one more block every k fine-tune epochs, on the cut of the final depth', async () => {
    let backbone: tf.LayersModel | undefined;
    let before = new Map<string, Float32Array[]>();
    const afterEpoch: Array<Map<string, Float32Array[]>> = [];
    const o = await trainTrial(
      { ...BASE, unfreeze: { blocks: 2 }, gradualUnfreeze: { everyEpochs: 1 }, fineTuneEpochs: 3 },
      data,
      {
        onEpoch: () => {
          if (backbone) afterEpoch.push(snapshotWeights(backbone.layers));
          return 'CONTINUE';
        },
        onModel: (stage, m) => {
          if (stage !== 'backbone') return;
          backbone = m;
          before = snapshotWeights(m.layers);
        },
      },
    );
    // tiny_cnn: stem at 1, block_1 at 4, block_2 at 13, 24 layers.
    expect(o.history.map((h) => h.trainableLayers)).toEqual([0, 11, 20, 20]);
    expect(o.unfreezeLayers).toBe(20);
    expect(o.cutLayer).toBe('Conv1_relu');
    const kernel = (snap: Map<string, Float32Array[]>, layer: string) => snap.get(layer)![0];
    // Fine-tune epoch 1 (trial epoch 2): block_1 still frozen, block_2 trained.
    expect(sameBits(kernel(before, 'block_1_expand'), kernel(afterEpoch[1], 'block_1_expand'))).toBe(true);
    expect(sameBits(kernel(before, 'block_2_expand'), kernel(afterEpoch[1], 'block_2_expand'))).toBe(false);
    // Fine-tune epoch 2: block_1 trains too; the stem never does.
    expect(sameBits(kernel(before, 'block_1_expand'), kernel(afterEpoch[2], 'block_1_expand'))).toBe(false);
    expect(sameBits(kernel(before, 'Conv1'), kernel(afterEpoch[3], 'Conv1'))).toBe(true);
  });

  it('trainBatchNorm from the recipe reaches the BatchNorm policy', async () => {
    let backbone: tf.LayersModel | undefined;
    let before = new Map<string, Float32Array[]>();
    let after = new Map<string, Float32Array[]>();
    await trainTrial({ ...BASE, unfreeze: 9, fineTuneEpochs: 1, trainBatchNorm: true }, data, {
      onEpoch: () => {
        if (backbone) after = snapshotWeights(backbone.layers);
        return 'CONTINUE';
      },
      onModel: (stage, m) => {
        if (stage === 'backbone') {
          backbone = m;
          before = snapshotWeights(m.layers);
        }
      },
    });
    // Conv_1_bn is in the top 9 layers: its moving mean (weight 2) moves only with batch statistics.
    expect(sameBits(before.get('Conv_1_bn')![2], after.get('Conv_1_bn')![2])).toBe(false);
  });
});

describe('bad recipe values', () => {
  it.each([
    [{ optimizer: 'adamw' }, 'optimizer'],
    [{ momentum: 0.9 }, 'momentum: applies to optimizer sgd only'],
    [{ lrSchedule: 'linear' }, 'lrSchedule'],
    [{ earlyStopping: { patience: -1 } }, 'earlyStopping.patience'],
    [{ labelSmoothing: 1 }, 'labelSmoothing'],
    [{ classWeights: { deg0: -1 } }, 'classWeights.deg0'],
    [{ gradualUnfreeze: { everyEpochs: 0 } }, 'gradualUnfreeze'],
    [{ l2: -0.1 }, 'l2'],
  ])('%j is refused naming %s', async (bad, field) => {
    const err = await run(bad as Partial<TrialHyperparams>).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineConfigError);
    expect((err as Error).message).toContain(field);
  });
});

describe('from a validated spec through the worker runner', () => {
  const spec = (extra: string) => parseSweepSpec(`name: r
dataset: { kind: synthetic, perClass: 8 }
backbones: [tiny_cnn]
unfreeze: [{ blocks: 1 }, { fineTuneAt: nope_layer }]
learningRates: [0.01]
dropouts: [0]
imageSize: 16
headEpochs: 2
fineTuneEpochs: 1
batchSize: 8
${extra}`);
  const config = (s: ReturnType<typeof parseSweepSpec>, unfreeze: number): TrialConfig => ({
    trialId: 't', sweepId: 's', index: 0, backbone: 'tiny_cnn', unfreeze: s.unfreeze[unfreeze], learningRate: 0.01, dropout: 0,
    dataset: s.datasets[0], datasetLabel: 'synthetic', imageSize: s.imageSize, headUnits: 8, headEpochs: s.headEpochs,
    fineTuneEpochs: s.fineTuneEpochs, fineTuneLrFactor: s.fineTuneLrFactor, batchSize: s.batchSize, seed: 0, split: s.split, recipe: s.recipe,
  });

  it('runs the recipe the spec asked for and reports the resolved depth', async () => {
    const s = spec('lrSchedule: cosine\nearlyStopping: { patience: 5 }\n');
    const out = await runTrial(config(s, 0), { onEpoch: async () => 'CONTINUE' });
    // tiny_cnn: block_2 starts at layer 13 of 24.
    expect(out.unfreezeLayers).toBe(11);
    expect(out.history.map((h) => h.trainableLayers)).toEqual([0, 0, 11]);
    expect(out.history[1].learningRate).toBeCloseTo(0.005, 10);
    expect(out.earlyStops.map((e) => e.phase)).toEqual(['head', 'finetune']);
  });

  it('fails an unknown layer name as INVALID_TRIAL (not retried), naming the layer', async () => {
    const err = await runTrial(config(spec(''), 1), { onEpoch: async () => 'CONTINUE' }).catch((e: unknown) => toTrialError(e));
    expect(err).toMatchObject({ code: 'INVALID_TRIAL', retryable: false });
    expect((err as Error).message).toContain("no layer named 'nope_layer'");
  });
});
