import { describe, expect, it } from 'vitest';
import { useCoordinators, useNatsServer } from './helpers/nats-suite.js';
import { Coordinator } from '../services/coordinator/src/index.js';

const spec = `
name: tpe-test
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: { min: 0.0001, max: 0.1, log: true }
dropouts: { min: 0, max: 0.9 }
headEpochs: 1
fineTuneEpochs: 0
search: tpe
maxTrials: 7
maxParallel: 2
seed: 11
tpe: { nStartupTrials: 3 }
`;
/** Made-up objective: best at dropout 0.3. */
const accuracyOf = (dropout: number) => 0.9 - (dropout - 0.3) ** 2;

describe('coordinator with an incremental TPE sweep', () => {
  const suite = useNatsServer();
  const start = useCoordinators(suite);

  /** Plays a worker: always finishes the lowest-index trial in flight; optionally restarts the coordinator after `restartAfter` trials. */
  async function drive(sweepId: string, c0: Coordinator, restartAfter = -1): Promise<{ inFlight: number[]; created: number[] }> {
    let c = c0;
    const inFlight: number[] = [];
    const created: number[] = [];
    for (let done = 0; ; done++) {
      if (done === restartAfter) c = await start();
      const trials = c.trialsOf(sweepId);
      created.push(trials.length);
      const next = trials.find((t) => t.status === 'queued');
      if (!next) break;
      inFlight.push(trials.filter((t) => t.status === 'queued' || t.status === 'running').length);
      const id = next.config.trialId;
      const acc = accuracyOf(next.config.dropout);
      await c.trialStarted({ trialId: id, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
      await c.reportEpoch({ trialId: id, attempt: 1, metrics: { phase: 'head', epoch: 1, loss: 1, accuracy: acc, valLoss: 1 - acc, valAccuracy: acc, seconds: 0.1 } });
      const fin = await c.trialFinished({ trialId: id, attempt: 1, valAccuracy: acc, valLoss: 1 - acc, testAccuracy: acc, testLoss: 1 - acc, epochs: 1, seconds: 0.1, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x' });
      expect(fin.accepted).toBe(true);
    }
    return { inFlight, created };
  }

  it('creates trials as slots free and results arrive, never more than maxParallel in flight, exactly maxTrials in all; a restart changes nothing', async () => {
    const c = await start();
    const a = await c.submitSweep(spec);
    expect(a.trialCount).toBe(7);
    // Submit queues only what fits: 2 of the 3 random startup trials; the rest count as pending.
    expect(c.trialsOf(a.sweepId)).toHaveLength(2);
    expect(c.counts(a.sweepId)).toMatchObject({ total: 7, queued: 2, pending: 5 });
    const run = await drive(a.sweepId, c);
    // Trial 0 ends → the 3rd startup trial; trial 1 ends → the model must wait for trial 2, so only 2 exist... then it fills up.
    expect(run.created.slice(0, 4)).toEqual([2, 3, 3, 5]);
    expect(Math.max(...run.inFlight)).toBeLessThanOrEqual(2);
    const trials = c.trialsOf(a.sweepId);
    expect(trials.map((t) => t.config.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(c.getSweep(a.sweepId)).toMatchObject({ status: 'completed', trialCount: 7 });
    expect(c.counts(a.sweepId)).toMatchObject({ total: 7, completed: 7 });
    for (const t of trials) {
      expect(t.config.dropout).toBeGreaterThanOrEqual(0);
      expect(t.config.dropout).toBeLessThanOrEqual(0.9);
      expect(t.config.learningRate).toBeGreaterThanOrEqual(0.0001);
      expect(t.config.learningRate).toBeLessThanOrEqual(0.1);
    }

    // The same spec and the same results, with the coordinator restarted mid-sweep: the same trials, in the same order.
    const b = await c.submitSweep(spec);
    await drive(b.sweepId, c, 4);
    const latest = start.all[start.all.length - 1];
    expect(latest).not.toBe(c);
    expect(latest.trialsOf(b.sweepId).map((t) => [t.config.learningRate, t.config.dropout])).toEqual(trials.map((t) => [t.config.learningRate, t.config.dropout]));
    expect(latest.getSweep(b.sweepId)).toMatchObject({ status: 'completed', trialCount: 7 });
  }, 30_000);

  it('a cancelled TPE sweep finishes without creating the rest of its trials', async () => {
    const c = await start();
    const s = await c.submitSweep(spec);
    const [t] = c.trialsOf(s.sweepId);
    await c.trialStarted({ trialId: t.config.trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    await c.cancelSweep(s.sweepId);
    await c.trialFinished({ trialId: t.config.trialId, attempt: 1, valAccuracy: 0.5, valLoss: 1, testAccuracy: 0.5, testLoss: 1, epochs: 1, seconds: 1, stopped: true, totalParams: 1, trainableParams: 1, cutLayer: '' });
    expect(c.counts(s.sweepId)).toMatchObject({ total: 2, cancelled: 2, pending: 0 });
    expect(c.getSweep(s.sweepId)).toMatchObject({ status: 'cancelled' });
    expect(c.getSweep(s.sweepId).finishedAtMs).toBeGreaterThan(0);
  }, 30_000);
});
