import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { FeatureMemo, selectBackend, trainTrial, type TrialHyperparams } from '../services/worker/src/engine/index.js';
import { DiskFeatureStore } from '../services/worker/src/engine/feature-cache/disk-cache.js';
import { decodeEntry, encodeEntry, type RawTensor } from '../services/worker/src/engine/feature-cache/entry-codec.js';
import { FeatureCacheCorruptError } from '../services/worker/src/engine/feature-cache/errors.js';
import { featureKeyDigest } from '../services/worker/src/engine/feature-cache/feature-key.js';
import type { FeatureStore } from '../services/worker/src/engine/feature-cache/feature-store.js';
import type { FeatureCacheEvent } from '../services/worker/src/engine/feature-cache/tiered-lookup.js';
import { FEATURE_BUCKET, ObjectFeatureStore } from '../services/worker/src/runner/object-feature-store.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { disposeData, stripesDataset } from './engine-helpers.js';

const BASE: TrialHyperparams = {
  backbone: 'tiny_cnn', imageSize: 16, unfreeze: 13, learningRate: 0.01, dropout: 0.3, headUnits: 16,
  headEpochs: 2, fineTuneEpochs: 1, fineTuneLrFactor: 0.5, batchSize: 16, seed: 3,
};
const go = () => 'CONTINUE' as const;

/** Deterministic float32 values, including ones a lossy path would change. */
function rawEntry(sizes: number[], seed = 1): RawTensor[] {
  let s = seed;
  return sizes.map((n, i) => {
    const data = new Float32Array(n * 4);
    for (let j = 0; j < data.length; j++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      data[j] = (s / 2 ** 31 - 0.5) * 1e3;
    }
    data[0] = -0;
    data[1] = 1e-42; // subnormal
    return { name: `pooled.${['train', 'val', 'test'][i % 3]}${i >= 3 ? i : ''}`, shape: [n, 4], data };
  });
}

const sameBytes = (a: readonly RawTensor[], b: readonly RawTensor[]) =>
  a.length === b.length && a.every((t, i) => t.name === b[i].name && t.shape.join() === b[i].shape.join() && Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(b[i].data.buffer, b[i].data.byteOffset, b[i].data.byteLength)));

describe('feature cache: disk tier', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tlsweep-fc-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips an entry bit for bit and names the file by the key digest', async () => {
    const store = new DiskFeatureStore({ dir: join(dir, 'rt'), maxBytes: 1 << 20 });
    const entry = rawEntry([5, 3, 2]);
    await store.put('k1', entry);
    expect(readdirSync(join(dir, 'rt'))).toEqual([`${featureKeyDigest('k1')}.tlfc`]);
    const back = await store.get('k1');
    expect(back && sameBytes(back, entry)).toBe(true);
    expect(await store.get('k2')).toBeUndefined();
    expect(store.stats()).toMatchObject({ hits: 1, misses: 1, writes: 1, corrupt: 0 });
  });

  it('detects a flipped payload byte, a flipped header byte and truncation; deletes the file', async () => {
    const store = new DiskFeatureStore({ dir: join(dir, 'bad'), maxBytes: 1 << 20 });
    const entry = rawEntry([6, 2, 2]);
    const path = store.pathOf('k');
    const damage: Array<[string, (b: Buffer) => void]> = [
      ['payload byte', (b) => (b[b.length - 7] ^= 0x10)],
      ['header byte', (b) => (b[40] ^= 0x01)],
      ['truncation', () => truncateSync(path, readFileSync(path).length - 3)],
    ];
    for (const [what, hurt] of damage) {
      await store.put('k', entry);
      const bytes = readFileSync(path);
      hurt(bytes);
      if (what !== 'truncation') writeFileSync(path, bytes);
      expect(() => decodeEntry(readFileSync(path), 'k'), what).toThrow(FeatureCacheCorruptError);
      expect(await store.get('k'), what).toBeUndefined();
      expect(readdirSync(join(dir, 'bad')), what).toEqual([]);
    }
    expect(store.stats().corrupt).toBe(3);
    // An entry stored under another key is never served for this one.
    expect(() => decodeEntry(encodeEntry('other', entry), 'k')).toThrow(/holds key 'other'/);
  });

  it('evicts the least recently used entries to stay under its size cap', async () => {
    const entry = rawEntry([64, 16, 16]); // 1,536 bytes of payload
    const one = encodeEntry('a', entry).length;
    const store = new DiskFeatureStore({ dir: join(dir, 'lru'), maxBytes: 3 * one + 10 });
    await store.put('a', entry);
    await store.put('b', entry);
    await store.put('c', entry);
    expect(await store.get('a')).toBeDefined(); // a is now the most recently used
    await store.put('d', entry);
    expect(await store.get('b')).toBeUndefined();
    for (const k of ['a', 'c', 'd']) expect(await store.get(k), k).toBeDefined();
    expect(await store.usedBytes()).toBeLessThanOrEqual(3 * one + 10);
    expect(store.stats().evictions).toBe(1);
    // An entry bigger than the whole cap is not stored (and evicts nothing).
    await store.put('huge', rawEntry([4096, 1, 1]));
    expect(await store.get('huge')).toBeUndefined();
    expect(readdirSync(join(dir, 'lru'))).toHaveLength(3);
  });
});

describe('feature cache: tiers across trials and workers', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let dir: string;
  beforeAll(async () => {
    await selectBackend('cpu');
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    dir = mkdtempSync(join(tmpdir(), 'tlsweep-fc-'));
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips through the Object Store and drops an object that fails our digest', async () => {
    const bucket = `fc-${Math.random().toString(36).slice(2, 8)}`;
    const store = await ObjectFeatureStore.open(nc, { bucket, maxBytes: 1 << 22 });
    const entry = rawEntry([7, 3, 3]);
    await store.put('key-1', entry);
    const back = await store.get('key-1');
    expect(back && sameBytes(back, entry)).toBe(true);
    expect(await store.get('key-2')).toBeUndefined();

    // A well-formed object (the Object Store's own digest is fine) whose payload is not what our header says.
    const bad = encodeEntry('key-1', entry);
    bad[bad.length - 1] ^= 0xff;
    const raw = await new Objm(nc).open(bucket);
    await raw.putBlob({ name: featureKeyDigest('key-1') }, bad);
    expect(await store.get('key-1')).toBeUndefined();
    expect((await raw.info(featureKeyDigest('key-1')))?.deleted ?? true).toBe(true);
    expect(store.stats()).toMatchObject({ corrupt: 1, writes: 1 });
  });

  it('makes room in a full bucket by deleting the oldest objects', async () => {
    const bucket = `fc-${Math.random().toString(36).slice(2, 8)}`;
    const entry = rawEntry([2000, 200, 200]); // ~38 KB
    const store = await ObjectFeatureStore.open(nc, { bucket, maxBytes: 100_000 });
    await store.put('e1', entry);
    await store.put('e2', entry);
    await store.put('e3', entry); // does not fit beside e1 and e2
    expect(await store.get('e3')).toBeDefined();
    expect(await store.get('e1')).toBeUndefined();
    expect(store.stats().evictions).toBeGreaterThanOrEqual(1);
  });

  it('a second worker reuses the first one\'s features with identical histories and no prefix computation; a corrupt file is rebuilt', async () => {
    const data = stripesDataset({ train: 48, val: 16, test: 16, size: 16, seed: 4 });
    const objects = await ObjectFeatureStore.open(nc, { bucket: FEATURE_BUCKET, maxBytes: 1 << 26 });
    const diskA = new DiskFeatureStore({ dir: join(dir, 'worker-a'), maxBytes: 1 << 26 });
    const diskB = new DiskFeatureStore({ dir: join(dir, 'worker-b'), maxBytes: 1 << 26 });
    const augmentation = { rotation: [-10, 10] as [number, number], widthShift: [0, 0] as [number, number], heightShift: [0, 0] as [number, number], horizontalFlip: true, zoom: [1, 1] as [number, number], fillMode: 'nearest' as const, passes: 2 };
    const hp: TrialHyperparams = { ...BASE, augmentation };
    const run = async (stores: FeatureStore[], memo = new FeatureMemo(64 << 20)) => {
      const events: FeatureCacheEvent[] = [];
      const o = await trainTrial(hp, data, { onEpoch: go }, { featureMemo: { memo, dataKey: 'stripes-48-16-16', stores, onEvent: (e) => events.push(e) } });
      memo.clear();
      return { o, events, computed: events.filter((e) => e.type === 'computed').length, hits: events.filter((e) => e.type === 'hit').map((e) => (e as { tier: string }).tier) };
    };
    const before = tf.memory().numTensors;

    const a = await run([diskA, objects]);
    expect(a.computed).toBe(1);
    expect(a.events.filter((e) => e.type === 'store_failed')).toEqual([]);

    // Worker B: its own memo and an empty disk, the same Object Store.
    const b = await run([diskB, objects]);
    expect(b.computed).toBe(0);
    expect(b.hits).toEqual(['object-store']);
    expect(b.o.history).toEqual(a.o.history.map((h, i) => ({ ...h, seconds: b.o.history[i].seconds })));
    expect(b.o.testAccuracy).toBe(a.o.testAccuracy);
    // The Object Store hit was copied to B's disk: a restart of B reads it locally.
    const b2 = await run([diskB, objects]);
    expect([b2.computed, b2.hits]).toEqual([0, ['disk']]);

    // A corrupt file on A's disk is detected, deleted and rebuilt from the next tier.
    const path = diskA.pathOf(a.events.find((e) => e.type === 'computed')!.key);
    const bytes = readFileSync(path);
    bytes[bytes.length - 100] ^= 0x40;
    writeFileSync(path, bytes);
    const a2 = await run([diskA, objects]);
    expect([a2.computed, a2.hits]).toEqual([0, ['object-store']]);
    expect(diskA.stats().corrupt).toBe(1);
    expect(() => decodeEntry(readFileSync(path), a.events[0].key)).not.toThrow();

    // With every tier damaged or empty, the features are computed again, identically.
    writeFileSync(path, bytes);
    await objects.delete(a.events[0].key);
    const a3 = await run([diskA, objects]);
    expect(a3.computed).toBe(1);
    expect(a3.o.history.map((h) => h.loss)).toEqual(a.o.history.map((h) => h.loss));

    expect(tf.memory().numTensors).toBe(before);
    disposeData(data);
  });
});
