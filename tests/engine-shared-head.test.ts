import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, trainTrial, type TrialHyperparams, type TrialOutcome } from '../services/worker/src/engine/index.js';
import { fusionBlocker, trainFusedTrials } from '../services/worker/src/engine/fused-trials.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

/**
 * Shared phase 1 (fuse.shareHeads): a head-only trial and a fine-tune trial
 * with the same head config train phase 1 once, and each trial's numbers
 * equal its separate trainTrial run.
 */
const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 6, learningRate: 0.01, dropout: 0.3, headUnits: 8,
  headEpochs: 2, fineTuneEpochs: 2, fineTuneLrFactor: 0.5, batchSize: 8, seed: 3,
};
// Two head configs, each at depth 0 (head only) and depth 6: two shared phase-1 trainers of two trials each.
const TRIALS: TrialHyperparams[] = [
  { ...BASE, unfreeze: 0 },
  { ...BASE },
  { ...BASE, learningRate: 0.003, dropout: 0.5 },
  { ...BASE, learningRate: 0.003, dropout: 0.5, unfreeze: 0 },
];
// Relative. The head-only trial's pooled features come from the fine-tune cut through the frozen tail in the
// shared run, from the whole (BatchNorm-folded) backbone in its separate run: float32 rounding apart. Measured ≤ 1e-6.
const TOL = 1e-5;

interface Run { outcome: TrialOutcome; weights: Float32Array[] }

function snapshot(model: tf.LayersModel): Float32Array[] {
  return model.trainableWeights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array));
}

async function separate(stopAt: Record<number, number>): Promise<Run[]> {
  const runs: Run[] = [];
  for (const [k, hp] of TRIALS.entries()) {
    const data = stripesDataset({ train: 40, val: 12, test: 12, size: 16, seed: 4 });
    let model: tf.LayersModel | null = null;
    let weights: Float32Array[] = [];
    const outcome = await trainTrial(hp, data, {
      onModel: (stage, m) => { if (stage !== 'backbone') model = m; },
      onEpoch: (r) => {
        weights = snapshot(model!);
        return r.epoch === stopAt[k] ? 'STOP' : 'CONTINUE';
      },
    });
    disposeData(data);
    runs.push({ outcome, weights });
  }
  return runs;
}

async function shared(stopAt: Record<number, number>): Promise<Run[]> {
  const data = stripesDataset({ train: 40, val: 12, test: 12, size: 16, seed: 4 });
  const models = new Map<number, tf.LayersModel>();
  const weights = new Map<number, Float32Array[]>();
  const outcomes = await trainFusedTrials(TRIALS, data, {
    onModel: (k, _stage, m) => models.set(k, m),
    onEpoch: (k, r) => {
      weights.set(k, snapshot(models.get(k)!));
      return r.epoch === stopAt[k] ? 'STOP' : 'CONTINUE';
    },
  });
  disposeData(data);
  return outcomes.map((outcome, k) => ({ outcome, weights: weights.get(k)! }));
}

function expectClose(a: number, b: number, what: string): void {
  expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(b)));
}

function expectSameRun(f: Run, s: Run, label: string): void {
  expect(f.outcome.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers])).toEqual(s.outcome.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers]));
  f.outcome.history.forEach((e, i) => {
    const r = s.outcome.history[i];
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const) expectClose(e[key], r[key], `${label} epoch ${e.epoch} ${key}`);
  });
  expect(f.outcome.stopped).toBe(s.outcome.stopped);
  expect(f.outcome.cutLayer).toBe(s.outcome.cutLayer);
  expect(f.outcome.unfreezeLayers).toBe(s.outcome.unfreezeLayers);
  expect(f.outcome.trainableParams).toBe(s.outcome.trainableParams);
  for (const key of ['valAccuracy', 'valLoss', 'testAccuracy', 'testLoss'] as const) expectClose(f.outcome[key], s.outcome[key], `${label} final ${key}`);
  expect(f.weights.map((w) => w.length)).toEqual(s.weights.map((w) => w.length));
  f.weights.forEach((w, i) => w.forEach((v, j) => expectClose(v, s.weights[i][j], `${label} weight ${i}[${j}]`)));
}

describe('shared phase 1: head-only and fine-tune trials of one head config train the head once', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it('head-only trials may join fine-tune trials of one depth; two fine-tune depths may not fuse', () => {
    expect(fusionBlocker(TRIALS)).toBeNull();
    expect(fusionBlocker([{ ...BASE }, { ...BASE, unfreeze: 4 }])).toMatch(/differ/);
    // fineTuneEpochs 0 is head-only too, whatever the depth.
    expect(fusionBlocker([{ ...BASE }, { ...BASE, unfreeze: 4, fineTuneEpochs: 0 }])).toBeNull();
    // Phase 1 must really be the same: other head epochs refuse.
    expect(fusionBlocker([{ ...BASE }, { ...BASE, unfreeze: 0, headEpochs: 3 }])).toMatch(/differ/);
  });

  it('every trial equals its separate run: per-epoch metrics, final metrics, final weights within 1e-5 relative', async () => {
    const [f, s] = [await shared({}), await separate({})];
    expect(s[0].outcome.history.map((e) => e.phase)).toEqual(['head', 'head']);
    expect(s[1].outcome.history.map((e) => e.phase)).toEqual(['head', 'head', 'finetune', 'finetune']);
    TRIALS.forEach((_, k) => expectSameRun(f[k], s[k], `trial ${k}`));
    // The two head configs really differ, and the fine-tuned trial really moved past its head-only twin.
    expect(f[0].outcome.history[1].loss).not.toBeCloseTo(f[3].outcome.history[1].loss, 3);
    expect(f[1].outcome.valLoss).not.toBeCloseTo(f[0].outcome.valLoss, 4);
  }, 120_000);

  it('a rider STOPped in phase 1 leaves alone: its twin trains on (and fine-tunes), its result is its own epoch', async () => {
    // Trial 0 (head only) stops after epoch 1; trial 2 (fine-tune) stops after epoch 1 while its head-only twin 3 goes on.
    const stopAt = { 0: 1, 2: 1 };
    const [f, s] = [await shared(stopAt), await separate(stopAt)];
    expect(f[0].outcome.stopped).toBe(true);
    expect(f[0].outcome.history).toHaveLength(1);
    expect(f[1].outcome.history).toHaveLength(4);
    expect(f[2].outcome.history).toHaveLength(1);
    expect(f[3].outcome.history).toHaveLength(2);
    TRIALS.forEach((_, k) => expectSameRun(f[k], s[k], `trial ${k}`));
  }, 120_000);
});
