import * as tf from '@tensorflow/tfjs';
import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';
import { listWeights, pushWeights } from '../services/sweeper/src/commands/weights.js';
import { loadBackbone } from '../services/worker/src/engine/backbones/registry.js';
import { buildTinyCnn } from '../services/worker/src/engine/backbones/tiny-cnn.js';
import { WeightsError } from '../services/worker/src/engine/weights/weights-error.js';
import { WeightsCache } from '../services/worker/src/engine/weights/weights-cache.js';
import { sameBits, snapshotWeights } from './engine-helpers.js';
import { saveArtifacts, writeModelDir } from './helpers/tfjs-model-dir.js';

tf.setBackend('cpu');

describe('weights in the NATS Object Store (push through the coordinator, read by workers)', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let nc: NatsConnection;
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tlsweep-objw-'));
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    client?.close();
    await nc?.close();
    await coord?.stop();
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('pushes a model folder with progress, lists it, and a worker loads it by objstore:<name>', async () => {
    const source = buildTinyCnn(32, 11).model;
    const dir = writeModelDir(join(root, 'tiny'), await saveArtifacts(source), { prefix: 'tiny_cnn', shards: 2 });
    const lines: string[] = [];
    const ref = await pushWeights(client, 'tiny-seed11', dir, (l) => lines.push(l));
    expect(ref).toBe('objstore:tiny-seed11');
    expect(lines.some((l) => /pushing tiny-seed11: .* \(100%\)/.test(l))).toBe(true);
    const listed = await client.listWeights();
    const entry = listed.find((w) => w.name === 'tiny-seed11')!;
    expect(entry).toMatchObject({ ref: 'objstore:tiny-seed11', weightCount: source.weights.length });
    const out: string[] = [];
    await listWeights(client, {}, (l) => out.push(l));
    expect(out.join('\n')).toContain('objstore:tiny-seed11');

    const b = await loadBackbone('tiny_cnn', { seed: 3, weightsRef: ref, weightsAccess: { nc } });
    const got = snapshotWeights(b.model.layers);
    for (const [name, ws] of snapshotWeights(source.layers)) ws.forEach((w, i) => expect(sameBits(w, got.get(name)![i]), name).toBe(true));
    expect(b.pretrained).toBe(true);
    expect(b.weightsSource).toBe(`objstore:tiny-seed11 (sha256:${entry.sha256.slice(0, 12)})`);
    b.model.dispose();
  });

  it('refuses a folder whose shards do not match its manifest, and stores nothing', async () => {
    const dir = writeModelDir(join(root, 'short'), await saveArtifacts(buildTinyCnn(32, 1).model));
    writeFileSync(join(dir, 'group1-shard1of1.bin'), new Uint8Array(100));
    const err = await pushWeights(client, 'short', dir, () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/got 100 weight bytes but model.json's weightsManifest describes \d+/);
    expect((await client.listWeights()).some((w) => w.name === 'short')).toBe(false);
    const badName = await pushWeights(client, '../etc', join(root, 'tiny'), () => {}).catch((e) => e);
    expect(badName.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(badName.message).toContain('name:');
  });

  it('keeps downloaded weights per process until the name is pushed again', async () => {
    const cache = new WeightsCache(10 * 1024 * 1024);
    const first = buildTinyCnn(32, 21).model;
    await pushWeights(client, 'tiny-cached', writeModelDir(join(root, 'c1'), await saveArtifacts(first)), () => {});
    const conv1 = (m: tf.LayersModel) => m.getLayer('Conv1').getWeights()[0].dataSync() as Float32Array;
    const a = await loadBackbone('tiny_cnn', { weightsRef: 'objstore:tiny-cached', weightsAccess: { nc, cache } });
    const b = await loadBackbone('tiny_cnn', { weightsRef: 'objstore:tiny-cached', weightsAccess: { nc, cache } });
    expect(cache.stats().entries).toBe(1);
    expect(sameBits(conv1(a.model), conv1(first))).toBe(true);
    expect(sameBits(conv1(b.model), conv1(first))).toBe(true);
    // A re-push under the same name is a new upload: the next load reads it.
    const second = buildTinyCnn(32, 22).model;
    await pushWeights(client, 'tiny-cached', writeModelDir(join(root, 'c2'), await saveArtifacts(second)), () => {});
    const c = await loadBackbone('tiny_cnn', { weightsRef: 'objstore:tiny-cached', weightsAccess: { nc, cache } });
    expect(sameBits(conv1(c.model), conv1(second))).toBe(true);
    expect(cache.stats().entries).toBe(2);
    expect(c.weightsSource).not.toBe(a.weightsSource);
    for (const m of [a, b, c]) m.model.dispose();
  });

  it('names weights that were never pushed (unrecoverable)', async () => {
    const err = await loadBackbone('tiny_cnn', { weightsRef: 'objstore:never-pushed', weightsAccess: { nc } }).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    expect(err.message).toContain("no weights named 'never-pushed'");
    expect(err.retryable).toBe(false);
  });
});
