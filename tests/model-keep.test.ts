/**
 * Which trials keep their model: the coordinator asks only a trial that is
 * now among its sweep's top `keepModels` (by val accuracy) to store it, and
 * deletes stored models that fell out of the top. Real JetStream and Object
 * Store; made-up results.
 */
import { describe, expect, it } from 'vitest';
import { useNatsServer } from './helpers/nats-suite.js';
import { jetstream } from '@nats-io/jetstream';
import { Coordinator, ModelObjects, TRIAL_STREAM, WORKER_CONSUMER, type TrialTask, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { MODELS_BUCKET } from '../services/worker/src/engine/weights/object-layout.js';

const SPEC = `
name: keep-test
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [0.1, 0.01, 0.001, 0.0001]
dropouts: [0.2]
keepModels: 1
maxParallel: 4
fuse: false
`;

// A stand-in model file: one float32 weight [2].
const MODEL_JSON = JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'd/kernel', shape: [2], dtype: 'float32' }] }] });

describe('keeping the top models of a sweep', () => {
  const suite = useNatsServer();

  it('asks only a new leader to store its model and deletes the models that fell out of the top', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 5000 } });
    const objects = await ModelObjects.open(suite.nc, { create: false });
    const sweep = await c.submitSweep(SPEC);
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const msg = (await consumer.next({ expires: 2000 }))!;
      const id = msg.json<TrialTaskV1>().config.trialId;
      expect(msg.json<TrialTaskV1>().config.exportModel).toBe(true);
      await c.trialStarted({ trialId: id, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
      msg.ack();
      ids.push(id);
    }
    const finish = (id: string, valAccuracy: number, hasModel = true) =>
      c.trialFinished({ trialId: id, attempt: 1, valAccuracy, valLoss: 1, testAccuracy: 0.5, testLoss: 1, epochs: 1, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x', hasModel });
    const store = async (id: string, attempt = 1) => {
      async function* data() {
        yield new Uint8Array(8);
      }
      await objects.put(MODELS_BUCKET, { name: id, modelJson: MODEL_JSON, data: data(), tlsweepJson: '{}' });
      return c.modelStored({ trialId: id, attempt, modelRef: id });
    };
    const stored = async () => (await objects.list(MODELS_BUCKET)).map((m) => m.name).sort();

    const [a, b, cc, d] = ids;
    expect(await finish(a, 0.5)).toMatchObject({ accepted: true, keepModel: true });
    expect(await store(a)).toEqual({ accepted: true, reason: '' });
    expect(c.getTrial(a).modelRef).toBe(a);

    // Worse than the leader: not asked.
    expect(await finish(b, 0.4)).toMatchObject({ accepted: true, keepModel: false });
    // Better, but the worker holds no model: not asked either.
    expect((await finish(cc, 0.9, false)).keepModel).toBe(false);

    // d beats a; c is better but has no model, so it does not take the slot: d is asked.
    expect((await finish(d, 0.7)).keepModel).toBe(true);
    // A retried TrialFinished of d (its answer was lost) is accepted again and asks again, the model not being stored yet.
    expect(await finish(d, 0.7)).toMatchObject({ accepted: true, reason: 'already recorded', keepModel: true });

    // A caller cannot name another trial's model (it would delete it).
    await expect(c.modelStored({ trialId: b, attempt: 1, modelRef: a })).rejects.toThrow(/model_ref: must be the trial's own model name/);
    expect(await stored()).toEqual([a]);
    // A model reported by a stale attempt is refused and deleted.
    expect((await store(b, 2)).accepted).toBe(false);
    expect(await stored()).toEqual([a]);

    // d leads the trials that have a model now, so a's model falls out of the top when anyone stores: a late report of a is pruned at once.
    expect(await store(a)).toEqual({ accepted: true, reason: 'no longer among the top keepModels trials; deleted' });
    expect(c.getTrial(a).modelRef).toBe('');
    expect(await stored()).toEqual([]);
    await expect(c.exportModel(a)).rejects.toThrow(/has no stored model/);
    expect(await store(d)).toEqual({ accepted: true, reason: '' });
    expect(await stored()).toEqual([d]);
    expect(c.getSweep(sweep.sweepId).status).toBe('completed');
    c.close();
  });

  it('keeps the top N as new leaders arrive and serves a kept model', async () => {
    const c = await Coordinator.start({ nc: suite.nc, queue: { ackWaitMs: 5000 } });
    const objects = await ModelObjects.open(suite.nc, { create: false });
    await c.submitSweep(SPEC.replace('keepModels: 1', 'keepModels: 2').replace('keep-test', 'keep-two'));
    const consumer = await jetstream(suite.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const msg = (await consumer.next({ expires: 2000 }))!;
      ids.push(msg.json<TrialTaskV1>().config.trialId);
      await c.trialStarted({ trialId: ids[i], attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
      msg.ack();
    }
    const run = async (id: string, valAccuracy: number) => {
      const fin = await c.trialFinished({ trialId: id, attempt: 1, valAccuracy, valLoss: 1, testAccuracy: 0.5, testLoss: 1, epochs: 1, seconds: 1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x', hasModel: true });
      if (!fin.keepModel) return false;
      async function* data() {
        yield new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      }
      await objects.put(MODELS_BUCKET, { name: id, modelJson: MODEL_JSON, data: data(), tlsweepJson: `{"trialId":"${id}"}` });
      await c.modelStored({ trialId: id, attempt: 1, modelRef: id });
      return true;
    };
    expect(await run(ids[0], 0.3)).toBe(true);
    expect(await run(ids[1], 0.6)).toBe(true);
    expect(await run(ids[2], 0.5)).toBe(true); // second now; ids[0] pruned
    expect(await run(ids[3], 0.1)).toBe(false);
    const kept = ids.filter((id) => c.getTrial(id).modelRef);
    expect(kept).toEqual([ids[1], ids[2]]);
    const names = (await objects.list(MODELS_BUCKET)).map((m) => m.name);
    expect(names.filter((n) => ids.includes(n)).sort()).toEqual([ids[1], ids[2]].sort());
    const m = await c.exportModel(ids[1]);
    expect(JSON.parse(m.tlsweepJson)).toEqual({ trialId: ids[1] });
    expect(JSON.parse(m.modelJson).weightsManifest[0].paths).toEqual(['weights.bin']);
    const chunks: Uint8Array[] = [];
    for await (const chunk of m.data) chunks.push(chunk);
    expect(Buffer.concat(chunks)).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    c.close();
  });
});
