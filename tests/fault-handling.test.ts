import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { ObjectCheckpointStore } from '../services/worker/src/runner/object-checkpoint-store.js';
import type { TrialCheckpoint } from '../services/worker/src/engine/checkpoint/trial-checkpoint.js';
import { checkDivergence } from '../services/worker/src/runner/divergence.js';
import { isOutOfMemory, toTrialError, TrialError } from '../services/worker/src/errors.js';
import { InvalidArgumentError, parseSweepSpec } from '../services/coordinator/src/index.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './helpers/wait-for.js';

/**
 * The coordinator's side of failures, against a real nats-server: a resumed
 * attempt keeps its checkpointed epochs, diverged trials, maxFailedTrials,
 * MSG_TERMINATED advisories, trial messages lost while the coordinator was
 * down, and checkpoint deletion once a trial is terminal.
 */
// fuse: false: this test plays the worker and reads one trial per message.
const SPEC = (extra = 'maxParallel: 4') => `name: faults\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01, 0.02, 0.03, 0.04]\ndropouts: [0.1]\nheadEpochs: 4\nfuse: false\n${extra}`;
const epoch = (n: number, loss = 1) => ({ phase: 'head' as const, epoch: n, loss, accuracy: 0.5, valLoss: loss, valAccuracy: 0.5 + n / 100, seconds: 0.1 });

describe('fault handling', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let checkpoints: ObjectCheckpointStore;
  const coordinators: Coordinator[] = [];
  const start = async (ackWaitMs = 30_000, maxDeliver = 3) => {
    const c = await Coordinator.start({ nc, queue: { ackWaitMs, maxDeliver }, checkpoints });
    coordinators.push(c);
    return c;
  };
  const next = async (): Promise<JsMsg> => {
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    return waitFor(() => consumer.next({ expires: 1000 }), 10_000, 'a trial message');
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    checkpoints = await ObjectCheckpointStore.open(nc);
  });
  // Each test leaves no queued trial behind for the next one: cancel its sweeps (their messages leave the stream).
  afterEach(async () => {
    const c = await Coordinator.start({ nc, queue: { ackWaitMs: 30_000, maxDeliver: 3 } });
    for (const s of c.listSweeps()) if (s.status === 'running') await c.cancelSweep(s.sweepId);
    c.close();
    await (await jetstreamManager(nc)).streams.purge(TRIAL_STREAM);
  });
  afterAll(async () => {
    for (const c of coordinators) c.close();
    await nc?.close();
    await nats?.stop();
  });

  it('a resumed attempt keeps the epochs its checkpoint holds, records resumed and retrained epochs, and shows each epoch once', async () => {
    const c = await start(1000, 5);
    const sweep = await c.submitSweep(SPEC());
    const m1 = await next();
    const { trialId } = m1.json<TrialTaskV1>().config;
    await c.trialStarted({ trialId, attempt: 1, worker: 'a', backend: 'cpu', pretrained: false, weightsSource: '' });
    for (const n of [1, 2, 3]) await c.reportEpoch({ trialId, attempt: 1, metrics: epoch(n) });
    // Worker a dies after saving the checkpoint of epoch 2 (epoch 3 was reported, not saved). Lease lapses, attempt 2 resumes.
    const m2 = await waitFor(async () => {
      const m = await next();
      if (m.json<TrialTaskV1>().config.trialId === trialId) return m;
      m.nak(0);
      return null;
    }, 15_000, 'redelivery');
    expect(m2.info.deliveryCount).toBe(2);
    const d = await c.trialStarted({ trialId, attempt: 2, worker: 'b', backend: 'cpu', pretrained: false, weightsSource: '', resumedEpochs: 2 });
    expect(d.action).toBe('CONTINUE');
    let t = c.getTrial(trialId);
    expect(t.history.map((e) => e.epoch)).toEqual([1, 2]);
    expect([t.resumedEpochs, t.retrainedEpochs]).toEqual([2, 1]);
    // A stale report of attempt 1 is refused; attempt 2 reports epochs 3 and 4 (3 again) and finishes.
    expect((await c.reportEpoch({ trialId, attempt: 1, metrics: epoch(4) })).action).toBe('STOP');
    for (const n of [3, 4]) await c.reportEpoch({ trialId, attempt: 2, metrics: epoch(n, 0.9) });
    const fin = await c.trialFinished({ trialId, attempt: 2, valAccuracy: 0.9, valLoss: 0.5, testAccuracy: 0.8, testLoss: 0.6, epochs: 4, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x', skippedImages: 3 });
    expect(fin.accepted).toBe(true);
    m2.ack();
    t = c.getTrial(trialId);
    expect(t.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    expect(t.history[2].loss).toBe(0.9);
    expect(t.skippedImages).toBe(3);
    expect(t.status).toBe('completed');
    expect(c.trialsOf(sweep.sweepId)).toHaveLength(4);
    c.close();
  });

  it('deletes a trial’s checkpoint once it is terminal; a diverged trial is terminal and never retried', async () => {
    const c = await start();
    const sweep = await c.submitSweep(SPEC());
    const m = await next();
    const { trialId } = m.json<TrialTaskV1>().config;
    const cp = { v: 1, fingerprint: 'x', phase: 'head', epochsDone: 1, progress: { epochsDone: 1, ended: false, earlyStopping: null }, history: [], earlyStops: [], rngState: 1, dropoutCalls: 0, learningRate: 0.1, weights: [['w', { shape: [2], dtype: 'float32', values: new Float32Array([1, 2]) }]], optimizer: { weights: [], slotOrder: null } } satisfies TrialCheckpoint;
    await checkpoints.save(trialId, cp);
    expect(await checkpoints.load(trialId)).toEqual(cp);
    await c.trialStarted({ trialId, attempt: 1, worker: 'a', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.reportEpoch({ trialId, attempt: 1, metrics: epoch(1, Number.NaN) });
    await c.trialFailed({ trialId, attempt: 1, error: 'training loss became NaN at epoch 1', code: 'DIVERGED', retrying: false, diverged: true });
    m.term();
    expect(c.getTrial(trialId).status).toBe('diverged');
    expect(c.counts(sweep.sweepId).diverged).toBe(1);
    expect(c.query({ sweepId: sweep.sweepId, status: 'diverged' }).rows.map((r) => r.config.trialId)).toEqual([trialId]);
    await waitFor(async () => !(await checkpoints.names()).includes(trialId), 5000, 'checkpoint deleted');
    c.close();
  });

  it('idle() waits for checkpoint writes still in flight (what a worker handing its trial back waits for)', async () => {
    await checkpoints.idle(1000); // nothing in flight: returns at once
    // 8 MB of weights: many Object Store chunks, so the write is still going when idle() is called.
    const values = Float32Array.from({ length: 2 * 1024 * 1024 }, (_, i) => i % 977);
    const cp = { v: 1, fingerprint: 'idle', phase: 'head', epochsDone: 3, progress: { epochsDone: 3, ended: false, earlyStopping: null }, history: [], earlyStops: [], rngState: 1, dropoutCalls: 0, learningRate: 0.1, weights: [['w', { shape: [values.length], dtype: 'float32', values }]], optimizer: { weights: [], slotOrder: null } } satisfies TrialCheckpoint;
    const write = checkpoints.save('idle-trial', cp);
    await checkpoints.idle(30_000);
    // Read right after idle(), before our own await of the write: it is stored already.
    expect((await checkpoints.load('idle-trial'))?.epochsDone).toBe(3);
    await write;
    await checkpoints.delete('idle-trial');
  });

  it('maxFailedTrials fails the sweep with a clear reason and cancels the rest', async () => {
    expect(() => parseSweepSpec(SPEC('maxFailedTrials: -1'))).toThrow(/maxFailedTrials/);
    const c = await start();
    const sweep = await c.submitSweep(SPEC('maxFailedTrials: 1\nmaxParallel: 2'));
    for (let i = 0; i < 2; i++) {
      const m = await next();
      const { trialId } = m.json<TrialTaskV1>().config;
      await c.trialStarted({ trialId, attempt: 1, worker: 'a', backend: 'cpu', pretrained: false, weightsSource: '' });
      await c.trialFailed({ trialId, attempt: 1, error: 'boom', code: i === 0 ? 'DATASET' : 'DIVERGED', retrying: false, diverged: i === 1 });
      m.term();
    }
    await waitFor(() => c.getSweep(sweep.sweepId).finishedAtMs > 0, 5000, 'sweep finished');
    const s = c.getSweep(sweep.sweepId);
    expect(s.status).toBe('failed');
    expect(s.reason).toMatch(/^maxFailedTrials exceeded: 2 trials failed or diverged \(limit 1\); first: .* failed: DATASET: boom/);
    expect(c.counts(sweep.sweepId)).toMatchObject({ failed: 1, diverged: 1, cancelled: 2 });
    c.close();
  });

  it('a trial whose report was lost is failed by the MSG_TERMINATED advisory', async () => {
    const c = await start();
    await c.submitSweep(SPEC());
    const m = await next();
    const { trialId } = m.json<TrialTaskV1>().config;
    await c.trialStarted({ trialId, attempt: 1, worker: 'a', backend: 'cpu', pretrained: false, weightsSource: '' });
    m.term(); // no TrialFailed report reached the coordinator
    await waitFor(() => c.getTrial(trialId).status === 'failed', 5000, 'failed by advisory');
    expect(c.getTrial(trialId).error).toMatch(/^TERMINATED by the worker after 1 deliveries/);
    c.close();
  });

  it('on restart, a queued or running trial whose message is gone is queued again (or failed once its deliveries are spent)', async () => {
    let c = await start(30_000, 2);
    const sweep = await c.submitSweep(SPEC('maxParallel: 2'));
    const m = await next();
    const { trialId } = m.json<TrialTaskV1>().config;
    await c.trialStarted({ trialId, attempt: 1, worker: 'a', backend: 'cpu', pretrained: false, weightsSource: '' });
    const spent = c.trialsOf(sweep.sweepId).find((t) => t.status === 'queued')!;
    c.close();
    // While the coordinator is down both messages disappear (an advisory nobody heard, a wiped stream ...).
    const jsm = await jetstreamManager(nc);
    await jsm.streams.deleteMessage(TRIAL_STREAM, c.getTrial(trialId).queueSeq, false);
    await jsm.streams.deleteMessage(TRIAL_STREAM, spent.queueSeq, false);
    // Pretend the other trial had used its last delivery, as its KV record would say.
    await (c as unknown as { store: { putTrial(t: unknown): Promise<void> } }).store.putTrial({ ...spent, attempt: 2, status: 'running' });
    c = await start(30_000, 2);
    expect(c.getTrial(spent.config.trialId).status).toBe('failed');
    expect(c.getTrial(spent.config.trialId).error).toMatch(/^LOST: its queue message disappeared after 2 deliveries/);
    // The other one is back in the queue under a new message id and runs as attempt 1 of that message.
    const again = await waitFor(async () => {
      const x = await next();
      if (x.json<TrialTaskV1>().config.trialId === trialId) return x;
      x.nak(0);
      return null;
    }, 10_000, 'requeued trial');
    expect(c.getTrial(trialId).status).toBe('queued');
    expect((await c.trialStarted({ trialId, attempt: again.info.deliveryCount, worker: 'b', backend: 'cpu', pretrained: false, weightsSource: '' })).action).toBe('CONTINUE');
    c.close();
  });

  it('refuses a folder dataset with a class of zero images before any trial runs, naming the class', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tlsweep-empty-class-'));
    try {
      for (const cls of ['cats', 'dogs', 'owls']) mkdirSync(join(root, cls));
      writeFileSync(join(root, 'cats', 'a.png'), 'not decoded here');
      mkdirSync(join(root, 'dogs', 'sub'));
      writeFileSync(join(root, 'dogs', 'sub', 'b.JPG'), 'x');
      writeFileSync(join(root, 'owls', 'notes.txt'), 'no image');
      const c = await start();
      const spec = SPEC().replace('dataset: {kind: synthetic}', `dataset: {kind: folder, path: ${root}}`);
      const err = await c.submitSweep(spec).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).violations).toEqual([{ field: 'dataset.path', message: expect.stringMatching(/^class 'owls' of .* has no \.png\/\.jpg\/\.jpeg images/) }]);
      expect(c.listSweeps().some((s) => s.spec.datasets[0].kind === 'folder')).toBe(false);
      writeFileSync(join(root, 'owls', 'c.jpeg'), 'x');
      expect((await c.submitSweep(spec)).status).toBe('running');
      c.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses an epoch beyond the planned ones, and a second worker claiming an attempt another holds', async () => {
    const c = await start();
    const sweep = await c.submitSweep(SPEC('maxParallel: 1'));
    const m = await next();
    const trialId = m.json<TrialTaskV1>().config.trialId;
    const started = (worker: string) => c.trialStarted({ trialId, attempt: 1, worker, backend: 'cpu', pretrained: false, weightsSource: '' });
    const first = await started('w1');
    expect(first.action).toBe('CONTINUE');
    // The same worker retrying its TrialStarted keeps the attempt; another worker does not get it (nor its lease).
    expect((await started('w1')).action).toBe('CONTINUE');
    const other = await started('w2');
    expect(other).toMatchObject({ action: 'STOP', reason: expect.stringContaining("held by worker 'w1'") });
    expect(other.leaseToken ?? '').toBe('');
    expect(c.getTrial(trialId).worker).toBe('w1');
    // headEpochs: 4, no fine-tune: epoch 5 cannot exist.
    await c.reportEpoch({ trialId, attempt: 1, metrics: epoch(4) });
    const err = await c.reportEpoch({ trialId, attempt: 1, metrics: epoch(5) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).message).toMatch(/metrics\.epoch: must be at most 4/);
    expect(c.getTrial(trialId).history.map((e) => e.epoch)).toEqual([4]);
    m.ack();
    await c.cancelSweep(sweep.sweepId);
  });

  it('divergence and out-of-memory are classified for the worker', () => {
    const e = (n: number, loss: number) => ({ ...epoch(n, loss), learningRate: 1 });
    expect(() => checkDivergence(e(1, 1.2), e(1, 1.2))).not.toThrow();
    expect(() => checkDivergence(e(2, Number.NaN), e(1, 1.2))).toThrow(/DIVERGED|NaN/);
    expect(() => checkDivergence(e(3, 5000), e(1, 1.2), { saturatedLoss: Infinity })).toThrow(/exploded/);
    expect(() => checkDivergence(e(3, 50), e(1, 0.01), { saturatedLoss: Infinity })).not.toThrow();
    // tfjs clips probabilities: a blown-up softmax head sits near -ln(1e-7) x share wrong, never NaN.
    expect(() => checkDivergence(e(2, 10.7), e(1, 3.2))).toThrow(/saturated/);
    expect(() => checkDivergence(e(1, 6.9), e(1, 6.9))).not.toThrow();
    try {
      checkDivergence(e(2, Number.POSITIVE_INFINITY), e(1, 1));
    } catch (err) {
      expect(err).toBeInstanceOf(TrialError);
      expect((err as TrialError).code).toBe('DIVERGED');
      expect((err as TrialError).retryable).toBe(false);
    }
    for (const msg of ['RuntimeError: memory access out of bounds', 'Aborted(OOM)', 'Out of memory', 'RangeError: Array buffer allocation failed']) {
      expect(isOutOfMemory(msg), msg).toBe(true);
      expect(toTrialError(new Error(msg)).code).toBe('OUT_OF_MEMORY');
    }
    expect(toTrialError(new Error('shape mismatch')).code).toBe('TRAINING');
  });
});
