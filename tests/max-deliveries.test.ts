import { describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { useNatsServer } from './helpers/nats-suite.js';
import { waitFor } from './helpers/wait-for.js';

/**
 * Workers that take a trial and die without a word, every time: after the
 * last delivery JetStream keeps the message and emits a MAX_DELIVERIES
 * advisory. The coordinator must fail the trial, drop the message and let
 * the sweep finish.
 */
describe('deliveries run out', () => {
  const suite = useNatsServer();

  it('marks the trial failed, removes its message, and the sweep finishes', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 2 } });
    const sweep = await c.submitSweep('name: md\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]');
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    for (let delivery = 1; delivery <= 2; delivery++) {
      // A worker takes it, says it started, then vanishes (no ack, no report).
      const m = await waitFor(() => consumer.next({ expires: 1000 }), 10_000, `delivery ${delivery}`);
      expect(m.info.deliveryCount).toBe(delivery);
      await c.trialStarted({ trialId: m.json<TrialTaskV1>().config.trialId, attempt: delivery, worker: `w${delivery}`, backend: 'cpu', pretrained: false, weightsSource: '' });
    }
    const [trial] = c.trialsOf(sweep.sweepId);
    // Live workers keep pulling; the server notices the exhausted message when it next tries to deliver.
    await waitFor(async () => (await consumer.next({ expires: 1000 })) === null && c.getTrial(trial.config.trialId).status === 'failed', 10_000, 'trial failed by advisory');
    expect(c.getTrial(trial.config.trialId).error).toMatch(/^MAX_DELIVERIES: gave up after 2 deliveries/);
    await waitFor(() => c.getSweep(sweep.sweepId).finishedAtMs > 0, 5000, 'sweep finished');
    expect(c.getSweep(sweep.sweepId).status).toBe('failed');
    // The message JetStream would otherwise keep in the WorkQueue stream is gone.
    const jsm = await jetstreamManager(suite.nc);
    await waitFor(async () => (await jsm.streams.info(TRIAL_STREAM)).state.messages === 0, 5000, 'message removed');
    c.close();
  });
});
