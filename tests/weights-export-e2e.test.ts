/**
 * End to end with the real coordinator gRPC server, NATS and an in-process
 * worker: push backbone weights, run a sweep that uses them, keep the best
 * trial's model, export it and classify images with it, all through the CLI
 * functions.
 */
import * as tf from '@tensorflow/tfjs';
import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelObjects, silentLogger, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';
import { pushWeights } from '../services/sweeper/src/commands/weights.js';
import { exportTrialModel } from '../services/sweeper/src/commands/export.js';
import { predictImages } from '../services/sweeper/src/commands/predict.js';
import { runFeatureMaps } from '../services/sweeper/src/commands/feature-maps.js';
import { buildTinyCnn } from '../services/worker/src/engine/backbones/tiny-cnn.js';
import { MODELS_BUCKET } from '../services/worker/src/engine/weights/object-layout.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { TrialConsumer } from '../services/worker/src/runner/trial-consumer.js';
import { saveArtifacts, writeModelDir } from './helpers/tfjs-model-dir.js';
import { waitFor } from './helpers/wait-for.js';

tf.setBackend('cpu');

const spec = (weights: string, extra = '') => `
name: weights-e2e
dataset: { kind: synthetic, classes: 3, perClass: 12, seed: 1 }
backbones: [tiny_cnn]
weights: { tiny_cnn: ${weights} }
unfreeze: [0, 9]
learningRates: [0.02, 0.002]
dropouts: [0.1]
imageSize: 16
headEpochs: 2
fineTuneEpochs: 1
batchSize: 16
headUnits: 8
keepModels: 1
maxParallel: 4
${extra}`;

describe('weights push → sweep → kept model → export → predict', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let nc: NatsConnection;
  let reporter: Reporter;
  let consumer: TrialConsumer;
  let running: Promise<void>;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tlsweep-e2e-weights-'));
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 2, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
    reporter = new Reporter({ address: `127.0.0.1:${coord.port}`, retryMs: 5000 });
    consumer = new TrialConsumer({ nc, reporter, workerId: 'w-test', backend: 'cpu', log: silentLogger, heartbeatMs: 1000, nakDelayMs: 100 });
    running = consumer.run();
  });
  afterAll(async () => {
    await consumer?.drain();
    await running?.catch(() => {});
    reporter?.close();
    client?.close();
    await nc?.close();
    await coord?.stop();
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  async function runSweep(text: string): Promise<string> {
    const sweep = await client.submit(text);
    for await (const e of client.watch(sweep.sweepId)) if (e.type === 'sweep_finished') break;
    return sweep.sweepId;
  }

  it('trains with pushed weights, keeps only the best model, exports it and predicts with it', async () => {
    const source = buildTinyCnn(16, 11).model;
    await pushWeights(client, 'tiny-e2e', writeModelDir(join(root, 'w'), await saveArtifacts(source), { prefix: 'tiny_cnn', shards: 2 }), () => {});
    const sweepId = await runSweep(spec('objstore:tiny-e2e'));
    // The sweep finishes with the last result; the worker stores a kept model right after.
    const rows = await waitFor(async () => {
      const r = (await client.query({ sweepId, limit: 10 })).rows;
      return r.length === 4 && r[0].modelRef !== '' && r.slice(1).every((x) => x.modelRef === '') ? r : null;
    }, 20_000, 'only the best trial keeps a model');
    expect(rows.map((r) => r.status), rows.map((r) => r.error).join('\n')).toEqual(['completed', 'completed', 'completed', 'completed']);
    for (const r of rows) {
      expect(r.pretrained).toBe(true);
      expect(r.weightsSource).toMatch(/^objstore:tiny-e2e \(sha256:[0-9a-f]{12}\)$/);
    }
    // Rows are ranked by val accuracy; only the best keeps a model (models of earlier leaders were pruned).
    const best = rows[0];
    expect(best.modelRef).toBe(best.trialId);
    expect(rows.slice(1).every((r) => r.modelRef === '')).toBe(true);
    expect((await client.get(sweepId)).bestModelRef).toBe(best.trialId);
    const objects = await ModelObjects.open(nc, { create: false });
    await waitFor(async () => (await objects.list(MODELS_BUCKET)).map((m) => m.name).join() === best.trialId, 10_000, 'pruned models deleted');

    const other = await exportTrialModel(client, rows[1].trialId, join(root, 'none'), () => {}).catch((e) => e);
    expect(other).toBeInstanceOf(ClientError);
    expect(other.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(other.message).toContain('has no stored model');

    const dir = join(root, 'best');
    const exported = await exportTrialModel(client, best.trialId, dir, () => {});
    expect(exported.meta).toMatchObject({ trialId: best.trialId, sweepId, backbone: 'tiny_cnn', inputSize: [16, 16], preprocessing: 'unit', classNames: ['class_0', 'class_1', 'class_2'] });
    expect((exported.meta.metrics as { valAccuracy: number }).valAccuracy).toBeCloseTo(best.valAccuracy, 9);
    expect(readFileSync(join(dir, 'weights.bin')).byteLength).toBe(exported.bytes);

    // Two PNGs at another size than the model's input: decoded, resized, preprocessed, classified.
    const images = [0, 1].map((k) => {
      const png = new pngjs.PNG({ width: 24, height: 20 });
      for (let i = 0; i < png.data.length; i += 4) png.data.set([(i * 7 + k * 90) % 256, (i * 3) % 256, k * 200, 255], i);
      const file = join(root, `img${k}.png`);
      writeFileSync(file, pngjs.PNG.sync.write(png));
      return file;
    });
    const lines: string[] = [];
    const preds = await predictImages(dir, images, { json: true }, (l) => lines.push(l));
    expect(JSON.parse(lines.join('\n'))).toEqual(preds);
    expect(preds).toHaveLength(2);
    for (const p of preds) {
      expect(p.top.map((t) => t.className).sort()).toEqual(['class_0', 'class_1', 'class_2']);
      expect(p.top.reduce((s, t) => s + t.probability, 0)).toBeCloseTo(1, 5);
      expect(p.top[0].probability).toBeGreaterThanOrEqual(p.top[1].probability);
    }

    // Feature maps of the trial's own fine-tuned weights, from the exported folder.
    const grid = join(root, 'grid.png');
    expect(await runFeatureMaps({ backbone: dir, image: images[0], layer: 'Conv1', out: grid, json: true })).toBe(0);
    expect(readFileSync(grid).subarray(1, 4).toString()).toBe('PNG');
  }, 120_000);

  it('fails a trial whose weights file does not fit, naming the missing and mismatched weights', async () => {
    const wrong = writeModelDir(join(root, 'wrong'), await saveArtifacts(buildTinyCnn(16, 1).model), {
      editSpecs: (specs) => specs.map((s) => (s.name === 'Conv1/kernel' ? { ...s, name: 'Conv0/kernel' } : s)),
    });
    await pushWeights(client, 'tiny-wrong', wrong, () => {});
    const sweepId = await runSweep(spec('objstore:tiny-wrong').replace('unfreeze: [0, 9]', 'unfreeze: [0]').replace('learningRates: [0.02, 0.002]', 'learningRates: [0.02]'));
    const [row] = (await client.query({ sweepId })).rows;
    expect(row.status).toBe('failed');
    expect(row.error).toContain('WEIGHTS: weights objstore:tiny-wrong do not fit backbone model');
    expect(row.error).toContain('missing Conv1/kernel (expected shape [3,3,3,8])');
    // Unrecoverable: one attempt, not retried.
    expect(row.attempt).toBe(1);
  }, 60_000);
});
