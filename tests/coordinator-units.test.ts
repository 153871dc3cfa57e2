import { describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type UnitTask } from '../services/coordinator/src/index.js';
import { useNatsServer } from './helpers/nats-suite.js';
import { waitFor } from './helpers/wait-for.js';
import { nextOfSweep } from './helpers/sweep-messages.js';

// 3 depths × 3 learning rates: three units of 3 fusable trials; maxParallel 6 (trials) lets two units go at a time.
const SPEC = `
name: units
dataset: { kind: synthetic }
backbones: [tiny_cnn]
unfreeze: [0, 6, 13]
learningRates: [0.1, 0.01, 0.001]
dropouts: [0.2]
maxParallel: 6
`;
const started = (c: Coordinator, trialId: string, attempt: number) => c.trialStarted({ trialId, attempt, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
const finished = (c: Coordinator, trialId: string, attempt: number) => c.trialFinished({ trialId, attempt, valAccuracy: 0.5, valLoss: 1, testAccuracy: 0.5, testLoss: 1, epochs: 1, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: '' });

describe('coordinator: work units on the queue', () => {
  const suite = useNatsServer();

  it('queues units (maxParallel counts trials); a redelivered unit skips its finished trials and reruns the others; a restart keeps units', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 5000 } });
    const sweep = await c.submitSweep(SPEC);
    expect(c.counts(sweep.sweepId)).toMatchObject({ queued: 6, pending: 3 });
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const m1 = (await consumer.next({ expires: 2000 }))!;
    const unit = m1.json<UnitTask>();
    expect(unit.v).toBe(2);
    expect(unit.configs.map((x) => x.learningRate)).toEqual([0.1, 0.01, 0.001]);
    const [a, b, d] = unit.configs.map((x) => x.trialId);
    for (const id of [a, b, d]) expect(c.getTrial(id)).toMatchObject({ unitId: unit.unitId, queueSeq: m1.seq });
    for (const id of [a, b, d]) expect((await started(c, id, 1)).action).toBe('CONTINUE');
    expect((await finished(c, a, 1)).accepted).toBe(true);
    await c.trialFailed({ trialId: b, attempt: 1, error: 'oom', code: 'TEST', retrying: true });
    await c.trialFailed({ trialId: d, attempt: 1, error: 'oom', code: 'TEST', retrying: true });
    m1.nak();

    // The redelivery may come after the other queued unit's first delivery: that one is handed back.
    let m2 = (await consumer.next({ expires: 5000 }))!;
    while (m2.seq !== m1.seq) {
      m2.nak();
      m2 = (await consumer.next({ expires: 5000 }))!;
    }
    expect(m2.seq).toBe(m1.seq);
    expect(m2.info.deliveryCount).toBe(2);
    expect(await started(c, a, 2)).toMatchObject({ action: 'STOP', reason: 'trial is already completed' });
    expect((await started(c, b, 2)).action).toBe('CONTINUE');
    expect((await started(c, d, 2)).action).toBe('CONTINUE');
    // A restarted coordinator rebuilds the units and their sequence from KV.
    const c2 = await Coordinator.start({ nc: suite.nc });
    expect(c2.getTrial(b)).toMatchObject({ unitId: unit.unitId, queueSeq: m1.seq, attempt: 2, status: 'running' });
    await finished(c2, b, 2);
    await finished(c2, d, 2);
    m2.ack();
    // The unit's 3 trials are done: the third unit goes.
    await waitFor(() => c2.counts(sweep.sweepId).queued === 6, 5000, 'third unit queued');
    const m3 = (await consumer.next({ expires: 2000 }))!;
    expect(m3.json<UnitTask>().configs).toHaveLength(3);
    await c2.cancelSweep(sweep.sweepId);
    expect(c2.counts(sweep.sweepId)).toMatchObject({ completed: 3, cancelled: 6 });
    m3.ack();
    // Cancel took the waiting unit off the stream.
    expect(await consumer.next({ expires: 1000 })).toBeNull();
    c.close();
    c2.close();
  });

  it('MAX_DELIVERIES fails every unfinished trial of the unit', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 1000, maxDeliver: 2 } });
    const sweep = await c.submitSweep(SPEC.replace('unfreeze: [0, 6, 13]', 'unfreeze: [0]'));
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const m = (await nextOfSweep(consumer, sweep.sweepId, 2000))!;
    const [first, ...rest] = m.json<UnitTask>().configs.map((x) => x.trialId);
    await started(c, first, 1);
    await finished(c, first, 1);
    // The worker dies with the rest in hand, twice.
    await waitFor(async () => (await nextOfSweep(consumer, sweep.sweepId))?.info.deliveryCount === 2, 30_000, 'redelivery');
    // The next delivery is past the cap: each unfinished trial's TrialStarted ends it, and the worker acks.
    const m3 = await waitFor(() => nextOfSweep(consumer, sweep.sweepId), 30_000, 'delivery 3');
    // 3, or later when this loaded machine let an ack wait (1 s) pass between two polls.
    expect(m3.info.deliveryCount).toBeGreaterThanOrEqual(3);
    for (const id of [first, ...rest]) expect((await c.trialStarted({ trialId: id, attempt: m3.info.deliveryCount, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' })).action).toBe('STOP');
    m3.ack();
    expect(rest.every((id) => c.getTrial(id).status === 'failed')).toBe(true);
    expect(c.getTrial(first).status).toBe('completed');
    expect(c.getTrial(rest[0]).error).toMatch(/^MAX_DELIVERIES/);
    await waitFor(() => c.getSweep(sweep.sweepId).finishedAtMs > 0, 5000, 'sweep finished');
    c.close();
  });
});
