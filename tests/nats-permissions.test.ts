/**
 * deploy/nats/nats-server.conf for real: nats-server started with that file
 * (rendered with a random port and a temp store), the coordinator logging
 * in as `coordinator` and doing its job, a `worker` login pulling and acking
 * a trial, reading weights, writing checkpoints and using the shared
 * feature cache, and refused when it publishes a trial, writes sweep/trial
 * state or creates a stream.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AFFINITY_STREAM, AffinityQueue, CacheHolders, loadConfig, openInbox, startCoordinator, TRIAL_STREAM, WORKER_CONSUMER, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { FEATURE_BUCKET, ObjectFeatureStore } from '../services/worker/src/index.js';

const CONF = join(import.meta.dirname, '..', 'deploy', 'nats', 'nats-server.conf');
const SPEC = 'name: perms\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01, 0.001]\ndropouts: [0.1]\nmaxParallel: 2';

/** A rejection's message, or 'OK'. */
const outcome = (p: Promise<unknown>) => p.then(() => 'OK', (e: Error) => `${e.name}: ${e.message}`);

describe('NATS per-role permissions (deploy/nats/nats-server.conf)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlsweep-natsconf-'));
  // A leading letter, as the README says: nats-server parses a `$VAR` value as config, so `8e31...` would read as a number.
  const pw = { coordinator: 'pw' + randomBytes(12).toString('hex'), worker: 'pw' + randomBytes(12).toString('hex') };
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let worker: NatsConnection;

  beforeAll(async () => {
    // Rendered: no fixed monitoring port (tests run in parallel); port and temp store come from -p -1 and -sd.
    const conf = readFileSync(CONF, 'utf8').replace(/^http_port:.*$/m, '').replace(/^\s*store_dir: .*$/m, '');
    writeFileSync(join(dir, 'nats-server.conf'), conf);
    nats = await startNatsServer({
      configFile: join(dir, 'nats-server.conf'), storeDir: join(dir, 'js'),
      env: { TLSWEEP_NATS_COORDINATOR_PASSWORD: pw.coordinator, TLSWEEP_NATS_WORKER_PASSWORD: pw.worker },
    });
    coord = await startCoordinator(loadConfig({
      TLSWEEP_NATS_URL: nats.url, TLSWEEP_GRPC_ADDRESS: '127.0.0.1:0', TLSWEEP_HTTP_ADDRESS: 'off',
      TLSWEEP_NATS_USER: 'coordinator', TLSWEEP_NATS_PASSWORD: pw.coordinator,
      // The coordinator creates the workers' feature bucket: they may not create streams.
      TLSWEEP_FEATURE_STORE_MB: '4',
    }));
    worker = await connect({ servers: nats.url, user: 'worker', pass: pw.worker });
  });
  afterAll(async () => {
    await worker?.close();
    await coord?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a login without the right password', async () => {
    expect(await outcome(connect({ servers: nats.url }))).toMatch(/Authorization/i);
    expect(await outcome(connect({ servers: nats.url, user: 'worker', pass: 'wrong' }))).toMatch(/Authorization/i);
  });

  it('the coordinator login submits a sweep: streams, KV and trials are created', async () => {
    const sweep = await coord.coordinator.submitSweep(SPEC);
    expect(coord.coordinator.trialsOf(sweep.sweepId).map((t) => t.status)).toEqual(['queued', 'queued']);
    // It also owns the object store buckets (weights uploaded by operators through it).
    const objm = new Objm(jetstream(coord.nc));
    await (await objm.create('tlsweep-weights')).putBlob({ name: 'tiny.bin' }, new Uint8Array([1, 2, 3]));
    await objm.create('tlsweep-checkpoints');
  });

  it('a worker pulls, heartbeats and acks a trial', async () => {
    const c = await jetstream(worker).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const msg = await c.next({ expires: 2000 });
    expect(msg).not.toBeNull();
    expect(msg!.json<{ v: number }>().v).toBe(1);
    msg!.working();
    expect(await msg!.ackAck()).toBe(true);
    const info = await (await jetstreamManager(coord.nc)).consumers.info(TRIAL_STREAM, WORKER_CONSUMER);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(1);
  });

  it('a worker may not publish trials or write sweep/trial state, and nothing changes', async () => {
    const js = jetstream(worker, { timeout: 2000 });
    const jsm = await jetstreamManager(coord.nc);
    const before = (await jsm.streams.info(TRIAL_STREAM)).state.messages;
    expect(await outcome(js.publish('tlsweep.trials.x', '{"v":1}'))).toMatch(/Permissions Violation for Publish to "tlsweep.trials.x"/);
    expect(await outcome(js.publish('$KV.tlsweep-trials.s-x.t-x', '{}'))).toMatch(/Permissions Violation for Publish to "\$KV.tlsweep-trials/);
    expect(await outcome(js.publish('$KV.tlsweep-sweeps.s-x', '{}'))).toMatch(/Permissions Violation/);
    expect(await outcome(js.publish('tlsweep.epochs.s-x.t-x', '{}'))).toMatch(/Permissions Violation for Publish to "tlsweep.epochs.s-x.t-x"/);
    // Nor delete a queued trial or the stream, or read the lease secret.
    const wjsm = await jetstreamManager(worker, { timeout: 2000, checkAPI: false });
    expect(await outcome(wjsm.streams.deleteMessage(TRIAL_STREAM, 1))).toMatch(/Permissions Violation/);
    expect(await outcome(wjsm.streams.delete('KV_tlsweep-trials'))).toMatch(/Permissions Violation/);
    expect(await outcome(worker.request('$JS.API.DIRECT.GET.KV_tlsweep-coordinator.$KV.tlsweep-coordinator.lease-secret', '', { timeout: 2000 }))).toMatch(/Permissions Violation/);
    expect((await jsm.streams.info(TRIAL_STREAM)).state.messages).toBe(before);
    expect((await jsm.streams.info('KV_tlsweep-trials')).state.messages).toBe(2);
  });

  it('cache-affinity: a worker advertises in the holders KV and pulls its inbox, but may not publish into any inbox', async () => {
    const holders = await CacheHolders.open(worker, { create: false, ttlMs: 30_000 });
    await holders.advertise('w-perm', ['key-1']);
    // Read back through the coordinator's login (a worker never lists holders).
    expect(await (await CacheHolders.open(coord.nc)).holdersOf('key-1')).toEqual(['w-perm']);
    const inboxes = await AffinityQueue.open(coord.nc);
    await inboxes.inbox('w-perm');
    const seq = await inboxes.publish('w-perm', { v: 1, config: { trialId: 't-perm' } as never });
    const inbox = await openInbox(worker, 'w-perm');
    expect(inbox).not.toBeNull();
    const msg = await inbox!.next({ expires: 2000 });
    expect(msg?.seq).toBe(seq);
    expect(await msg!.ackAck()).toBe(true);
    const js = jetstream(worker, { timeout: 2000 });
    expect(await outcome(js.publish('tlsweep.affinity.w-perm', '{"v":1}'))).toMatch(/Permissions Violation for Publish to "tlsweep.affinity.w-perm"/);
    const wjsm = await jetstreamManager(worker, { timeout: 2000, checkAPI: false });
    expect(await outcome(wjsm.consumers.add(AFFINITY_STREAM, { durable_name: 'evil', filter_subject: 'tlsweep.affinity.w-perm' }))).toMatch(/Permissions Violation/);
    await holders.withdraw('w-perm', ['key-1']);
  });

  it('a worker reads weights but cannot overwrite them, and writes checkpoints', async () => {
    const objm = new Objm(jetstream(worker, { timeout: 2000 }));
    const weights = await objm.open('tlsweep-weights');
    expect(Array.from((await weights.getBlob('tiny.bin'))!)).toEqual([1, 2, 3]);
    expect(await outcome(weights.putBlob({ name: 'evil.bin' }, new Uint8Array([9])))).toMatch(/Permissions Violation/);
    const ckpt = await objm.open('tlsweep-checkpoints');
    await ckpt.putBlob({ name: 't-1/epoch-1' }, new Uint8Array([4, 5]));
    expect(Array.from((await ckpt.getBlob('t-1/epoch-1'))!)).toEqual([4, 5]);
  });

  it('a worker opens the feature-cache bucket the coordinator created, puts and gets an entry, and still may not touch trials', async () => {
    const jsm = await jetstreamManager(coord.nc);
    expect((await jsm.streams.info(`OBJ_${FEATURE_BUCKET}`)).config.max_bytes).toBe(4 * 1024 * 1024);
    // What the worker's main does: open (an existing bucket needs only STREAM.INFO), then get/put.
    const store = await ObjectFeatureStore.open(worker, { maxBytes: 1 << 20 });
    const key = 'features|tiny_cnn|synthetic|seed=1';
    const entry = [{ name: 'x', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }];
    expect(await store.get(key)).toBeUndefined();
    await store.put(key, entry);
    const back = await store.get(key);
    expect(back?.map((t) => ({ name: t.name, shape: t.shape, data: Array.from(t.data) }))).toEqual([{ name: 'x', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }]);
    // Replacing an entry purges the old chunks (STREAM.PURGE on this bucket only); deleting works too.
    await store.put(key, [{ name: 'x', shape: [1], data: new Float32Array([7]) }]);
    expect(Array.from((await store.get(key))![0]!.data)).toEqual([7]);
    await store.delete(key);
    expect(await store.get(key)).toBeUndefined();
    expect(store.stats()).toMatchObject({ hits: 2, writes: 2, corrupt: 0 });
    // The same login is still refused trials, trial state and stream creation.
    const js = jetstream(worker, { timeout: 2000 });
    expect(await outcome(js.publish('tlsweep.trials.x', '{"v":1}'))).toMatch(/Permissions Violation/);
    expect(await outcome(js.publish('$KV.tlsweep-trials.s-x.t-x', '{}'))).toMatch(/Permissions Violation/);
    expect(await outcome(ObjectFeatureStore.open(worker, { bucket: 'tlsweep-features-2', maxBytes: 1 << 20 }))).toMatch(/Permissions Violation/);
    expect(await outcome(jsm.streams.info('OBJ_tlsweep-features-2'))).toMatch(/stream not found/);
  });
});
