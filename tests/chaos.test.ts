import { describe, expect, it } from 'vitest';
import { runChaosScenario } from '../bench/chaos-scenario.js';

/**
 * Issue 5's chaos test: a 40-trial sweep (fused units of 3) with 3 worker processes while
 * workers are SIGKILLed mid-trial 3 times, the coordinator is SIGKILLed and
 * restarted twice and nats-server restarted once on the same store. Every
 * trial must finish exactly once, and every interrupted trial must resume
 * from its checkpoint instead of starting over. `npm run bench:chaos` runs
 * the same scenario at 400 trials.
 */
describe('chaos', () => {
  it('finishes all 40 trials exactly once through worker kills, coordinator and nats-server restarts', async () => {
    const { figures, trials, killed } = await runChaosScenario({ trials: 40, log: (l) => console.log(`[chaos] ${l}`) });
    console.log(`[chaos] figures ${JSON.stringify(figures)}`);
    for (const t of trials.filter((x) => x.status !== 'completed')) console.log(`[chaos] not completed: ${t.trialId} ${t.status} attempt ${t.attempt}: ${t.error}`);

    expect(figures.faultsInjected).toEqual({ workerKills: 3, coordinatorRestarts: 2, natsRestarts: 1, total: 6 });
    expect(figures.sweepStatus).toBe('completed');
    expect(figures.leaderboardRows).toBe(40);
    expect(new Set(trials.map((t) => t.trialId)).size).toBe(40);
    expect(figures.resultsLost).toBe(0);
    expect(figures.duplicatedEpochs).toBe(0);
    for (const t of trials) {
      expect(t.status, `${t.trialId}: ${t.error}`).toBe('completed');
      // The record holds each epoch exactly once, 1..6, whatever attempts reported them.
      expect(t.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(t.epochs).toBe(6);
      expect(t.valAccuracy).toBeCloseTo(t.history.at(-1)!.valAccuracy, 6);
    }
    // Each killed worker's trial came back on another attempt and resumed from its checkpoint:
    // it trained again fewer epochs than it had done before the kill.
    expect(killed).toHaveLength(3);
    for (const k of killed) {
      const t = trials.find((x) => x.trialId === k.trialId)!;
      expect(t.attempt, k.trialId).toBeGreaterThan(1);
      expect(t.resumedEpochs, k.trialId).toBeGreaterThan(0);
      const hadDone = Math.max(k.epochsReported, t.resumedEpochs + t.retrainedEpochs);
      expect(t.retrainedEpochs, k.trialId).toBeLessThan(hadDone);
    }
    expect(new Set(killed.map((k) => k.trialId)).size).toBe(3);
    expect(figures.trialsRedelivered).toBeGreaterThanOrEqual(3);
    expect(figures.epochsSavedByCheckpoints).toBeGreaterThanOrEqual(3);
    // Units are fused (3 trials each): a kill takes the victim's unit mates down too, and they resume from their own checkpoints.
    expect(figures.trialsResumed).toBeGreaterThan(killed.length);
  }, 240_000);
});
