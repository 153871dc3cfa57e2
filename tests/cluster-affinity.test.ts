/**
 * Cache-affinity dispatch end to end, in one process: a real NATS, the
 * coordinator (gRPC, affinity on), two in-process workers (cpu, tiny_cnn),
 * each with its own feature memo. A second sweep that needs the features a
 * first sweep left on worker A runs on A (feature-memo hits, no rebuild on
 * B); a unit routed to a holder that never starts it falls back to the
 * shared queue and finishes exactly once.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AFFINITY_STREAM, AffinityQueue, affinityKeyOf, CacheHolders, openInbox, silentLogger, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { selectBackend } from '../services/worker/src/engine/backend.js';
import { FeatureMemo } from '../services/worker/src/engine/feature-memo.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { TrialConsumer } from '../services/worker/src/runner/trial-consumer.js';
import { createCoordinatorMetrics } from '../services/coordinator/src/metrics/coordinator-metrics.js';
import { waitFor } from './helpers/wait-for.js';

// One fused unit of two trials (same features: same backbone, data, seed; head-only).
const spec = (seed: number) => `
name: affinity
dataset: {kind: synthetic, classes: 3, perClass: 12, seed: ${seed}}
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0]
learningRates: [0.01, 0.003]
dropouts: [0.1]
headEpochs: 2
batchSize: 8
headUnits: 8
maxParallel: 4
fuse: {maxTrials: 4}
seed: 7
`;

const TTL_MS = 3000;
const WAIT_MS = 3000;

describe('cache-affinity dispatch across two workers', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let nc: NatsConnection;
  let reporter: Reporter;
  const workers: Array<{ id: string; consumer: TrialConsumer; memo: FeatureMemo; computed: string[]; done: Promise<void> }> = [];

  function startWorker(id: string) {
    const memo = new FeatureMemo(64 * 1024 * 1024);
    const w = { id, memo, computed: [] as string[], consumer: null as unknown as TrialConsumer, done: Promise.resolve() };
    // Counts feature-cache rebuilds: the logger sees each `trial.feature_cache` event of the worker.
    const log = { ...silentLogger, info: (event: string, f: Record<string, unknown> = {}) => { if (event === 'trial.feature_cache' && f.type === 'computed') w.computed.push(String(f.key)); }, child: () => log };
    w.consumer = new TrialConsumer({ nc, reporter, workerId: id, backend: 'cpu', log: log as typeof silentLogger, heartbeatMs: 2000, featureMemo: memo, affinity: { holdersTtlMs: TTL_MS, minBuildMs: 0 } });
    w.done = w.consumer.run();
    workers.push(w);
    return w;
  }

  beforeAll(async () => {
    await selectBackend('cpu');
    nats = await startNatsServer();
    coord = await startCoordinator({
      natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1,
      affinity: true, affinityWaitMs: WAIT_MS, cacheHoldersTtlMs: TTL_MS,
    });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
    reporter = new Reporter({ address: `127.0.0.1:${coord.port}`, retryMs: 5000 });
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.consumer.drain()));
    reporter?.close();
    await nc?.close();
    client?.close();
    await coord?.stop();
    await nats?.stop();
  });

  const finished = (sweepId: string) => waitFor(async () => (await client.get(sweepId)).status === 'completed', 60_000, `sweep ${sweepId} completed`);

  it('the second sweep runs on the worker that holds its features, reusing them instead of rebuilding', async () => {
    const a = startWorker('w-a');
    const first = await client.submit(spec(2));
    await finished(first.sweepId);
    expect(coord.coordinator.trialsOf(first.sweepId).map((t) => t.worker)).toEqual(['w-a', 'w-a']);
    expect(a.computed.length).toBe(1); // one fused unit: its frozen features built once
    const key = affinityKeyOf(coord.coordinator.trialsOf(first.sweepId)[0].config);
    const holders = await CacheHolders.open(nc, { ttlMs: TTL_MS });
    await waitFor(async () => (await holders.holdersOf(key)).includes('w-a'), 5000, 'w-a advertises');

    // B joins, idle and pulling the shared queue too; the next sweep needs A's features.
    const b = startWorker('w-b');
    await waitFor(async () => (await holders.holdersOf('nothing')).length === 0 && (await holders.isAlive('w-b')), 5000, 'w-b alive');
    const hitsBefore = a.memo.stats().hits;
    const second = await client.submit(spec(2));
    await finished(second.sweepId);
    const trials = coord.coordinator.trialsOf(second.sweepId);
    expect(trials.map((t) => [t.worker, t.attempt, t.status])).toEqual([['w-a', 1, 'completed'], ['w-a', 1, 'completed']]);
    expect(a.computed.length).toBe(1); // no rebuild on A ...
    expect(b.computed.length).toBe(0); // ... and none on B
    expect(a.memo.stats().hits).toBeGreaterThan(hitsBefore);
    expect(coord.coordinator.affinityStats()).toMatchObject({ routed: 1, hits: 1, fallbacks: 0 });
    const metrics = createCoordinatorMetrics(coord.coordinator, { defaultMetrics: false });
    const text = await metrics.registry.metrics();
    metrics.close();
    expect(text).toMatch(/tlsweep_affinity_units_total\{outcome="hit"\} 1\n/);
    expect(text).toMatch(/tlsweep_affinity_units_total\{outcome="fallback"\} 0\n/);
    // Same features, same seeds: the reused features give the same results.
    const byLr = (id: string) => coord.coordinator.trialsOf(id).map((t) => t.valAccuracy);
    expect(byLr(second.sweepId)).toEqual(byLr(first.sweepId));
  }, 120_000);

  it('a unit routed to a holder that never starts it falls back to the shared queue and runs once; a pulled-but-dropped inbox delivery counts as an attempt', async () => {
    // A holder that advertises the features but never pulls (busy or stuck): the test keeps it alive.
    const holders = await CacheHolders.open(nc, { ttlMs: TTL_MS });
    // Data no real worker has seen (dataset seeds 3 and 4): only the ghost advertises their features.
    const base = coord.coordinator.trialsOf(coord.coordinator.listSweeps()[0].sweepId)[0].config;
    const keyOf = (seed: number) => affinityKeyOf({ ...base, dataset: { ...base.dataset, seed } as typeof base.dataset });
    const alive = setInterval(() => void holders.advertise('ghost', [keyOf(3), keyOf(4)]), 300);
    try {
      await holders.advertise('ghost', [keyOf(3), keyOf(4)]);
      const before = coord.coordinator.affinityStats()!;
      const s1 = await client.submit(spec(3));
      await finished(s1.sweepId);
      const t1 = coord.coordinator.trialsOf(s1.sweepId);
      // Ran once, by a real worker, as attempt 1: the ghost never took it, so no attempt is shown for it.
      expect(t1.map((t) => [t.status, t.attempt, t.epochs])).toEqual([['completed', 1, 2], ['completed', 1, 2]]);
      expect(t1.every((t) => t.worker === 'w-a' || t.worker === 'w-b')).toBe(true);
      expect(coord.coordinator.affinityStats()).toMatchObject({ routed: before.routed + 1, fallbacks: before.fallbacks + 1 });
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(AFFINITY_STREAM)).state.messages).toBe(0);

      // Now the ghost pulls the unit from its inbox and never starts it: that delivery counts (attempt 2 runs it).
      const inboxes = await AffinityQueue.open(nc);
      await inboxes.inbox('ghost');
      const ghostInbox = (await openInbox(nc, 'ghost'))!;
      const s2 = await client.submit(spec(4));
      const pulled = await ghostInbox.next({ expires: 5000 });
      expect(pulled).not.toBeNull();
      await finished(s2.sweepId);
      const t2 = coord.coordinator.trialsOf(s2.sweepId);
      expect(t2.map((t) => [t.status, t.attempt, t.epochs])).toEqual([['completed', 2, 2], ['completed', 2, 2]]);
      // The dropped delivery's late start is refused: the trial never runs twice.
      const late = await coord.coordinator.trialStarted({ trialId: t2[0].config.trialId, attempt: 1, worker: 'ghost', backend: 'cpu', pretrained: false, weightsSource: '' });
      expect(late.action).toBe('STOP');
      expect(coord.coordinator.getTrial(t2[0].config.trialId)).toMatchObject({ status: 'completed', attempt: 2 });
    } finally {
      clearInterval(alive);
    }
  }, 120_000);
});
