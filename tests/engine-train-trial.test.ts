/**
 * trainTrial on tiny_cnn (cpu): exactly the requested layers train, frozen
 * weights and BatchNorm statistics stay bit-identical, hyperparameters reach
 * the layers and optimizers, STOP stops, nothing leaks, and it learns.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TrialHyperparams, TrialOutcome, TrialPhase } from '../services/worker/src/engine/index.js';
import { EngineConfigError, selectBackend, trainTrial } from '../services/worker/src/engine/index.js';
import { disposeData, sameBits, snapshotWeights, stripesDataset } from './engine-helpers.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn',
  imageSize: 16,
  unfreeze: 13,
  learningRate: 0.01,
  dropout: 0.3,
  headUnits: 16,
  headEpochs: 1,
  fineTuneEpochs: 1,
  fineTuneLrFactor: 0.5,
  batchSize: 16,
  seed: 3,
};

interface Observed {
  outcome: TrialOutcome;
  layerNames: string[];
  before: Map<string, Float32Array[]>;
  after: Map<string, Float32Array[]>;
  weightNames: Map<string, string[]>;
  phases: TrialPhase[];
  headLr?: number;
  fineTuneLr?: number;
  dropoutRates: number[];
  fineTuneTrainable: string[];
  tensorsLeaked: number;
}

/** Runs a trial on a small stripes dataset and records what the hooks can see. */
async function observe(hp: Partial<TrialHyperparams>): Promise<Observed> {
  const data = stripesDataset({ train: 48, val: 16, test: 16, size: 16, seed: 4 });
  const seen: Partial<Observed> & { phases: TrialPhase[]; dropoutRates: number[] } = { phases: [], dropoutRates: [] };
  let backbone: tf.LayersModel | undefined;
  const tensorsBefore = tf.memory().numTensors;
  const outcome = await trainTrial({ ...BASE, ...hp }, data, {
    onEpoch: () => 'CONTINUE',
    onPhase: (p) => {
      seen.phases.push(p);
      if (p === 'evaluate' && backbone) seen.after = snapshotWeights(backbone.layers);
    },
    onModel: (stage, model) => {
      if (stage === 'backbone') {
        backbone = model;
        seen.layerNames = model.layers.map((l) => l.name);
        seen.before = snapshotWeights(model.layers);
        seen.weightNames = new Map(model.layers.map((l) => [l.name, l.weights.map((w) => w.originalName)]));
        return;
      }
      const lr = (model.optimizer.getConfig() as { learningRate: number }).learningRate;
      if (stage === 'head') seen.headLr = lr;
      else {
        seen.fineTuneLr = lr;
        seen.fineTuneTrainable = model.trainableWeights.map((w) => w.originalName);
      }
      for (const l of model.layers) if (l.getClassName() === 'Dropout') seen.dropoutRates.push(l.getConfig().rate as number);
    },
  });
  const tensorsLeaked = tf.memory().numTensors - tensorsBefore;
  disposeData(data);
  return { ...(seen as Observed), outcome, tensorsLeaked };
}

function isMovingStat(weightName: string): boolean {
  return /moving_(mean|variance)$/.test(weightName);
}

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('fine-tuning the top 13 layers of tiny_cnn', () => {
  let o: Observed;
  beforeAll(async () => {
    o = await observe({});
  });

  it('runs every phase and reports both', () => {
    expect(o.phases).toEqual(['features', 'head', 'finetune', 'evaluate']);
    expect(o.outcome.history.map((r) => [r.phase, r.epoch])).toEqual([
      ['head', 1],
      ['finetune', 2],
    ]);
    expect(o.outcome.cutLayer).toBe('Conv1_relu');
    expect(o.outcome.stopped).toBe(false);
    expect(o.outcome.epochs).toBe(2);
    expect(o.outcome.backend).toBe('cpu');
    expect(o.outcome.pretrained).toBe(false);
    expect(o.outcome.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(o.outcome.testLoss)).toBe(true);
  });

  it('leaves every frozen weight bit-identical and changes every trainable one', () => {
    const first = o.layerNames.length - 13;
    expect(o.layerNames[first]).toBe('block_1_project_BN');
    let changedLayers = 0;
    o.layerNames.forEach((name, i) => {
      const before = o.before.get(name)!;
      const after = o.after.get(name)!;
      o.weightNames.get(name)!.forEach((wName, k) => {
        const same = sameBits(before[k], after[k]);
        if (i < first || isMovingStat(wName)) expect(same, `${wName} should be unchanged`).toBe(true);
        else expect(same, `${wName} should have trained`).toBe(false);
      });
      if (i >= first && before.length > 0) changedLayers++;
    });
    // block_1_project_BN, block_2 (expand, BN, depthwise, BN, project, BN), Conv_1, Conv_1_bn
    expect(changedLayers).toBe(9);
  });

  it('compiles exactly the top layers (and the head) as trainable', () => {
    const expected = o.layerNames
      .slice(o.layerNames.length - 13)
      .flatMap((n) => o.weightNames.get(n)!.filter((w) => !isMovingStat(w)));
    const head = o.fineTuneTrainable.filter((w) => w.startsWith('head_'));
    expect(head).toEqual(['head_dense/kernel', 'head_dense/bias', 'head_output/kernel', 'head_output/bias']);
    expect(o.fineTuneTrainable.filter((w) => !w.startsWith('head_')).sort()).toEqual(expected.sort());
    const headParams = 32 * 16 + 16 + 16 * 3 + 3;
    const backboneTrainable = o.layerNames
      .slice(o.layerNames.length - 13)
      .flatMap((n) => o.before.get(n)!.filter((_, k) => !isMovingStat(o.weightNames.get(n)![k])))
      .reduce((sum, w) => sum + w.length, 0);
    expect(o.outcome.trainableParams).toBe(backboneTrainable + headParams);
    expect(o.outcome.totalParams).toBe(2760 + headParams);
  });

  it('passes the dropout rate to the Dropout layer and lr (× factor) to the optimizers', () => {
    expect(o.dropoutRates).toEqual([0.3, 0.3]);
    expect(o.headLr).toBeCloseTo(0.01, 10);
    expect(o.fineTuneLr).toBeCloseTo(0.005, 10);
  });

  it('frees every tensor it created', () => {
    expect(o.tensorsLeaked).toBe(0);
  });
});

describe('BatchNorm', () => {
  it('with trainBatchNorm, updates only the unfrozen layers’ moving statistics', async () => {
    const o = await observe({ trainBatchNorm: true });
    const first = o.layerNames.length - 13;
    const frozenInTail = ['block_1_expand_BN', 'block_1_depthwise_BN'];
    expect(frozenInTail.every((n) => o.layerNames.indexOf(n) > o.layerNames.indexOf(o.outcome.cutLayer))).toBe(true);
    o.layerNames.forEach((name, i) => {
      o.weightNames.get(name)!.forEach((wName, k) => {
        if (!isMovingStat(wName)) return;
        const same = sameBits(o.before.get(name)![k], o.after.get(name)![k]);
        expect(same, `${wName} ${i < first ? 'frozen' : 'unfrozen'}`).toBe(i < first);
      });
    });
    expect(o.tensorsLeaked).toBe(0);
  });
});

describe('decisions and configuration', () => {
  it('stops when onEpoch says STOP after epoch 2', async () => {
    const data = stripesDataset({ train: 32, val: 16, test: 16, size: 16 });
    const phases: TrialPhase[] = [];
    const outcome = await trainTrial({ ...BASE, headEpochs: 3, fineTuneEpochs: 2 }, data, {
      onEpoch: (r) => (r.epoch >= 2 ? 'STOP' : 'CONTINUE'),
      onPhase: (p) => phases.push(p),
    });
    disposeData(data);
    expect(outcome.history).toHaveLength(2);
    expect(outcome.epochs).toBe(2);
    expect(outcome.stopped).toBe(true);
    expect(phases).toEqual(['features', 'head', 'evaluate']);
    // Stopped in phase 1: the outcome describes the head-only model.
    expect(outcome.cutLayer).toBe('out_relu');
  });

  it('stops inside phase 2 too', async () => {
    const data = stripesDataset({ train: 32, val: 16, test: 16, size: 16 });
    const outcome = await trainTrial({ ...BASE, headEpochs: 1, fineTuneEpochs: 3 }, data, {
      onEpoch: (r) => (r.epoch >= 2 ? 'STOP' : 'CONTINUE'),
    });
    disposeData(data);
    expect(outcome.history.map((r) => r.phase)).toEqual(['head', 'finetune']);
    expect(outcome.stopped).toBe(true);
  });

  it('is reproducible from its seed', async () => {
    const run = async () => {
      const data = stripesDataset({ train: 32, val: 16, test: 16, size: 16 });
      const out = await trainTrial({ ...BASE, unfreeze: 0, headEpochs: 2 }, data, { onEpoch: () => 'CONTINUE' });
      disposeData(data);
      return out.history.map(({ seconds: _s, ...rest }) => rest);
    };
    const [a, b] = [await run(), await run()];
    expect(a).toEqual(b);
  });

  it('rejects impossible hyperparameters with a non-retryable error', async () => {
    const data = stripesDataset({ train: 8, val: 4, test: 4, size: 16 });
    const before = tf.memory().numTensors;
    for (const bad of [{ unfreeze: 24 }, { dropout: 1 }, { batchSize: 0 }, { backbone: 'vgg16' }, { learningRate: -1 }]) {
      const err = await trainTrial({ ...BASE, ...bad }, data, { onEpoch: () => 'CONTINUE' }).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(EngineConfigError);
      expect((err as EngineConfigError).retryable).toBe(false);
    }
    expect(tf.memory().numTensors).toBe(before);
    disposeData(data);
  });
});

describe('learning', () => {
  it('tiny_cnn learns stripe orientation well above chance', async () => {
    const data = stripesDataset({ train: 120, val: 30, test: 60, size: 16, seed: 2 });
    const outcome = await trainTrial(
      { ...BASE, unfreeze: 23, dropout: 0.1, headUnits: 32, headEpochs: 3, fineTuneEpochs: 3, fineTuneLrFactor: 1, seed: 2 },
      data,
      { onEpoch: () => 'CONTINUE' },
    );
    disposeData(data);
    expect(outcome.history).toHaveLength(6);
    expect(outcome.testAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(outcome.valAccuracy).toBe(outcome.history.at(-1)!.valAccuracy);
  });
});
