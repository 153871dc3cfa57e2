import { describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import type { TrialConfig } from '../services/coordinator/src/spec/sweep-spec.js';
import { TrialQueue } from '../services/coordinator/src/queue/trial-queue.js';
import { AffinityQueue } from '../services/coordinator/src/queue/affinity-queue.js';
import { affinityKeyOf } from '../services/coordinator/src/queue/affinity-key.js';
import { AffinityRouter } from '../services/coordinator/src/queue/affinity-router.js';
import { CacheHolders } from '../services/coordinator/src/queue/cache-holders.js';
import { useNatsServer } from './helpers/nats-suite.js';
import { waitFor } from './helpers/wait-for.js';

function config(trialId: string, over: Partial<TrialConfig> = {}): TrialConfig {
  return {
    trialId, sweepId: 's1', index: 0, backbone: 'mobilenet_v2', unfreeze: 10, learningRate: 0.01, dropout: 0.2,
    dataset: { kind: 'synthetic', classes: 3, perClass: 10 }, datasetLabel: 'synthetic:3x10', imageSize: 96,
    headUnits: 32, headEpochs: 1, fineTuneEpochs: 1, fineTuneLrFactor: 0.1, batchSize: 8, seed: 1,
    split: { valFraction: 0.2, testFraction: 0.2 }, augmentation: null, ...over,
  };
}
const task = (c: TrialConfig): TrialTaskV1 => ({ v: 1, config: c });

describe('cache-affinity dispatch', () => {
  const suite = useNatsServer();

  it('keys trials by the features they need, not by their head hyperparameters', () => {
    const a = affinityKeyOf(config('t1'));
    expect(affinityKeyOf(config('t2', { learningRate: 0.5, dropout: 0.5, headUnits: 7, index: 9 }))).toBe(a);
    expect(affinityKeyOf(config('t3', { unfreeze: 20 }))).not.toBe(a);
    expect(affinityKeyOf(config('t4', { imageSize: 128 }))).not.toBe(a);
    expect(affinityKeyOf(config('t5', { split: { valFraction: 0.3, testFraction: 0.2 } }))).not.toBe(a);
    // Head-only trials share one key whatever unfreeze says; random-init backbones are keyed by seed.
    expect(affinityKeyOf(config('t6', { unfreeze: 3, fineTuneEpochs: 0 }))).toBe(affinityKeyOf(config('t7', { unfreeze: 0 })));
    expect(affinityKeyOf(config('t8', { backbone: 'tiny_cnn', seed: 1 }))).not.toBe(affinityKeyOf(config('t9', { backbone: 'tiny_cnn', seed: 2 })));
  });

  it('delivers a trial whose key worker A holds to A, others to the shared queue, and forgets a dead holder', async () => {
    const shared = await TrialQueue.open(suite.nc);
    const inboxes = await AffinityQueue.open(suite.nc);
    const holders = await CacheHolders.open(suite.nc, { ttlMs: 1500 });
    const router = new AffinityRouter(shared, inboxes, holders);
    const inboxA = await inboxes.inbox('worker-a');
    const inboxB = await inboxes.inbox('worker-b');
    const sharedConsumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);

    const held = config('held-1');
    await holders.advertise('worker-a', [affinityKeyOf(held)]);
    await holders.advertise('worker-b', [affinityKeyOf(config('x', { backbone: 'inception_v3', imageSize: 299 }))]);
    expect(await holders.holdersOf(affinityKeyOf(held))).toEqual(['worker-a']);

    const r1 = await router.route(task(config('held-2', { learningRate: 0.001 })));
    const r2 = await router.route(task(config('cold-1', { unfreeze: 30 })));
    expect(r1).toMatchObject({ kind: 'inbox', worker: 'worker-a' });
    expect(r2.kind).toBe('shared');

    const a = await inboxA.next({ expires: 1000 });
    expect(a?.json<TrialTaskV1>().config.trialId).toBe('held-2');
    a?.ack();
    expect(await inboxB.next({ expires: 1000 })).toBeNull();
    const s = await sharedConsumer.next({ expires: 1000 });
    expect(s?.json<TrialTaskV1>().config.trialId).toBe('cold-1');
    s?.ack();

    // A worker that stops refreshing drops out after the TTL: its key's trials go to anyone.
    await waitFor(async () => (await holders.holdersOf(affinityKeyOf(held))).length === 0, 6000);
    expect((await router.route(task(config('held-3')))).kind).toBe('shared');
    const s2 = await sharedConsumer.next({ expires: 1000 });
    expect(s2?.json<TrialTaskV1>().config.trialId).toBe('held-3');
    s2?.ack();

    // An inbox message not yet taken can be withdrawn (the coordinator's fallback and cancel).
    await holders.advertise('worker-a', [affinityKeyOf(held)]);
    const r4 = await router.route(task(config('held-4')));
    expect(r4.kind).toBe('inbox');
    expect(await inboxes.remove(r4.seq)).toBe(true);
    expect(await inboxA.next({ expires: 1000 })).toBeNull();
  });
});
