import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { FeatureMemo, selectBackend, trainTrial, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { trainFusedTrials } from '../services/worker/src/engine/fused-trials.js';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import type { GraphBackboneSpec } from '../services/worker/src/engine/backbones/graph-backbone-spec.js';
import { buildTinyCnn } from '../services/worker/src/engine/backbones/tiny-cnn.js';
import { countParams } from '../services/worker/src/engine/train-trial.js';
import { toTrialError } from '../services/worker/src/errors.js';
import { disposeData, stripesDataset } from './engine-helpers.js';
import { MID_FEATURE_MAP, MID_FEATURE_VECTOR, writeNsfwjsGraphModel } from './helpers/nsfwjs-graph-model.js';
import { saveArtifacts, writeModelDir } from './helpers/tfjs-model-dir.js';

const go = () => 'CONTINUE' as const;
const NAME = 'graph:mobilenet_v2_mid';

describe('graph (TF Hub-style) backbones', () => {
  let root: string;
  let dir: string;
  let server: Server;
  let base: string;
  const spec = (over: Partial<GraphBackboneSpec> = {}): GraphBackboneSpec => ({ ref: dir, inputSize: 224, preprocessing: 'unit', output: MID_FEATURE_VECTOR, ...over });

  beforeAll(async () => {
    await selectBackend('wasm');
    root = mkdtempSync(join(tmpdir(), 'tlsweep-graph-'));
    dir = await writeNsfwjsGraphModel(join(root, 'mobilenet_v2_mid'));
    server = createServer((req, res) => {
      try {
        res.writeHead(200).end(readFileSync(join(root, decodeURIComponent(req.url!.replace(/^\/+/, '')))));
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    rmSync(root, { recursive: true, force: true });
  });

  it('wraps the GraphModel as a frozen backbone: vectors as 1×1 maps, feature maps as they are, same numbers as the graph', async () => {
    const before = tf.memory().numTensors;
    const vector = await loadBackbone(NAME, { graph: spec() });
    expect(vector.model.outputs[0].shape).toEqual([null, 1, 1, 1792]);
    expect(vector).toMatchObject({ name: NAME, pretrained: true, preprocessing: 'unit', inputSize: [224, 224], blockStarts: [] });
    expect(vector.weightsSource).toMatch(new RegExp(`^${dir} \\(sha256:[0-9a-f]{12}\\)$`));
    expect(vector.graph!.output).toMatch(/^StatefulPartitionedCall\/.*\/feature_vector\/SpatialSqueeze$/);
    // Every weight of the graph counts; none of it trains.
    const params = countParams(vector.model.layers);
    expect(params.total).toBeGreaterThan(4_000_000);
    expect(params.trainable).toBe(0);

    // The same numbers as executing the graph directly, loaded here over http.
    const direct = await tf.loadGraphModel(`${base}/mobilenet_v2_mid/model.json`);
    const x = tf.randomUniform([2, 224, 224, 3], 0, 1, 'float32', 7);
    const ours = vector.model.predict(x) as tf.Tensor;
    const theirs = direct.execute(x, vector.graph!.output) as tf.Tensor;
    expect(ours.shape).toEqual([2, 1, 1, 1792]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(ours.reshape([2, 1792]), theirs))).dataSync()[0])).toBeLessThan(1e-5);

    const map = await loadBackbone(NAME, { graph: spec({ output: MID_FEATURE_MAP }) });
    expect(map.model.outputs[0].shape).toEqual([null, 7, 7, 1792]);
    // The graph's own output is nsfwjs' 5-class softmax: a 2-D "feature vector" of class probabilities.
    const own = await loadBackbone(NAME, { graph: spec({ output: null }) });
    expect(own.model.outputs[0].shape).toEqual([null, 1, 1, 5]);
    const probs = own.model.predict(x) as tf.Tensor;
    expect(tf.tidy(() => Array.from(tf.sum(probs, [1, 2, 3]).dataSync())).every((s) => Math.abs(s - 1) < 1e-4)).toBe(true);

    tf.dispose([x, ours, theirs, probs]);
    direct.dispose();
    // Disposing the model disposes the GraphModel it wraps.
    for (const b of [vector, map, own]) b.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loads over http with the same identity as from the folder', async () => {
    const fromFile = await loadBackbone(NAME, { graph: spec() });
    const fromHttp = await loadBackbone(NAME, { graph: spec({ ref: `${base}/mobilenet_v2_mid/model.json` }) });
    expect(fromHttp.graph!.sha256).toBe(fromFile.graph!.sha256);
    expect(fromHttp.weightsSource).toBe(`${base}/mobilenet_v2_mid/model.json (sha256:${fromFile.graph!.sha256.slice(0, 12)})`);
    fromFile.model.dispose();
    fromHttp.model.dispose();
  });

  it('trains the head only, on features computed once per graph, node and data; fused trials share them', async () => {
    const data = stripesDataset({ train: 36, val: 12, test: 12, size: 32, seed: 2 });
    const memo = new FeatureMemo(64 * 1024 * 1024);
    const ref = { memo, dataKey: 'stripes-36-12-12-32' };
    const hp: TrialHyperparams = {
      backbone: NAME, graph: spec(), imageSize: 224, unfreeze: 0, learningRate: 0.003, dropout: 0.2, headUnits: 32,
      headEpochs: 4, fineTuneEpochs: 2, fineTuneLrFactor: 0.1, batchSize: 12, seed: 1,
    };
    const baseline = tf.memory().numTensors;
    const first = await trainTrial(hp, data, { onEpoch: go }, { featureMemo: ref, exportModel: true });
    expect(memo.stats()).toMatchObject({ entries: 1, hits: 0, misses: 1 });
    expect(first).toMatchObject({ pretrained: true, unfreezeLayers: 0, cutLayer: 'graph_features', epochs: 4 });
    expect(first.weightsSource).toContain(dir);
    expect(first.history.every((e) => e.phase === 'head')).toBe(true);
    // Only the head trains: Dense(1792→32) and Dense(32→3).
    expect(first.trainableParams).toBe(1792 * 32 + 32 + 32 * 3 + 3);
    expect(first.totalParams).toBeGreaterThan(4_000_000 + first.trainableParams);
    // A GraphModel cannot be written as a layers model: the trial keeps none.
    expect(first.model).toBeUndefined();
    // Pretrained features separate the three stripe orientations far above chance (1/3).
    expect(first.valAccuracy).toBeGreaterThan(0.6);

    // Trials that differ in head knobs only: fused, on the memo's features.
    const fused = await trainFusedTrials([{ ...hp, learningRate: 0.01 }, { ...hp, dropout: 0.5, headUnits: 16 }], data, { onEpoch: go }, { featureMemo: ref });
    expect(memo.stats()).toMatchObject({ entries: 1, hits: 1, misses: 1 });
    expect(fused.map((o) => o.epochs)).toEqual([4, 4]);
    expect(fused.every((o) => o.pretrained && o.unfreezeLayers === 0)).toBe(true);

    // Another node of the same graph gives other features: a separate key.
    await trainTrial({ ...hp, graph: spec({ output: MID_FEATURE_MAP }) }, data, { onEpoch: go }, { featureMemo: ref });
    expect(memo.stats()).toMatchObject({ entries: 2, misses: 2 });
    memo.clear();
    expect(tf.memory().numTensors).toBe(baseline);
    disposeData(data);
  });

  it('refuses any unfreeze depth but 0, naming the field', async () => {
    const data = stripesDataset({ train: 6, val: 3, test: 3, size: 32 });
    const hp: TrialHyperparams = {
      backbone: NAME, graph: spec(), imageSize: 224, unfreeze: 1, learningRate: 0.01, dropout: 0, headUnits: 4,
      headEpochs: 1, fineTuneEpochs: 1, fineTuneLrFactor: 0.1, batchSize: 6, seed: 0,
    };
    const before = tf.memory().numTensors;
    await expect(trainTrial(hp, data, { onEpoch: go })).rejects.toThrow(/unfreeze must be 0 for graph backbone 'graph:mobilenet_v2_mid'.*got 1/);
    await expect(trainTrial({ ...hp, unfreeze: { blocks: 1 } }, data, { onEpoch: go })).rejects.toThrow(/unfreeze must be 0.*got blocks:1/);
    expect(tf.memory().numTensors).toBe(before);
    disposeData(data);
  });

  it('fails with errors that name the path, the size or the node', async () => {
    const missing = join(root, 'nowhere');
    const err = (await loadBackbone(NAME, { graph: spec({ ref: missing }) }).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(`graph backbone ${NAME} (${missing}): cannot read ${missing}/model.json`);
    expect(toTrialError(err)).toMatchObject({ code: 'WEIGHTS', retryable: false });

    await expect(loadBackbone(NAME, { graph: spec({ inputSize: 96 }) })).rejects.toThrow(/fixed at 224×224; set inputSize: 224/);
    await expect(loadBackbone(NAME, { graph: spec({ output: 'no_such_node' }) })).rejects.toThrow(/no node named 'no_such_node'.*the graph's outputs: Identity/);
    await expect(loadBackbone(NAME, { graph: spec({ output: 'Relu6' }) })).rejects.toThrow(/output 'Relu6' matches \d+ nodes/);

    // A layers-format model is not a graph.
    const layers = writeModelDir(join(root, 'tiny'), await saveArtifacts(buildTinyCnn(32, 1).model));
    await expect(loadBackbone(NAME, { graph: spec({ ref: layers }) })).rejects.toThrow(/format 'layers-model'\) is not a tfjs GraphModel/);
    await expect(loadBackbone(NAME, {})).rejects.toThrow(/carries no graph spec/);
  });
});
