import { describe, expect, it } from 'vitest';
import { useCoordinators, useNatsServer } from './helpers/nats-suite.js';
import { trialToPb } from '../services/coordinator/src/grpc/convert.js';
import { leaderboardTable, toRow } from '../services/sweeper/src/format.js';
import { Trial } from '../proto/generated/tlsweep/v1/tlsweep.js';

// Four head-only trials of 3 epochs; ASHA rungs at epochs 1 and 3 (maxT defaults to 3).
const spec = `
name: asha-test
dataset: { kind: synthetic, classes: 3, perClass: 10 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [0.01, 0.001]
dropouts: [0.2, 0.5]
headEpochs: 3
fineTuneEpochs: 0
maxParallel: 4
scheduler: { kind: asha, gracePeriod: 1, reductionFactor: 3 }
`;
const epoch = (n: number, valAccuracy: number) => ({ phase: 'head' as const, epoch: n, loss: 1, accuracy: valAccuracy, valLoss: 1 - valAccuracy, valAccuracy, seconds: 0.1 });
const finished = (trialId: string, epochs: number, stopped: boolean, valAccuracy: number) => ({
  trialId, attempt: 1, valAccuracy, valLoss: 1 - valAccuracy, testAccuracy: valAccuracy, testLoss: 1, epochs, seconds: epochs * 0.1, stopped, totalParams: 10, trainableParams: 5, cutLayer: 'x',
});

describe('coordinator with an ASHA sweep', () => {
  const suite = useNatsServer();
  const start = useCoordinators(suite);

  it('stops a bad trial at the first rung via reportEpoch, remembers it across a restart, and lets a trial finish its last epoch', async () => {
    const c = await start();
    const sweep = await c.submitSweep(spec);
    const ids = c.trialsOf(sweep.sweepId).map((t) => t.config.trialId);
    expect(ids).toHaveLength(4);
    for (const id of ids) await c.trialStarted({ trialId: id, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '' });
    const [good, bad, worse, best] = ids;

    expect(await c.reportEpoch({ trialId: good, attempt: 1, metrics: epoch(1, 0.8) })).toEqual({ action: 'CONTINUE', reason: '' });
    const stop = await c.reportEpoch({ trialId: bad, attempt: 1, metrics: epoch(1, 0.3) });
    expect(stop.action).toBe('STOP');
    expect(stop.reason).toMatch(/^asha: val_accuracy 0\.3000 at epoch 1 is outside the top 1\/3 .* rung 1 \(cutoff 0\.8000\)/);
    expect(c.getTrial(bad).earlyStop).toEqual({ epoch: 1, reason: stop.reason });
    // The worker stops training and reports a stopped trial.
    expect((await c.trialFinished(finished(bad, 1, true, 0.3))).accepted).toBe(true);
    expect(c.getTrial(bad)).toMatchObject({ status: 'stopped', epochs: 1 });

    // Restart: the new coordinator rebuilds ASHA's rung from the stored histories (0.8 and 0.3 recorded at rung 1).
    const c2 = await start();
    // Cutoff = 0.3 + 0.5·2/3 = 0.6333: a fresh scheduler (nothing recorded) would let 0.5 go on.
    const stop2 = await c2.reportEpoch({ trialId: worse, attempt: 1, metrics: epoch(1, 0.5) });
    expect(stop2.action).toBe('STOP');
    expect(stop2.reason).toMatch(/cutoff 0\.6333/);
    // A retried report of the same epoch, to yet another restarted coordinator, gets the same answer.
    const c3 = await start();
    expect(await c3.reportEpoch({ trialId: worse, attempt: 1, metrics: epoch(1, 0.5) })).toEqual(stop2);
    await c3.trialFinished(finished(worse, 1, true, 0.5));

    // Rung 1 now holds [0.8, 0.3, 0.5] → cutoff 0.6; 0.9 goes on. Epoch 3 is maxT but also the trial's last:
    // nothing is saved by stopping it, so it reads completed, not stopped.
    expect((await c3.reportEpoch({ trialId: best, attempt: 1, metrics: epoch(1, 0.9) })).action).toBe('CONTINUE');
    for (const id of [good, best]) {
      expect((await c3.reportEpoch({ trialId: id, attempt: 1, metrics: epoch(2, 0.85) })).action).toBe('CONTINUE');
      expect((await c3.reportEpoch({ trialId: id, attempt: 1, metrics: epoch(3, id === best ? 0.95 : 0.7) })).action).toBe('CONTINUE');
      await c3.trialFinished(finished(id, 3, false, id === best ? 0.95 : 0.7));
    }
    expect(c3.counts(sweep.sweepId)).toMatchObject({ completed: 2, stopped: 2 });
    expect(c3.getSweep(sweep.sweepId).status).toBe('completed');

    // The leaderboard shows the stopped trials and the epoch they stopped at.
    const rows = c3.query({ sweepId: sweep.sweepId }).rows.map((t, i) => toRow(trialToPb(t), i + 1));
    expect(rows.map((r) => [r.trialId, r.status, r.epochs, r.stoppedAtEpoch])).toEqual([
      [best, 'completed', 3, 0], [good, 'completed', 3, 0], [worse, 'stopped', 1, 1], [bad, 'stopped', 1, 1],
    ]);
    expect(rows[3].stopReason).toBe(stop.reason);
    // The reason and epoch survive the wire encoding the gRPC services use.
    const wire = Trial.decode(Trial.encode(trialToPb(c3.getTrial(bad))).finish());
    expect([wire.stopReason, wire.stoppedAtEpoch]).toEqual([stop.reason, 1]);
    expect(leaderboardTable(rows)).toMatch(/stopped@1/);
  }, 30_000);
});
