import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { fusionBlocker } from '../services/worker/src/engine/fused-trials.js';
import { expectSameRun as expectSameRunWithin, fusedRuns, separateRuns, type Run } from './fused-vs-separate.js';

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

/** `stopAt`: trial index → epoch whose report answers STOP. */
const separate = (stopAt: Record<number, number>, trials = TRIALS) => separateRuns(trials, stopAt);
const shared = (stopAt: Record<number, number>, trials = TRIALS) => fusedRuns(trials, stopAt);
const expectSameRun = (f: Run, s: Run, label: string) => expectSameRunWithin(f, s, label, TOL);

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
