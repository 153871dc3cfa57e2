/**
 * Stored trials for the control-plane benchmark's leaderboard queries:
 * finished `noop` sweeps written straight to JetStream KV (as a coordinator
 * would have stored them), so a coordinator started afterwards rebuilds
 * them. Their metrics are synthetic and their backbone is `noop`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { datasetLabel, parseSweepSpec, type SweepRecord, type TrialRecord, type TrialStatus } from '../services/coordinator/src/index.js';
import { newSweepId, trialIdOf } from '../services/coordinator/src/ids.js';
import { newTrialRecord } from '../services/coordinator/src/records.js';
import { StateStore } from '../services/coordinator/src/store/state-store.js';
import { NOOP_WEIGHTS_SOURCE } from '../services/worker/src/runner/noop-runner.js';

/** Writes `count` finished trials in sweeps of at most 10,000; `onProgress` gets the running total. */
export async function seedStoredTrials(nc: NatsConnection, count: number, epochs: number, onProgress: (done: number) => void): Promise<number> {
  const store = await StateStore.open(nc);
  const random = mulberry32(7);
  let done = 0;
  for (let s = 0; done < count; s++) {
    const n = Math.min(10_000, count - done);
    const spec = parseSweepSpec(noopSweepSpec({ name: `bench-control-stored-${s}`, trials: n, epochs }), { allowNoopBackbone: true });
    const sweepId = newSweepId();
    const now = Date.now();
    const sweep: SweepRecord = { sweepId, spec, status: 'completed', trialCount: n, reason: '', createdAtMs: now, finishedAtMs: now };
    await store.putSweep(sweep);
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      inFlight.push(store.putTrial(finishedTrial(sweep, i, epochs, random)));
      // Pipelined puts, bounded so the client's buffer stays small.
      if (inFlight.length >= 512) {
        await Promise.all(inFlight);
        done += inFlight.length;
        inFlight.length = 0;
        onProgress(done);
      }
    }
    await Promise.all(inFlight);
    done += inFlight.length;
    onProgress(done);
  }
  return done;
}

/**
 * A random-search sweep on the noop backbone (benchmark mode): `trials`
 * trials of `epochs` head epochs. `parallel` and `fuse` as the spec fields;
 * absent: the spec defaults.
 */
export function noopSweepSpec(o: { name: string; trials: number; epochs: number; parallel?: number; fuse?: boolean }): string {
  return `
name: ${o.name}
dataset: { kind: synthetic, classes: 2, perClass: 1 }
backbones: [noop]
unfreeze: [0]
learningRates: { min: 0.0001, max: 0.1, log: true }
dropouts: { min: 0, max: 0.5 }
search: random
maxTrials: ${o.trials}
headEpochs: ${o.epochs}
${o.parallel === undefined ? '' : `maxParallel: ${o.parallel}`}
${o.fuse === undefined ? '' : `fuse: ${o.fuse ? '{ maxTrials: 8 }' : 'false'}`}
`;
}

function finishedTrial(sweep: SweepRecord, index: number, epochs: number, random: () => number): TrialRecord {
  const spec = sweep.spec;
  const t = newTrialRecord(
    {
      trialId: trialIdOf(sweep.sweepId, index), sweepId: sweep.sweepId, index, backbone: 'noop', unfreeze: 0,
      learningRate: 1e-4 * 1000 ** random(), dropout: 0.5 * random(), dataset: spec.datasets[0], datasetLabel: datasetLabel(spec.datasets[0]),
      imageSize: null, headUnits: spec.headUnits, headEpochs: epochs, fineTuneEpochs: 0, fineTuneLrFactor: spec.fineTuneLrFactor,
      batchSize: spec.batchSize, seed: spec.seed, split: spec.split, augmentation: null,
    },
    sweep.createdAtMs,
  );
  const r = random();
  const status: TrialStatus = r < 0.9 ? 'completed' : r < 0.95 ? 'stopped' : 'failed';
  const acc = Math.round(random() * 1000) / 1000;
  const ran = status === 'stopped' ? Math.max(1, epochs - 1) : epochs;
  t.history = Array.from({ length: ran }, (_, k) => {
    const a = Math.round(acc * ((k + 1) / epochs) * 1000) / 1000;
    return { phase: 'head' as const, epoch: k + 1, loss: 1 - a / 2, accuracy: a, valLoss: 1 - a, valAccuracy: a, seconds: 0 };
  });
  Object.assign(t, {
    status, attempt: 1, worker: 'seed', backend: 'noop', weightsSource: NOOP_WEIGHTS_SOURCE,
    epochs: ran, seconds: 0.001 * (1 + random()), valAccuracy: t.history[ran - 1].valAccuracy, valLoss: t.history[ran - 1].valLoss,
  });
  if (status === 'failed') t.error = 'SEED: synthetic failure';
  else Object.assign(t, { testAccuracy: t.valAccuracy, testLoss: t.valLoss });
  return t;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
