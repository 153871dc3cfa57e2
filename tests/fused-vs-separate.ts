import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { trainTrial, type TrialHyperparams, type TrialOutcome } from '../services/worker/src/engine/index.js';
import { trainFusedTrials } from '../services/worker/src/engine/fused-trials.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

/**
 * Fused training compared with separate trainTrial runs of the same trials
 * (tests/engine-fused-trials.test.ts, tests/engine-shared-head.test.ts): each
 * run on its own copy of the same stripes dataset, keeping every trial's last
 * reported weights.
 */
export interface Run { outcome: TrialOutcome; weights: Float32Array[] }

const dataset = () => stripesDataset({ train: 40, val: 12, test: 12, size: 16, seed: 4 });

function snapshot(model: tf.LayersModel): Float32Array[] {
  return model.trainableWeights.map((w) => Float32Array.from(w.read().dataSync() as Float32Array));
}

/** Each trial alone. `stopAt`: trial index → epoch whose report answers STOP. */
export async function separateRuns(trials: readonly TrialHyperparams[], stopAt: Record<number, number>): Promise<Run[]> {
  const runs: Run[] = [];
  for (const [k, hp] of trials.entries()) {
    const data = dataset();
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

/** All trials in one trainFusedTrials call, with the same STOPs. */
export async function fusedRuns(trials: readonly TrialHyperparams[], stopAt: Record<number, number>): Promise<Run[]> {
  const data = dataset();
  const models = new Map<number, tf.LayersModel>();
  const weights = new Map<number, Float32Array[]>();
  const outcomes = await trainFusedTrials(trials, data, {
    onModel: (k, _stage, m) => models.set(k, m),
    onEpoch: (k, r) => {
      weights.set(k, snapshot(models.get(k)!));
      return r.epoch === stopAt[k] ? 'STOP' : 'CONTINUE';
    },
  });
  disposeData(data);
  return outcomes.map((outcome, k) => ({ outcome, weights: weights.get(k)! }));
}

/** Same epochs, phases, cut and parameters; metrics and weights within `tol`, relative. */
export function expectSameRun(f: Run, s: Run, label: string, tol: number): void {
  const close = (a: number, b: number, what: string) =>
    expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b)));
  expect(f.outcome.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers])).toEqual(s.outcome.history.map((e) => [e.phase, e.epoch, e.learningRate, e.trainableLayers]));
  f.outcome.history.forEach((e, i) => {
    const r = s.outcome.history[i];
    for (const key of ['loss', 'accuracy', 'valLoss', 'valAccuracy'] as const) close(e[key], r[key], `${label} epoch ${e.epoch} ${key}`);
  });
  expect(f.outcome.stopped).toBe(s.outcome.stopped);
  expect(f.outcome.cutLayer).toBe(s.outcome.cutLayer);
  expect(f.outcome.unfreezeLayers).toBe(s.outcome.unfreezeLayers);
  expect(f.outcome.trainableParams).toBe(s.outcome.trainableParams);
  for (const key of ['valAccuracy', 'valLoss', 'testAccuracy', 'testLoss'] as const) close(f.outcome[key], s.outcome[key], `${label} final ${key}`);
  expect(f.weights.map((w) => w.length)).toEqual(s.weights.map((w) => w.length));
  f.weights.forEach((w, i) => w.forEach((v, j) => close(v, s.weights[i][j], `${label} weight ${i}[${j}]`)));
}
