/**
 * The trained full model of a trial, exported in the tfjs layers format:
 * it loads with plain tf.loadLayersModel and predicts what the trial measured;
 * its backbone weights load back as `weights` of a new trial.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import { exportFullModel, type ExportedModel } from '../services/worker/src/engine/export-model.js';
import { createHead } from '../services/worker/src/engine/head.js';
import { applyPreprocessing } from '../services/worker/src/engine/preprocess.js';
import { trainTrial, type TrialHyperparams, type TrialOutcome } from '../services/worker/src/engine/train-trial.js';
import type { LoadedDataset } from '../services/worker/src/data/load-dataset.js';
import { disposeData, sameBits, stripesDataset } from './engine-helpers.js';

tf.setBackend('cpu');

const HP: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 9, learningRate: 0.01, dropout: 0.1, headUnits: 16,
  headEpochs: 2, fineTuneEpochs: 1, fineTuneLrFactor: 0.5, batchSize: 16, seed: 5,
};

async function loadExported(m: ExportedModel): Promise<tf.LayersModel> {
  const json = JSON.parse(m.modelJson) as { modelTopology: object; weightsManifest: tf.io.WeightsManifestConfig };
  expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: m.weightData }));
}

describe('model export', () => {
  let data: LoadedDataset;
  let outcome: TrialOutcome;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tlsweep-export-'));
    data = stripesDataset({ train: 48, val: 16, test: 16, size: 16, seed: 4 });
    outcome = await trainTrial(HP, data, { onEpoch: () => 'CONTINUE' }, { exportModel: true });
  });
  afterAll(() => {
    disposeData(data);
    rmSync(root, { recursive: true, force: true });
  });

  it('carries what predict needs in tlsweep.json; nothing is exported unless asked', async () => {
    expect(outcome.model!.meta).toMatchObject({ format: 'tlsweep-model', classNames: data.classNames, inputSize: [16, 16], preprocessing: 'unit', backbone: 'tiny_cnn' });
    expect((await trainTrial(HP, data, { onEpoch: () => 'CONTINUE' })).model).toBeUndefined();
  });

  it('loads with tf.loadLayersModel and reproduces the trial’s test loss and accuracy on images', async () => {
    const model = await loadExported(outcome.model!);
    expect(model.inputs[0].shape).toEqual([null, 16, 16, 3]);
    const probs = tf.tidy(() => model.predict(applyPreprocessing(outcome.model!.meta.preprocessing, data.test.x)) as tf.Tensor2D);
    const p = (await probs.array()) as number[][];
    const labels = Array.from(await data.test.y.data());
    const correct = p.filter((row, i) => row.indexOf(Math.max(...row)) === labels[i]).length;
    const loss = -p.reduce((s, row, i) => s + Math.log(row[labels[i]]), 0) / p.length;
    expect(correct / p.length).toBeCloseTo(outcome.testAccuracy, 6);
    // The trial evaluated from cached, BatchNorm-folded activations: equal up to float rounding.
    expect(Math.abs(loss - outcome.testLoss)).toBeLessThan(1e-4 * Math.max(1, outcome.testLoss));
    probs.dispose();
    model.dispose();
  });

  it('predicts exactly what the in-process model predicts', async () => {
    const b = await loadBackbone('tiny_cnn', { imageSize: 16, seed: 2 });
    const head = createHead({ units: 8, classes: 3, dropout: 0.5, seed: 2 });
    const inProcess = tf.model({ inputs: b.model.inputs, outputs: head.apply(b.model.outputs[0]) });
    const exported = await exportFullModel(b, head, ['a', 'b', 'c']);
    const loaded = await loadExported(exported);
    const x = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 9);
    const want = inProcess.predict(x) as tf.Tensor;
    const got = loaded.predict(x) as tf.Tensor;
    expect(sameBits(await want.data() as Float32Array, await got.data() as Float32Array)).toBe(true);
    tf.dispose([x, want, got]);
    loaded.dispose();
    inProcess.dispose();
  });

  it('round-trips the fine-tuned backbone weights: the export loads back as a new trial’s weights', async () => {
    const dir = join(root, 'exported');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.json'), outcome.model!.modelJson);
    writeFileSync(join(dir, 'weights.bin'), new Uint8Array(outcome.model!.weightData));
    const json = JSON.parse(outcome.model!.modelJson) as { weightsManifest: tf.io.WeightsManifestConfig };
    const exported = tf.io.decodeWeights(outcome.model!.weightData, json.weightsManifest[0].weights);
    const b = await loadBackbone('tiny_cnn', { imageSize: 16, seed: HP.seed, weightsRef: dir });
    const fresh = await loadBackbone('tiny_cnn', { imageSize: 16, seed: HP.seed });
    for (const v of b.model.weights) {
      expect(sameBits(await v.read().data() as Float32Array, await exported[v.originalName].data() as Float32Array), v.originalName).toBe(true);
    }
    // The top layer was fine-tuned (unfreeze 9): the export holds trained, not initial, weights.
    const top = (m: tf.LayersModel) => m.getLayer('Conv_1').getWeights()[0].dataSync() as Float32Array;
    expect(sameBits(top(b.model), top(fresh.model))).toBe(false);
    expect(b.weightsSource).toContain(dir);
    tf.dispose(Object.values(exported));
    b.model.dispose();
    fresh.model.dispose();
  });
});
