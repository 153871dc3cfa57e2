import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import { mulberry32, mulberry32FromState } from '../services/worker/src/data/prng.js';
import { decodeCheckpoint, encodeCheckpoint } from '../services/worker/src/engine/checkpoint/checkpoint-codec.js';
import { MemoryCheckpointer, type TrialCheckpoint } from '../services/worker/src/engine/checkpoint/trial-checkpoint.js';
import type { TrialHyperparams, TrialOutcome } from '../services/worker/src/engine/index.js';
import { selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn',
  imageSize: 16,
  unfreeze: 4,
  learningRate: 0.01,
  dropout: 0.3,
  headUnits: 16,
  headEpochs: 3,
  fineTuneEpochs: 3,
  fineTuneLrFactor: 0.5,
  batchSize: 16,
  seed: 3,
};

let data: LoadedDataset;
beforeAll(async () => {
  await selectBackend('cpu');
  data = stripesDataset({ train: 48, val: 24, test: 12, size: 16, seed: 4 });
});
afterAll(() => disposeData(data));

class Interrupted extends Error {}

/** Runs the trial, killing it (an error from the epoch hook) when epoch `killAt` is reported. */
async function run(hp: TrialHyperparams, store: MemoryCheckpointer, killAt = 0): Promise<TrialOutcome> {
  return trainTrial(hp, data, {
    onEpoch: (r) => {
      if (r.epoch === killAt) throw new Interrupted(`killed at epoch ${killAt}`);
      return 'CONTINUE';
    },
  }, { checkpoint: { trialId: 't1', store, onSaveError: (e) => { throw e; } } });
}

function expectSameTraining(a: TrialOutcome, b: TrialOutcome): void {
  expect(b.history.map((e) => [e.phase, e.epoch])).toEqual(a.history.map((e) => [e.phase, e.epoch]));
  a.history.forEach((e, i) => {
    expect(b.history[i].loss).toBeCloseTo(e.loss, 5);
    expect(b.history[i].valLoss).toBeCloseTo(e.valLoss, 5);
    expect(b.history[i].learningRate).toBe(e.learningRate);
  });
  expect(b.valLoss).toBeCloseTo(a.valLoss, 5);
  expect(b.testLoss).toBeCloseTo(a.testLoss, 5);
  expect(b.testAccuracy).toBe(a.testAccuracy);
  expect(b.earlyStops).toEqual(a.earlyStops);
}

describe('epoch checkpoints', () => {
  it('mulberry32 continues from its state', () => {
    const a = mulberry32(42);
    for (let i = 0; i < 5; i++) a();
    const b = mulberry32FromState(a.state);
    expect([b(), b(), b()]).toEqual([a(), a(), a()]);
  });

  const recipes: Array<[string, Partial<TrialHyperparams>]> = [
    ['adam', {}],
    ['adam + early stopping with restore + cosine schedule', { earlyStopping: { patience: 2, minDelta: 0, restoreBestWeights: true }, lrSchedule: 'cosine' }],
    ['sgd momentum + gradual unfreezing', { optimizer: 'sgd', momentum: 0.9, unfreeze: { blocks: 2 }, gradualUnfreeze: { everyEpochs: 1 } }],
  ];
  for (const [name, knobs] of recipes) {
    it(`${name}: a trial killed after epoch k and resumed ends as the uninterrupted one (k in head and fine-tune phases)`, async () => {
      const hp = { ...BASE, ...knobs };
      const whole = await run(hp, new MemoryCheckpointer());
      expect(whole.resumedEpochs).toBe(0);
      for (const k of [2, 4]) {
        const before = tf.memory().numTensors;
        const store = new MemoryCheckpointer();
        await expect(run(hp, store, k + 1)).rejects.toBeInstanceOf(Interrupted);
        const cp = (await store.load('t1'))!;
        expect(cp.epochsDone).toBe(k);
        expect(cp.phase).toBe(k <= hp.headEpochs ? 'head' : 'finetune');
        const resumed = await run(hp, store);
        expect(resumed.resumedEpochs).toBe(k);
        expectSameTraining(whole, resumed);
        expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
      }
    });
  }

  it('ignores a checkpoint taken with other hyperparameters', async () => {
    const store = new MemoryCheckpointer();
    await expect(run(BASE, store, 3)).rejects.toBeInstanceOf(Interrupted);
    const other = await run({ ...BASE, learningRate: 0.02 }, store);
    expect(other.resumedEpochs).toBe(0);
    expect(other.history).toHaveLength(6);
  });

  it('round-trips through the binary format and refuses a truncated or corrupt one', async () => {
    const store = new MemoryCheckpointer();
    await expect(run({ ...BASE, earlyStopping: { patience: 3, minDelta: 0, restoreBestWeights: true } }, store, 5)).rejects.toBeInstanceOf(Interrupted);
    const cp = (await store.load('t1')) as TrialCheckpoint;
    const bytes = encodeCheckpoint(cp);
    expect(decodeCheckpoint(bytes)).toEqual(cp);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 10))).toThrow(/digest|truncated/);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 3] ^= 0xff;
    expect(() => decodeCheckpoint(flipped)).toThrow(/digest/);
    expect(() => decodeCheckpoint(new Uint8Array(20))).toThrow(/magic/);
  });
});
