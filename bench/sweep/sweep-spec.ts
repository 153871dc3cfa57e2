import type { SweepBenchOptions } from './options.js';

/** The Fashion-MNIST subset every contender trains on. */
export function benchDataset(o: SweepBenchOptions): { kind: 'fashion-mnist'; perClass: number } {
  return { kind: 'fashion-mnist', perClass: o.perClass };
}

/** Stratified split fractions (the split seed is the spec seed, as the worker uses it). */
export const BENCH_SPLIT = { valFraction: 0.15, testFraction: 0.15 } as const;

/**
 * The sweep spec of one tlsweep run: the bench grid and recipe, plus the
 * run's sharing-knob fields (`scheduler`, …) from sharing-knobs.ts.
 */
export function benchSweepSpec(name: string, o: SweepBenchOptions, knobFields: Record<string, unknown>): Record<string, unknown> {
  return {
    name,
    dataset: benchDataset(o),
    backbones: ['mobilenet_v2'],
    unfreeze: o.unfreeze,
    learningRates: o.learningRates,
    dropouts: o.dropouts,
    imageSize: o.imageSize,
    headEpochs: o.headEpochs,
    fineTuneEpochs: o.fineTuneEpochs,
    fineTuneLrFactor: o.fineTuneLrFactor,
    batchSize: o.batchSize,
    headUnits: o.headUnits,
    seed: o.seed,
    search: 'grid',
    // Two per worker: a worker never waits for the coordinator to queue its next trial.
    // Enough slots that a work unit (at most half of maxParallel) can hold a whole fusable group (lr × dropout,
    // with its head-only twins when phase 1 is shared), and the other units queue beside it.
    maxParallel: Math.max(2 * o.workers, 2 * o.learningRates.length * o.dropouts.length * Math.max(1, o.unfreeze.length)),
    split: BENCH_SPLIT,
    ...knobFields,
  };
}
