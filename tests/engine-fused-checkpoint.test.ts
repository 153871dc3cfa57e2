import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import { MemoryCheckpointer } from '../services/worker/src/engine/checkpoint/trial-checkpoint.js';
import { normalizeAugmentation } from '../services/worker/src/engine/augment-config.js';
import { selectBackend, trainFusedTrials, trainTrial, type TrialHyperparams, type TrialOutcome } from '../services/worker/src/engine/index.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

/**
 * Fused groups checkpoint every member after each of its epochs and resume
 * fused, members at different epochs (or phases, or without a checkpoint)
 * included: a resumed group ends as the uninterrupted one.
 */
const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 6, learningRate: 0.01, dropout: 0.3, headUnits: 8,
  headEpochs: 3, fineTuneEpochs: 3, fineTuneLrFactor: 0.5, batchSize: 8, seed: 3,
};
// Differ in learning rate, dropout and head units only: one fusable group.
const TRIALS: TrialHyperparams[] = [
  { ...BASE },
  { ...BASE, learningRate: 0.003, dropout: 0.5, headUnits: 12 },
  { ...BASE, learningRate: 0.02, dropout: 0 },
];
const IDS = TRIALS.map((_, k) => `t${k}`);
// Relative, as tests/engine-fused-trials.test.ts: a resumed member trains in a smaller fused batch until the others
// catch up, which may change float summation order only; the alone-vs-fused resume differs as fused vs separate runs
// do. Measured: within 3.4e-6.
const TOL = 1e-5;

let data: LoadedDataset;
beforeAll(async () => {
  await selectBackend('cpu');
  data = stripesDataset({ train: 40, val: 12, test: 12, size: 16, seed: 4 });
});
afterAll(() => disposeData(data));

class Interrupted extends Error {}

/** A fused run checkpointing into `store`; killed (an error from the epoch hook) when trial `kill.k` reports epoch `kill.epoch`. */
function fused(trials: TrialHyperparams[], store: MemoryCheckpointer | null, kill?: { k: number; epoch: number }): Promise<TrialOutcome[]> {
  return trainFusedTrials(trials, data, {
    onEpoch: (k, r) => {
      if (kill && k === kill.k && r.epoch === kill.epoch) throw new Interrupted(`killed at trial ${k} epoch ${r.epoch}`);
      return 'CONTINUE';
    },
  }, store ? { checkpoints: IDS.map((trialId) => ({ trialId, store, onSaveError: (e) => { throw e; } })) } : {});
}

function expectClose(a: number, b: number, what: string): void {
  expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(b)));
}

function expectSameTraining(resumed: TrialOutcome, whole: TrialOutcome, label: string): void {
  expect(resumed.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers])).toEqual(whole.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers]));
  resumed.history.forEach((e, i) => {
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const) expectClose(e[key], whole.history[i][key], `${label} epoch ${e.epoch} ${key}`);
  });
  for (const key of ['valLoss', 'valAccuracy', 'testLoss', 'testAccuracy'] as const) expectClose(resumed[key], whole[key], `${label} final ${key}`);
  expect(resumed.earlyStops).toEqual(whole.earlyStops);
  expect(resumed.epochs).toBe(whole.epochs);
}

/** Kills a checkpointing fused run, optionally loses some checkpoints, resumes it fused; returns the resumed outcomes. */
async function killAndResume(trials: TrialHyperparams[], kill: { k: number; epoch: number }, lose: number[] = []): Promise<{ resumed: TrialOutcome[]; epochsAtKill: number[] }> {
  const store = new MemoryCheckpointer();
  await expect(fused(trials, store, kill)).rejects.toBeInstanceOf(Interrupted);
  for (const k of lose) await store.delete(IDS[k]);
  const epochsAtKill = await Promise.all(IDS.map(async (id) => (await store.load(id))?.epochsDone ?? 0));
  const before = tf.memory().numTensors;
  const resumed = await fused(trials, store);
  expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
  return { resumed, epochsAtKill };
}

describe('fused groups checkpoint per member and resume fused', () => {
  it('saves every member after each of its epochs, and a group killed with members at different epochs resumes to the uninterrupted result (1e-5 relative)', async () => {
    const whole = await fused(TRIALS, null);
    const store = new MemoryCheckpointer();
    const reference = await fused(TRIALS, store);
    expect(store.saves).toBe(3 * 6);
    expect((await store.load('t2'))?.epochsDone).toBe(6);
    TRIALS.forEach((_, k) => expectSameTraining(reference[k], whole[k], `checkpointing trial ${k}`));

    // Trial 1 dies reporting epoch 2: trial 0 has saved epoch 2, trials 1 and 2 epoch 1 (all in phase 1).
    const a = await killAndResume(TRIALS, { k: 1, epoch: 2 });
    expect(a.epochsAtKill).toEqual([2, 1, 1]);
    expect(a.resumed.map((o) => o.resumedEpochs)).toEqual([2, 1, 1]);
    TRIALS.forEach((_, k) => expectSameTraining(a.resumed[k], whole[k], `head-phase resume, trial ${k}`));

    // Trial 2 dies reporting epoch 4: trials 0 and 1 are in phase 2, trial 2 at the end of phase 1.
    const b = await killAndResume(TRIALS, { k: 2, epoch: 4 });
    expect(b.epochsAtKill).toEqual([4, 4, 3]);
    TRIALS.forEach((_, k) => expectSameTraining(b.resumed[k], whole[k], `mixed-phase resume, trial ${k}`));

    // Trial 0 dies reporting epoch 5 and trial 1's checkpoint is lost: it starts from zero while the others resume.
    const c = await killAndResume(TRIALS, { k: 0, epoch: 5 }, [1]);
    expect(c.epochsAtKill).toEqual([4, 0, 4]);
    expect(c.resumed.map((o) => o.resumedEpochs)).toEqual([4, 0, 4]);
    TRIALS.forEach((_, k) => expectSameTraining(c.resumed[k], whole[k], `one member afresh, trial ${k}`));
    // The trials really differ (otherwise agreement would prove little).
    expect(whole[0].valLoss).not.toBeCloseTo(whole[1].valLoss, 3);
  }, 180_000);

  it('with early stopping (restore best), a cosine schedule, augmented passes and class weights: a member whose phase early stopping had ended resumes to the restore of its best weights', async () => {
    const recipe: Partial<TrialHyperparams> = {
      headEpochs: 3, fineTuneEpochs: 2, augmentation: normalizeAugmentation({ horizontalFlip: true, rotation: 10, passes: 2 }, []),
      classWeights: 'balanced', labelSmoothing: 0.1, l2: 1e-3, lrSchedule: 'cosine', earlyStopping: { patience: 0, minDelta: 0, restoreBestWeights: true },
    };
    // Learning rate 1 makes trial 1's val_loss rise after its second head epoch: its head phase ends early.
    const trials = TRIALS.map((hp, k) => ({ ...hp, ...recipe, ...(k === 1 ? { learningRate: 1 } : {}) }));
    const whole = await fused(trials, null);
    const ended = whole.findIndex((o) => o.earlyStops.some((e) => e.stoppedEpoch > 0 && e.stoppedEpoch < 5));
    expect(ended, 'some phase ended early').toBeGreaterThanOrEqual(0);
    const endedAt = whole[ended].earlyStops.find((e) => e.stoppedEpoch > 0)!.stoppedEpoch;
    // Another trial dies on the epoch after that phase ended: the ended member's checkpoint says "phase ended".
    const victim = whole.findIndex((o, k) => k !== ended && o.history.length > endedAt);
    const store = new MemoryCheckpointer();
    await expect(fused(trials, store, { k: victim, epoch: endedAt + 1 })).rejects.toBeInstanceOf(Interrupted);
    expect((await store.load(IDS[ended]))?.progress.ended).toBe(true);
    const { resumed } = await killAndResume(trials, { k: victim, epoch: endedAt + 1 });
    trials.forEach((_, k) => expectSameTraining(resumed[k], whole[k], `early-stopping resume, trial ${k}`));
  }, 180_000);

  it('shared phase 1 (a head-only twin rides on a fine-tune trial\'s head trainer): riders checkpoint per trial and resume, split or shared, to the uninterrupted result', async () => {
    const trials: TrialHyperparams[] = [{ ...BASE, unfreeze: 0 }, { ...BASE }, { ...BASE, learningRate: 0.003, dropout: 0.5 }];
    const whole = await fused(trials, null);
    expect(whole.map((o) => o.epochs)).toEqual([3, 6, 6]);
    // Trial 1 dies reporting epoch 2 after its twin (trial 0) saved epoch 2: they resume from different epochs, each alone until level.
    const a = await killAndResume(trials, { k: 1, epoch: 2 });
    expect(a.epochsAtKill).toEqual([2, 1, 1]);
    trials.forEach((_, k) => expectSameTraining(a.resumed[k], whole[k], `split riders, trial ${k}`));
    // Trial 2 dies in phase 2: the twins' head checkpoints agree, so they share one trainer again (phase 1 is over for both).
    const b = await killAndResume(trials, { k: 2, epoch: 5 });
    expect(b.epochsAtKill).toEqual([3, 5, 4]);
    trials.forEach((_, k) => expectSameTraining(b.resumed[k], whole[k], `phase-2 resume, trial ${k}`));
  }, 180_000);

  it('a member checkpointed fused resumes alone (trainTrial) to the same result: one format for both paths', async () => {
    const whole = await fused(TRIALS, null);
    const store = new MemoryCheckpointer();
    await expect(fused(TRIALS, store, { k: 2, epoch: 5 })).rejects.toBeInstanceOf(Interrupted);
    expect((await store.load('t1'))?.phase).toBe('finetune');
    const alone = await trainTrial(TRIALS[1], data, { onEpoch: () => 'CONTINUE' }, { checkpoint: { trialId: 't1', store } });
    expect(alone.resumedEpochs).toBe(5);
    expectSameTraining(alone, whole[1], 'resumed alone');
  }, 120_000);
});
