import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { TRIAL_STREAM, WORKER_CONSUMER, type Coordinator, type TrialTaskV1 } from '../../services/coordinator/src/index.js';

/**
 * Plays a worker against a real coordinator and queue without training: pulls
 * one trial, reports `epochs` epochs and finishes it with metrics derived
 * from the trial's hyperparameters (higher learning rate → better here), so
 * tests of the control plane and the dashboard have known numbers.
 */
export async function runOneTrial(nc: NatsConnection, c: Coordinator, opts: { epochs?: number; finish?: boolean } = {}): Promise<string | null> {
  const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
  const msg = await consumer.next({ expires: 2000 });
  if (!msg) return null;
  const task = msg.json<TrialTaskV1>();
  const { trialId, learningRate, dropout } = task.config;
  const attempt = msg.info.deliveryCount;
  await c.trialStarted({ trialId, attempt, worker: 'fake-worker', backend: 'none', pretrained: false, weightsSource: 'none' });
  const target = Math.min(0.95, 0.5 + 10 * learningRate - 0.1 * dropout);
  const epochs = opts.epochs ?? 3;
  for (let e = 1; e <= epochs; e++) {
    const acc = target * (e / epochs);
    await c.reportEpoch({ trialId, attempt, metrics: { phase: e > 1 ? 'finetune' : 'head', epoch: e, loss: 2 - acc, accuracy: acc + 0.02, valLoss: 2.1 - acc, valAccuracy: acc, seconds: 0.5 } });
  }
  if (opts.finish ?? true) {
    // 3 classes, 30 test images: the diagonal carries `target` of each class.
    const hit = Math.round(10 * target);
    const confusion = [0, 1, 2].map((i) => [0, 1, 2].map((j) => (i === j ? hit : j === (i + 1) % 3 ? 10 - hit : 0)));
    const perClass = ['a', 'b', 'c'].map((name) => ({ name, precision: hit / 10, recall: hit / 10, f1: hit / 10, support: 10 }));
    await c.trialFinished({ trialId, attempt, testMetrics: { count: 30, accuracy: hit / 10, top5Accuracy: null, perClass, confusion }, valAccuracy: target, valLoss: 2.1 - target, testAccuracy: target - 0.01, testLoss: 2.2 - target, epochs, seconds: 1 + 100 * dropout, stopped: false, totalParams: 100, trainableParams: 10, cutLayer: 'x' });
    msg.ack();
  }
  return trialId;
}
