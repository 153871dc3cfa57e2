import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Coordinator, toGrpcStatus, TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { waitFor } from './helpers/wait-for.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

const spec = (maxParallel = 2) => `
name: coord-test
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0, 4]
learningRates: [0.01, 0.001]
dropouts: [0.2]
maxParallel: ${maxParallel}
fuse: false
`;

describe('coordinator over a real JetStream', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer();
    // Reconnect forever: one test takes the server down for a while.
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('queues at most maxParallel, runs reports to completion, and rebuilds after a restart', async () => {
    const c = await Coordinator.start({ nc, queue: { ackWaitMs: 5000 } });
    const sweep = await c.submitSweep(spec());
    expect(sweep.trialCount).toBe(4);
    expect(c.counts(sweep.sweepId)).toMatchObject({ total: 4, queued: 2, pending: 2 });

    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const msg = (await consumer.next({ expires: 2000 }))!;
    const task = msg.json<TrialTaskV1>();
    expect(task.config.sweepId).toBe(sweep.sweepId);
    const id = task.config.trialId;
    const attempt = msg.info.deliveryCount;
    expect(await c.trialStarted({ trialId: id, attempt, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: 'random init' })).toMatchObject({ action: 'CONTINUE' });
    const epoch = { phase: 'head' as const, epoch: 1, loss: 1, accuracy: 0.5, valLoss: 1.1, valAccuracy: 0.4, seconds: 0.1 };
    expect((await c.reportEpoch({ trialId: id, attempt, metrics: epoch })).action).toBe('CONTINUE');
    // The same epoch again (a retried report) does not duplicate history.
    await c.reportEpoch({ trialId: id, attempt, metrics: epoch });
    expect(c.getTrial(id).history).toHaveLength(1);
    // A stale attempt is refused.
    expect((await c.reportEpoch({ trialId: id, attempt: attempt - 1, metrics: epoch })).action).toBe('STOP');

    // Restart: a fresh coordinator on the same JetStream sees the same state.
    const c2 = await Coordinator.start({ nc });
    expect(c2.getTrial(id).status).toBe('running');
    expect(c2.getTrial(id).history).toHaveLength(1);
    const fin = await c2.trialFinished({ trialId: id, attempt, valAccuracy: 0.6, valLoss: 0.9, testAccuracy: 0.55, testLoss: 1, epochs: 1, seconds: 0.2, stopped: false, totalParams: 10, trainableParams: 5, cutLayer: 'x' });
    expect(fin.accepted).toBe(true);
    msg.ack();
    // A finished trial frees a slot: the next pending trial is queued.
    expect(c2.counts(sweep.sweepId)).toMatchObject({ completed: 1, queued: 2, pending: 1 });
    // Reporting it again (a retry whose first answer was lost) is acknowledged and changes nothing.
    expect(await c2.trialFinished({ trialId: id, attempt, valAccuracy: 0.1, valLoss: 9, testAccuracy: 0.1, testLoss: 9, epochs: 1, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: '' })).toMatchObject({ accepted: true, reason: 'already recorded' });
    // Another attempt's result for a finished trial is refused.
    expect((await c2.trialFinished({ trialId: id, attempt: attempt + 1, valAccuracy: 0.1, valLoss: 9, testAccuracy: 0.1, testLoss: 9, epochs: 1, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: '' })).accepted).toBe(false);
    expect(c2.getTrial(id).valAccuracy).toBe(0.6);

    // Fail the rest without retry; the sweep completes with the failures counted.
    for (;;) {
      const m = await consumer.next({ expires: 1000 });
      if (!m) break;
      const t = m.json<TrialTaskV1>().config;
      await c2.trialStarted({ trialId: t.trialId, attempt: m.info.deliveryCount, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' });
      await c2.trialFailed({ trialId: t.trialId, attempt: m.info.deliveryCount, error: 'boom', code: 'TEST', retrying: false });
      m.term();
    }
    expect(c2.counts(sweep.sweepId)).toMatchObject({ completed: 1, failed: 3 });
    expect(c2.getSweep(sweep.sweepId)).toMatchObject({ status: 'completed', reason: '3 of 4 trials failed' });
    const lb = c2.query({ sweepId: sweep.sweepId });
    expect(lb.rows[0].config.trialId).toBe(id);
  });

  it('cancel removes queued trials from the stream and stops running ones', async () => {
    const c = await Coordinator.start({ nc });
    const sweep = await c.submitSweep(spec(3));
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const m = (await consumer.next({ expires: 2000 }))!;
    const t = m.json<TrialTaskV1>().config;
    await c.trialStarted({ trialId: t.trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.cancelSweep(sweep.sweepId);
    expect(c.counts(sweep.sweepId)).toMatchObject({ running: 1, cancelled: 3 });
    const epoch = { phase: 'head' as const, epoch: 1, loss: 1, accuracy: 0.5, valLoss: 1, valAccuracy: 0.5, seconds: 0.1 };
    expect(await c.reportEpoch({ trialId: t.trialId, attempt: 1, metrics: epoch })).toMatchObject({ action: 'STOP', reason: 'sweep is cancelled' });
    await c.trialFinished({ trialId: t.trialId, attempt: 1, valAccuracy: 0.5, valLoss: 1, testAccuracy: 0.5, testLoss: 1, epochs: 1, seconds: 1, stopped: true, totalParams: 1, trainableParams: 1, cutLayer: '' });
    m.ack();
    expect(c.getSweep(sweep.sweepId).finishedAtMs).toBeGreaterThan(0);
    expect(c.getSweep(sweep.sweepId).status).toBe('cancelled');
    // Nothing of this sweep is left in the queue.
    expect(await consumer.next({ expires: 1000 })).toBeNull();
  });

  it('a cancelled sweep still finishes when its running trial comes back to the queue instead of reporting', async () => {
    const c = await Coordinator.start({ nc });
    const sweep = await c.submitSweep(spec(1));
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const m = (await consumer.next({ expires: 2000 }))!;
    const t = m.json<TrialTaskV1>().config;
    await c.trialStarted({ trialId: t.trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.cancelSweep(sweep.sweepId);
    // The worker is drained mid-trial and hands it back rather than finishing it.
    await c.trialFailed({ trialId: t.trialId, attempt: 1, error: 'draining', code: 'DRAINING', retrying: true });
    m.nak();
    expect(c.getTrial(t.trialId).status).toBe('cancelled');
    expect(c.getSweep(sweep.sweepId).finishedAtMs).toBeGreaterThan(0);
    // The redelivered message is told to STOP and changes nothing.
    const again = (await consumer.next({ expires: 2000 }))!;
    expect((await c.trialStarted({ trialId: t.trialId, attempt: again.info.deliveryCount, worker: 'w2', backend: 'cpu', pretrained: false, weightsSource: '' })).action).toBe('STOP');
    again.ack();
    expect(c.counts(sweep.sweepId)).toMatchObject({ cancelled: 4 });
  });

  // Last in this file: it takes the shared nats-server down for a while.
  it('a report that cannot be stored is refused as UNAVAILABLE and leaves no trace; the retry after the outage lands once', async () => {
    const c = await Coordinator.start({ nc });
    const sweep = await c.submitSweep(spec(1));
    const [t] = c.trialsOf(sweep.sweepId);
    await c.trialStarted({ trialId: t.config.trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    const epoch = { phase: 'head' as const, epoch: 1, loss: 1, accuracy: 0.5, valLoss: 1, valAccuracy: 0.5, seconds: 0.1 };
    await nats.down();
    const err = await c.reportEpoch({ trialId: t.config.trialId, attempt: 1, metrics: epoch }).catch((e: unknown) => e);
    expect(toGrpcStatus(err).code).toBe(grpcStatus.UNAVAILABLE);
    // Memory was rolled back: it never runs ahead of KV.
    expect(c.getTrial(t.config.trialId).history).toHaveLength(0);
    await nats.up();
    // The worker's retry lands (the client reconnects on its own).
    const d = await waitFor(() => c.reportEpoch({ trialId: t.config.trialId, attempt: 1, metrics: epoch }).catch(() => null), 20_000, 'report after outage');
    expect(d.action).toBe('CONTINUE');
    const rebuilt = await Coordinator.start({ nc });
    expect(rebuilt.getTrial(t.config.trialId).history).toHaveLength(1);
    c.close();
    rebuilt.close();
  }, 60_000);
});
