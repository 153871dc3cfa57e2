import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { normalizeAugmentation } from '../services/worker/src/engine/augment-config.js';
import { expectSameRun as expectSameRunWithin, fusedRuns, separateRuns, type Run } from './fused-vs-separate.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 6, learningRate: 0.01, dropout: 0.3, headUnits: 8,
  headEpochs: 2, fineTuneEpochs: 2, fineTuneLrFactor: 0.5, batchSize: 8, seed: 3,
};
// Differ in learning rate, dropout and head units only: one fusable group.
const TRIALS: TrialHyperparams[] = [
  { ...BASE },
  { ...BASE, learningRate: 0.003, dropout: 0.5, headUnits: 12 },
  { ...BASE, learningRate: 0.02, dropout: 0 },
];
// Relative tolerance: float32 summation order differs between fit and the fused step (BaseLogger averages epoch metrics as float32 tensors, the fused loop in float64). Measured: within 1e-6.
const TOL = 1e-5;

/** `stopAt`: trial index → epoch whose report answers STOP. */
const separate = (stopAt: Record<number, number>, trials = TRIALS) => separateRuns(trials, stopAt);
const fused = (stopAt: Record<number, number>, trials = TRIALS) => fusedRuns(trials, stopAt);
const expectSameRun = (f: Run, s: Run, label: string) => expectSameRunWithin(f, s, label, TOL);

describe('fused trials equal separate trainTrial runs (tiny_cnn, stripes)', () => {
  beforeAll(async () => {
    await selectBackend('cpu');
  });

  it('phase 1 and phase 2: per-epoch metrics, final metrics and final weights agree within 1e-5 (relative; measured ≤ 1e-6)', async () => {
    const [f, s] = [await fused({}), await separate({})];
    expect(s[0].outcome.history.map((e) => e.phase)).toEqual(['head', 'head', 'finetune', 'finetune']);
    TRIALS.forEach((_, k) => expectSameRun(f[k], s[k], `trial ${k}`));
    // The trials really differ (otherwise agreement would prove little).
    expect(f[0].outcome.history[3].loss).not.toBeCloseTo(f[1].outcome.history[3].loss, 3);
  }, 120_000);

  it('a trial STOPped mid-way leaves the fused batch; the others are unchanged', async () => {
    const stopAt = { 1: 2 }; // trial 1 stops after its last head epoch: no fine-tuning
    const [f, s] = [await fused(stopAt), await separate(stopAt)];
    expect(f[1].outcome.stopped).toBe(true);
    expect(f[1].outcome.history).toHaveLength(2);
    TRIALS.forEach((_, k) => expectSameRun(f[k], s[k], `trial ${k}`));
  }, 120_000);

  it('the recipe knobs too: augmented passes, class weights, label smoothing, L2, cosine schedule, early stopping that ends phases at different epochs', async () => {
    const recipe: Partial<TrialHyperparams> = {
      headEpochs: 3, fineTuneEpochs: 2, augmentation: normalizeAugmentation({ horizontalFlip: true, rotation: 10, passes: 2 }, []),
      classWeights: 'balanced', labelSmoothing: 0.1, l2: 1e-3, lrSchedule: 'cosine', earlyStopping: { patience: 0, minDelta: 0, restoreBestWeights: true },
    };
    // Learning rate 1 makes trial 1's val_loss rise after its second head epoch: its head phase ends early.
    const trials = TRIALS.map((hp, k) => ({ ...hp, ...recipe, ...(k === 1 ? { learningRate: 1 } : {}) }));
    const [f, s] = [await fused({}, trials), await separate({}, trials)];
    trials.forEach((_, k) => expectSameRun(f[k], s[k], `trial ${k}`));
    expect(f.map((r) => r.outcome.earlyStops)).toEqual(s.map((r) => r.outcome.earlyStops));
    // Early stopping split the group: the trials' phases ran different numbers of epochs.
    expect(new Set(f.map((r) => r.outcome.history.map((e) => e.phase).join())).size).toBeGreaterThan(1);
  }, 120_000);
});
