import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type TrialRecord, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { EPOCH_STREAM, TRIALS_BUCKET } from '../services/coordinator/src/queue/names.js';
import { trialKey } from '../services/coordinator/src/store/state-store.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

const spec = `
name: epoch-log
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [4]
learningRates: [0.01]
dropouts: [0.2]
headEpochs: 3
fineTuneEpochs: 3
fuse: false
`;

const epoch = (n: number, valLoss: number) => ({ phase: 'head' as const, epoch: n, loss: valLoss, accuracy: 0.5, valLoss, valAccuracy: 1 - valLoss / 2, seconds: 0.5 });

describe('epoch log: an epoch report appends, a restart lays the log over the KV record', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const stored = async (t: TrialRecord) => {
    const kv = await new Kvm(jetstream(nc)).open(TRIALS_BUCKET);
    return (await kv.get(trialKey(t.config.sweepId, t.config.trialId)))!.json<TrialRecord>();
  };
  const logged = async () => (await (await jetstreamManager(nc)).streams.info(EPOCH_STREAM)).state.messages;

  it('keeps every epoch of the owning attempt across restarts, ignores a stale attempt, purges on the final record', async () => {
    const c = await Coordinator.start({ nc });
    const sweep = await c.submitSweep(spec);
    const msg = (await (await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER)).next({ expires: 2000 }))!;
    const id = msg.json<TrialTaskV1>().config.trialId;
    const started = { trialId: id, worker: 'w1', backend: 'cpu', pretrained: false, weightsSource: '' };
    expect((await c.trialStarted({ ...started, attempt: 1 })).action).toBe('CONTINUE');
    for (let e = 1; e <= 3; e++) expect((await c.reportEpoch({ trialId: id, attempt: 1, metrics: epoch(e, 1 - e / 10) })).action).toBe('CONTINUE');

    // The KV record was not rewritten per epoch: it is still the one TrialStarted stored.
    const t = c.getTrial(id);
    expect((await stored(t)).history).toHaveLength(0);
    expect(await logged()).toBe(3);

    // A restarted coordinator sees all three epochs, with the fields ReportEpoch derives from them.
    const c2 = await Coordinator.start({ nc });
    expect(c2.getTrial(id)).toMatchObject({ status: 'running', attempt: 1, epochs: 3, valLoss: 0.7, seconds: 1.5 });
    expect(c2.getTrial(id).history.map((h) => h.epoch)).toEqual([1, 2, 3]);

    // Attempt 2 resumes from a checkpoint of epoch 2: epoch 3 of attempt 1 is dropped and stays dropped after a restart.
    expect((await c2.trialStarted({ ...started, attempt: 2, resumedEpochs: 2 })).action).toBe('CONTINUE');
    expect(c2.getTrial(id).history.map((h) => h.epoch)).toEqual([1, 2]);
    expect((await c2.reportEpoch({ trialId: id, attempt: 2, metrics: epoch(3, 0.5) })).action).toBe('CONTINUE');
    expect((await c2.reportEpoch({ trialId: id, attempt: 2, metrics: epoch(4, 0.4) })).action).toBe('CONTINUE');
    const c3 = await Coordinator.start({ nc });
    expect(c3.getTrial(id)).toMatchObject({ attempt: 2, epochs: 4, valLoss: 0.4 });
    expect(c3.getTrial(id).history.map((h) => [h.epoch, h.valLoss])).toEqual([[1, 0.9], [2, 0.8], [3, 0.5], [4, 0.4]]);

    // The final record holds the whole history; the trial's log entries go.
    const fin = await c3.trialFinished({ trialId: id, attempt: 2, valAccuracy: 0.8, valLoss: 0.4, testAccuracy: 0.7, testLoss: 0.5, epochs: 4, seconds: 2, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x' });
    expect(fin.accepted).toBe(true);
    msg.ack();
    expect((await stored(t)).history.map((h) => h.epoch)).toEqual([1, 2, 3, 4]);
    for (let i = 0; i < 50 && (await logged()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await logged()).toBe(0);
    const c4 = await Coordinator.start({ nc });
    expect(c4.getTrial(id)).toMatchObject({ status: 'completed', epochs: 4 });
    expect(c4.getTrial(id).history).toHaveLength(4);
    for (const x of [c, c2, c3, c4]) x.close();
    expect(sweep.trialCount).toBe(1);
  });

  it('an early-stopping STOP is logged with its epoch: a retried report to a restarted coordinator gets the same answer', async () => {
    const c = await Coordinator.start({ nc });
    const sweep = await c.submitSweep(`${spec.replace('name: epoch-log', 'name: epoch-log-asha').replace('learningRates: [0.01]', 'learningRates: [0.01, 0.02, 0.03, 0.04]')}maxParallel: 4\nscheduler: { kind: median, metric: val_loss, gracePeriod: 1, minSamples: 2 }\n`);
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      // Not acked: a running trial whose message is gone would be re-queued by the restarted coordinator.
      const m = (await consumer.next({ expires: 2000 }))!;
      ids.push(m.json<TrialTaskV1>().config.trialId);
    }
    for (const id of ids) await c.trialStarted({ trialId: id, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    // Three good trials, then a bad one: the median rule stops it.
    for (const id of ids.slice(0, 3)) for (const e of [1, 2]) await c.reportEpoch({ trialId: id, attempt: 1, metrics: epoch(e, 0.2) });
    const d = await c.reportEpoch({ trialId: ids[3], attempt: 1, metrics: epoch(1, 1.9) });
    expect(d.action).toBe('STOP');
    const stop = c.getTrial(ids[3]).earlyStop;
    expect(stop).toMatchObject({ epoch: 1, reason: d.reason });
    const c2 = await Coordinator.start({ nc });
    expect(c2.getTrial(ids[3]).earlyStop).toEqual(stop);
    expect(await c2.reportEpoch({ trialId: ids[3], attempt: 1, metrics: epoch(1, 1.9) })).toMatchObject({ action: 'STOP', reason: d.reason });
    c.close();
    c2.close();
    expect(sweep.trialCount).toBe(4);
  });
});
