import * as tf from '@tensorflow/tfjs';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import { buildTinyCnn } from '../services/worker/src/engine/backbones/tiny-cnn.js';
import { parseWeightsRef } from '../services/worker/src/engine/weights/weights-ref.js';
import { WeightsError } from '../services/worker/src/engine/weights/weights-error.js';
import { loadWeightsInto } from '../services/worker/src/engine/weights/load-weights.js';
import { toTrialError } from '../services/worker/src/errors.js';
import { sameBits, snapshotWeights } from './engine-helpers.js';
import { saveArtifacts, writeModelDir } from './helpers/tfjs-model-dir.js';

tf.setBackend('cpu');

function expectSameWeights(a: tf.LayersModel, b: tf.LayersModel): void {
  const sa = snapshotWeights(a.layers);
  const sb = snapshotWeights(b.layers);
  for (const [name, ws] of sa) ws.forEach((w, i) => expect(sameBits(w, sb.get(name)![i]), `${name}[${i}]`).toBe(true));
}

describe('weights refs', () => {
  it('parses the allowed forms and names them when refusing one', () => {
    expect(parseWeightsRef('/m/vgg')).toMatchObject({ kind: 'file', path: '/m/vgg/model.json' });
    expect(parseWeightsRef('/m/vgg/model.json')).toMatchObject({ kind: 'file', path: '/m/vgg/model.json' });
    expect(parseWeightsRef('file:///m/x/')).toMatchObject({ kind: 'file', path: '/m/x/model.json' });
    expect(parseWeightsRef('https://h/a/model.json')).toMatchObject({ kind: 'http', url: 'https://h/a/model.json' });
    expect(parseWeightsRef('objstore:vgg16-imagenet')).toMatchObject({ kind: 'objstore', name: 'vgg16-imagenet' });
    expect(() => parseWeightsRef('models/vgg')).toThrow(/objstore:<name>/);
    expect(() => parseWeightsRef('https://h/a/weights.bin')).toThrow(/model\.json/);
    expect(() => parseWeightsRef('objstore:../x')).toThrow(/Object Store name/);
  });
});

describe('loading backbone weights', () => {
  let root: string;
  let source: tf.LayersModel;
  let dir: string;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tlsweep-weights-'));
    source = buildTinyCnn(32, 7).model;
    // A head on top: its weights are in the file but not in the backbone (ignored, counted).
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(source.outputs[0]) as tf.SymbolicTensor;
    const withHead = tf.model({ inputs: source.inputs, outputs: tf.layers.dense({ units: 3, name: 'predictions' }).apply(pooled) as tf.SymbolicTensor });
    dir = writeModelDir(join(root, 'tiny'), await saveArtifacts(withHead), { prefix: 'tiny_cnn', shards: 3 });
    server = createServer((req, res) => {
      try {
        const body = readFileSync(join(root, decodeURIComponent(req.url!.replace(/^\/+/, ''))));
        res.writeHead(200, { 'content-type': extname(req.url!) === '.json' ? 'application/json' : 'application/octet-stream' }).end(body);
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

  it('loads every weight by name from a folder path (model-name prefix, 3 shards, a head to ignore)', async () => {
    const b = await loadBackbone('tiny_cnn', { seed: 1, weightsRef: dir });
    expectSameWeights(b.model, source);
    expect(b.pretrained).toBe(true);
    expect(b.weightsSource).toMatch(new RegExp(`^${dir} \\(sha256:[0-9a-f]{12}\\)$`));
    b.model.dispose();
    // Without weights the same seed gives other (random) weights.
    const plain = await loadBackbone('tiny_cnn', { seed: 1 });
    expect(plain.pretrained).toBe(false);
    expect(sameBits(plain.model.getLayer('Conv1').getWeights()[0].dataSync() as Float32Array, source.getLayer('Conv1').getWeights()[0].dataSync() as Float32Array)).toBe(false);
    plain.model.dispose();
  });

  it('counts the file weights the backbone has no place for', async () => {
    const target = buildTinyCnn(32, 2).model;
    const r = await loadWeightsInto(target, dir);
    expect(r.assigned).toBe(target.weights.length);
    expect(r.ignored.sort()).toEqual(['predictions/bias', 'predictions/kernel']);
    target.dispose();
  });

  it('loads from a file: URL and from an http URL served in the test', async () => {
    const viaFile = await loadBackbone('tiny_cnn', { weightsRef: pathToFileURL(join(dir, 'model.json')).href });
    expectSameWeights(viaFile.model, source);
    viaFile.model.dispose();
    const viaHttp = await loadBackbone('tiny_cnn', { weightsRef: `${base}/tiny/model.json` });
    expectSameWeights(viaHttp.model, source);
    expect(viaHttp.weightsSource).toContain(`${base}/tiny/model.json`);
    viaHttp.model.dispose();
    const missing = await loadBackbone('tiny_cnn', { weightsRef: `${base}/nope/model.json` }).catch((e) => e);
    expect(missing).toBeInstanceOf(WeightsError);
    expect(missing.message).toMatch(/404/);
    expect(missing.retryable).toBe(false);
  });

  it('fails naming the missing and the mismatched weight with both shapes; an unrecoverable WEIGHTS trial error', async () => {
    const bad = writeModelDir(join(root, 'bad'), await saveArtifacts(source), {
      editSpecs: (specs) => specs.map((s) => {
        if (s.name === 'block_2_project/kernel') return { ...s, name: 'block_2_projection/kernel' };
        if (s.name === 'Conv_1/kernel') return { ...s, shape: [1, 1, 32, 16] };
        return s;
      }),
    });
    const err = await loadBackbone('tiny_cnn', { weightsRef: bad }).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    expect(err.message).toContain(`weights ${bad} do not fit backbone model 'tiny_cnn'`);
    expect(err.message).toContain('missing block_2_project/kernel (expected shape [1,1,24,16])');
    expect(err.message).toContain('Conv_1/kernel: expected shape [1,1,16,32], found [1,1,32,16]');
    const te = toTrialError(err);
    expect(te.code).toBe('WEIGHTS');
    expect(te.retryable).toBe(false);
    // An absent file is named too.
    const absent = await loadBackbone('tiny_cnn', { weightsRef: join(root, 'absent') }).catch((e) => e);
    expect(absent.message).toContain(join(root, 'absent', 'model.json'));
    // objstore refs need the worker's NATS connection.
    expect((await loadBackbone('tiny_cnn', { weightsRef: 'objstore:x' }).catch((e) => e)).message).toMatch(/no NATS connection/);
  });

  it('loads a Keras-named application backbone (MobileNet v1) by name, and refuses another architecture naming its weights', async () => {
    const a = await loadBackbone('mobilenet', { imageSize: 32, seed: 1 });
    const mdir = writeModelDir(join(root, 'mnv1'), await saveArtifacts(a.model), { prefix: 'mobilenet_1.00_224' });
    const b = await loadBackbone('mobilenet', { imageSize: 32, seed: 2, weightsRef: mdir });
    expectSameWeights(b.model, a.model);
    const wrong = await loadBackbone('tiny_cnn', { weightsRef: mdir }).catch((e) => e);
    expect(wrong).toBeInstanceOf(WeightsError);
    expect(wrong.message).toMatch(/missing Conv1\/kernel \(expected shape \[3,3,3,8\]\)/);
    for (const m of [a, b]) m.model.dispose();
  }, 60_000);

  it('dequantizes uint8 Keras weights (nsfwjs MobileNetV2) exactly as the bundled loader does', async () => {
    const def = MobileNetV2Model as unknown as {
      modelJson(): Promise<{ default: { weightsManifest: tf.io.WeightsManifestConfig } }>;
      weightBundles: Array<() => Promise<{ default: string }>>;
    };
    const manifest = (await def.modelJson()).default.weightsManifest;
    const shards = await Promise.all(def.weightBundles.map(async (l) => Buffer.from((await l()).default, 'base64')));
    const joined = Buffer.concat(shards);
    const specs = manifest.flatMap((g) => g.weights);
    expect(specs.every((s) => s.quantization?.dtype === 'uint8')).toBe(true);
    const mdir = writeModelDir(join(root, 'mnv2'), { specs, data: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) }, { prefix: 'mobilenetv2_1.00_224' });
    const bundled = await loadBackbone('mobilenet_v2', { imageSize: 64 });
    const loaded = await loadBackbone('mobilenet_v2', { imageSize: 64, weightsRef: mdir });
    expectSameWeights(loaded.model, bundled.model);
    expect(bundled.weightsSource).toContain('nsfwjs');
    expect(loaded.weightsSource).toContain(mdir);
    bundled.model.dispose();
    loaded.model.dispose();
  }, 60_000);
});
