import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import { normalizeAugmentation } from '../services/worker/src/engine/augment-config.js';
import { FeatureMemo } from '../services/worker/src/engine/feature-memo.js';
import { PerEpochFeatures } from '../services/worker/src/engine/per-epoch-features.js';
import { selectBackend, trainTrial, type TrialHyperparams, type TrialOutcome } from '../services/worker/src/engine/index.js';
import { loadConfig } from '../services/worker/src/config.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

/**
 * `frozenPrefix: 'every-epoch'` (the naive baseline: the frozen layers run
 * again on every epoch, as Keras does) trains exactly what the default
 * once-per-trial features train, and really does recompute them.
 */
const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 6, learningRate: 0.01, dropout: 0.3, headUnits: 8,
  headEpochs: 3, fineTuneEpochs: 3, fineTuneLrFactor: 0.5, batchSize: 8, seed: 3,
};
// The prefix is deterministic in inference mode and runs the same kernels on the same batches: recomputed
// features are bit-equal on the cpu backend; the tolerance only allows for a backend that is not.
const TOL = 1e-6;

let data: LoadedDataset;
beforeAll(async () => {
  await selectBackend('cpu');
  data = stripesDataset({ train: 40, val: 12, test: 12, size: 16, seed: 4 });
});
afterAll(() => disposeData(data));

function expectSame(a: TrialOutcome, b: TrialOutcome): void {
  expect(a.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers])).toEqual(b.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers]));
  a.history.forEach((e, i) => {
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const) {
      expect(Math.abs(e[key] - b.history[i][key]), `epoch ${e.epoch} ${key}`).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(b.history[i][key])));
    }
  });
  for (const key of ['valLoss', 'valAccuracy', 'testLoss', 'testAccuracy'] as const) {
    expect(Math.abs(a[key] - b[key]), key).toBeLessThanOrEqual(TOL * Math.max(1, Math.abs(b[key])));
  }
}

describe("frozenPrefix: 'every-epoch'", () => {
  const cases: Array<[string, Partial<TrialHyperparams>]> = [
    ['fine-tuning, no augmentation', {}],
    ['fine-tuning, 2 augmented passes', { augmentation: normalizeAugmentation({ horizontalFlip: true, widthShift: 0.1, passes: 2 }, []) }],
    ['head only', { unfreeze: 0 }],
  ];
  for (const [label, extra] of cases) {
    it(`${label}: trains what once-per-trial features train, computing the prefix on every later epoch`, async () => {
      const hp = { ...BASE, ...extra };
      const once = await trainTrial(hp, data, { onEpoch: () => 'CONTINUE' });
      const compute = vi.spyOn(PerEpochFeatures.prototype, 'compute');
      try {
        const memo = new FeatureMemo(64 * 1024 * 1024);
        const every = await trainTrial(hp, data, { onEpoch: () => 'CONTINUE' }, { frozenPrefix: 'every-epoch', featureMemo: { memo, dataKey: 'stripes' } });
        expectSame(every, once);
        // Epoch 1 uses the features computed for the trial; each later epoch computes its own (train + val).
        const epochs = hp.headEpochs + (hp.unfreeze === 0 ? 0 : hp.fineTuneEpochs);
        expect(compute).toHaveBeenCalledTimes(epochs - 1);
        expect(compute.mock.calls.map((c) => c[1])).toEqual(Array.from({ length: epochs - 1 }, (_, i) => i + 1));
        expect(compute.mock.calls.map((c) => c[0])).toEqual(Array.from({ length: epochs - 1 }, (_, i) => (i + 1 < hp.headEpochs ? 'pooled' : 'activations')));
        // Nothing is kept for other trials.
        expect(memo.stats().entries).toBe(0);
      } finally {
        compute.mockRestore();
      }
    }, 60_000);
  }

  it('TLSWEEP_FROZEN_PREFIX is checked by name and value', () => {
    expect(loadConfig({}).frozenPrefix).toBe('once');
    expect(loadConfig({ TLSWEEP_FROZEN_PREFIX: 'every-epoch' }).frozenPrefix).toBe('every-epoch');
    expect(() => loadConfig({ TLSWEEP_FROZEN_PREFIX: 'always' })).toThrow(/TLSWEEP_FROZEN_PREFIX: must be one of once, every-epoch; got "always"/);
  });
});
