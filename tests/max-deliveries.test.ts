import { describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { useNatsServer } from './helpers/nats-suite.js';
import { waitFor } from './helpers/wait-for.js';
import { nextOfSweep } from './helpers/sweep-messages.js';

/**
 * Workers that take a trial and die without a word, every time. The
 * coordinator caps attempts itself (the consumer redelivers without limit),
 * so this works even when the coordinator was down while the deliveries
 * ran out; a consumer that still has JetStream's own limit (created by an
 * operator or an older version) is handled through the MAX_DELIVERIES
 * advisory. Either way the trial fails with its last error, its message
 * leaves the stream and the sweep finishes.
 */
const spec = 'name: md\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]';

// A server of its own per test: a coordinator that starts rebuilds the sweeps an earlier test left
// behind in a shared server, and their messages would mix into this test's delivery counts.
describe('deliveries run out', () => {
  const suite = useNatsServer();

  it('fails the trial at the first delivery past the cap, even when the coordinator was down meanwhile', async () => {
    let c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 2 } });
    const jsm = await jetstreamManager(suite.nc);
    expect((await jsm.consumers.info(TRIAL_STREAM, WORKER_CONSUMER)).config.max_deliver).toBe(-1);
    const sweep = await c.submitSweep(spec);
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const [trial] = c.trialsOf(sweep.sweepId);
    const trialId = trial.config.trialId;
    // Delivery 1: the worker reports a retryable error, then its pod dies before it can nak.
    const m1 = await waitFor(() => nextOfSweep(consumer, sweep.sweepId), 10_000, 'delivery 1');
    await c.trialStarted({ trialId, attempt: 1, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.trialFailed({ trialId, attempt: 1, error: 'socket hang up', code: 'INTERNAL', retrying: true });
    expect(m1.info.deliveryCount).toBe(1);
    // Delivery 2 (the last allowed) starts, and the coordinator goes down; that worker vanishes too.
    const m2 = await waitFor(() => nextOfSweep(consumer, sweep.sweepId), 10_000, 'delivery 2');
    expect(m2.info.deliveryCount).toBe(2);
    await c.trialStarted({ trialId, attempt: 2, worker: 'w2', backend: 'cpu', pretrained: false, weightsSource: '' });
    c.close();
    // Delivery 3 comes while nobody can hear anything: a worker takes it and waits for the coordinator.
    const m3 = await waitFor(() => nextOfSweep(consumer, sweep.sweepId), 10_000, 'delivery 3');
    expect(m3.info.deliveryCount).toBe(3);
    c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 2 } });
    expect(c.getTrial(trialId).status).toBe('running');
    const d = await c.trialStarted({ trialId, attempt: 3, worker: 'w3', backend: 'cpu', pretrained: false, weightsSource: '' });
    expect(d.action).toBe('STOP');
    m3.ack();
    const t = c.getTrial(trialId);
    expect(t.status).toBe('failed');
    expect(t.error).toBe('MAX_DELIVERIES: gave up after 2 deliveries; last error: INTERNAL: socket hang up');
    await waitFor(() => c.getSweep(sweep.sweepId).finishedAtMs > 0, 5000, 'sweep finished');
    expect(c.getSweep(sweep.sweepId).status).toBe('failed');
    await waitFor(async () => (await jsm.streams.info(TRIAL_STREAM)).state.messages === 0, 5000, 'message removed');
    c.close();
  });

});

describe('deliveries run out: a retryable failure', () => {
  const suite = useNatsServer();

  it('a retryable failure on the last allowed delivery ends the trial with that error', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 1 } });
    const sweep = await c.submitSweep(spec);
    const [trial] = c.trialsOf(sweep.sweepId);
    const trialId = trial.config.trialId;
    await c.trialStarted({ trialId, attempt: 1, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.trialFailed({ trialId, attempt: 1, error: 'drained', code: 'DRAINING', retrying: true });
    // A drain is not the trial's fault: it stays queued for the next delivery, whose start then ends it.
    expect(c.getTrial(trialId).status).toBe('queued');
    expect((await c.trialStarted({ trialId, attempt: 2, worker: 'w2', backend: 'cpu', pretrained: false, weightsSource: '' })).action).toBe('STOP');
    expect(c.getTrial(trialId).error).toBe('MAX_DELIVERIES: gave up after 1 deliveries; last error: DRAINING: drained');
    const sweep2 = await c.submitSweep(spec.replace('name: md', 'name: md2'));
    const id2 = c.trialsOf(sweep2.sweepId)[0].config.trialId;
    await c.trialStarted({ trialId: id2, attempt: 1, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.trialFailed({ trialId: id2, attempt: 1, error: 'out of memory', code: 'OUT_OF_MEMORY', retrying: true });
    expect(c.getTrial(id2)).toMatchObject({ status: 'failed', error: 'MAX_DELIVERIES: gave up after 1 deliveries; last error: OUT_OF_MEMORY: out of memory' });
    c.close();
  });

});

describe('deliveries run out: JetStream\'s own limit', () => {
  const suite = useNatsServer();

  it('a consumer with JetStream\'s own limit: the advisory fails the trial and removes its message', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 2 } });
    await (await jetstreamManager(suite.nc)).consumers.update(TRIAL_STREAM, WORKER_CONSUMER, { max_deliver: 2 });
    const sweep = await c.submitSweep('name: md\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]');
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    for (let delivery = 1; delivery <= 2; delivery++) {
      // A worker takes it, says it started, then vanishes (no ack, no report).
      const m = await waitFor(() => nextOfSweep(consumer, sweep.sweepId), 10_000, `delivery ${delivery}`);
      expect(m.info.deliveryCount).toBe(delivery);
      await c.trialStarted({ trialId: m.json<TrialTaskV1>().config.trialId, attempt: delivery, worker: `w${delivery}`, backend: 'cpu', pretrained: false, weightsSource: '' });
    }
    const [trial] = c.trialsOf(sweep.sweepId);
    // Live workers keep pulling; the server notices the exhausted message when it next tries to deliver.
    await waitFor(async () => (await nextOfSweep(consumer, sweep.sweepId)) === null && c.getTrial(trial.config.trialId).status === 'failed', 10_000, 'trial failed by advisory');
    expect(c.getTrial(trial.config.trialId).error).toMatch(/^MAX_DELIVERIES: gave up after 2 deliveries/);
    await waitFor(() => c.getSweep(sweep.sweepId).finishedAtMs > 0, 5000, 'sweep finished');
    expect(c.getSweep(sweep.sweepId).status).toBe('failed');
    // The message JetStream would otherwise keep in the WorkQueue stream is gone.
    const jsm = await jetstreamManager(suite.nc);
    await waitFor(async () => (await jsm.streams.info(TRIAL_STREAM)).state.messages === 0, 5000, 'message removed');
    c.close();
  });
});
