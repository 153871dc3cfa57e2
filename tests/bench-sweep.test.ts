/**
 * The pure parts of `npm run bench:sweep`: flags, the sharing knobs of the
 * naive and full runs, the spec both submit, and model selection. (The bench
 * itself is a measurement, run by hand.)
 */
import { describe, expect, it } from 'vitest';
import { parseSweepSpec } from '../services/coordinator/src/index.js';
import { gridSize, parseSweepBenchArgs, SWEEP_BENCH_DEFAULTS } from '../bench/sweep/options.js';
import { knobSettings, SHARING_KNOBS } from '../bench/sweep/sharing-knobs.js';
import { benchSweepSpec } from '../bench/sweep/sweep-spec.js';
import { summarize, trainableByDepth, type BenchTrial } from '../bench/sweep/trial-result.js';

describe('bench:sweep options', () => {
  it('defaults to the issue grid: 3 unfreeze depths × 3 learning rates × 2 dropouts', () => {
    const o = parseSweepBenchArgs([]);
    expect(o).toMatchObject({ perClass: 200, imageSize: 96, workers: 2, torchThreads: 2, quick: false, only: ['naive', 'tlsweep', 'torch'] });
    expect(gridSize(o)).toBe(18);
  });

  it('--quick shrinks everything, explicit flags still win', () => {
    const o = parseSweepBenchArgs(['--quick', '--per-class', '12', '--lrs', '0.01,0.001']);
    expect(o.quick).toBe(true);
    expect(o.perClass).toBe(12);
    expect(o.learningRates).toEqual([0.01, 0.001]);
    expect(o.headEpochs).toBeLessThan(SWEEP_BENCH_DEFAULTS.headEpochs);
  });

  it('refuses bad values naming the flag', () => {
    expect(() => parseSweepBenchArgs(['--per-class', 'many'])).toThrow(/--per-class: expected an integer >= 1, got "many"/);
    expect(() => parseSweepBenchArgs(['--unfreeze', '0,200'])).toThrow(/--unfreeze: .*155 layers/);
    expect(() => parseSweepBenchArgs(['--only', 'naive,keras'])).toThrow(/--only: expected some of naive, tlsweep, torch, got "keras"/);
    expect(() => parseSweepBenchArgs(['--tlsweep-env', 'NOEQUALS'])).toThrow(/--tlsweep-env: expected KEY=VALUE/);
    expect(() => parseSweepBenchArgs(['--epochs', '3'])).toThrow(/--epochs: unknown flag/);
  });
});

describe('bench:sweep sharing knobs', () => {
  it('turns every knob off for naive and on for tlsweep, and lists them', () => {
    const o = parseSweepBenchArgs([]);
    const naive = knobSettings('naive', o);
    const full = knobSettings('tlsweep', o);
    expect(naive.workerEnv.TLSWEEP_FEATURE_MEMO_MB).toBe('0');
    expect(naive.workerEnv.TLSWEEP_FROZEN_PREFIX).toBe('every-epoch');
    expect(full.workerEnv.TLSWEEP_FROZEN_PREFIX).toBe('once');
    expect(naive.spec.scheduler).toEqual({ kind: 'fifo' });
    expect(full.workerEnv.TLSWEEP_FEATURE_MEMO_MB).not.toBe('0');
    expect(full.spec.scheduler).toMatchObject({ kind: 'asha', gracePeriod: 1, reductionFactor: 3 });
    // A nested knob (fuse.shareHeads) goes into its parent's object, and nowhere when the parent is off.
    expect(full.spec.fuse).toEqual({ maxTrials: 12, shareHeads: true });
    expect(naive.spec.fuse).toBe(false);
    for (const k of SHARING_KNOBS) {
      expect(naive.listed[k.name].on).toBe(false);
      expect(full.listed[k.name].on).toBe(true);
    }
  });

  it('adds command-line knobs to one run only', () => {
    const o = parseSweepBenchArgs(['--tlsweep-env', 'TLSWEEP_SOMETHING=1', '--naive-spec', '{"maxParallel": 2}']);
    expect(knobSettings('tlsweep', o).workerEnv.TLSWEEP_SOMETHING).toBe('1');
    expect(knobSettings('naive', o).workerEnv.TLSWEEP_SOMETHING).toBeUndefined();
    expect(knobSettings('naive', o).spec.maxParallel).toBe(2);
    expect(knobSettings('naive', o).listed.maxParallel).toEqual({ key: 'maxParallel', value: 2, on: null });
  });

  it('both runs submit specs the coordinator accepts, differing only in the knob fields', () => {
    const o = parseSweepBenchArgs([]);
    const naive = benchSweepSpec('bench-sweep-naive', o, knobSettings('naive', o).spec);
    const full = benchSweepSpec('bench-sweep-tlsweep', o, knobSettings('tlsweep', o).spec);
    const parsedNaive = parseSweepSpec(JSON.stringify(naive));
    const parsedFull = parseSweepSpec(JSON.stringify(full));
    expect(parsedNaive.scheduler.kind).toBe('fifo');
    expect(parsedFull.scheduler.kind).toBe('asha');
    expect(parsedNaive.fuse).toBeNull();
    expect(parsedFull.fuse).not.toBeNull();
    const { name: _a, scheduler: _b, fuse: _e, ...restNaive } = naive;
    const { name: _c, scheduler: _d, fuse: _f, ...restFull } = full;
    expect(restFull).toEqual(restNaive);
  });
});

describe('bench:sweep model selection', () => {
  const trial = (over: Partial<BenchTrial>): BenchTrial => ({
    unfreeze: 0, learningRate: 1e-3, dropout: 0.2, status: 'completed', valAccuracy: 0.5, valLoss: 1, testAccuracy: 0.5, epochs: 5, seconds: 1, trainableParams: 10, ...over,
  });

  it('reports the test accuracy of the best validation trial, not the best test accuracy', () => {
    const s = summarize({
      wallSeconds: 12.34,
      trials: [
        trial({ valAccuracy: 0.8, testAccuracy: 0.7, phaseSeconds: { features: 2, head: 1 } }),
        trial({ valAccuracy: 0.8, valLoss: 0.5, testAccuracy: 0.75, unfreeze: 11 }),
        trial({ valAccuracy: 0.6, testAccuracy: 0.9, phaseSeconds: { features: 0.25, head: 1 } }),
        trial({ valAccuracy: 0.95, testAccuracy: 0.99, status: 'failed' }),
        trial({ valAccuracy: 0.7, status: 'stopped', epochs: 1 }),
      ],
    });
    expect(s.bestTestAccuracy).toBe(0.75);
    expect(s.best).toMatchObject({ unfreeze: 11 });
    expect(s.maxTestAccuracy).toBe(0.9);
    expect(s.byStatus).toEqual({ completed: 3, failed: 1, stopped: 1 });
    expect(s.epochs).toBe(21);
    expect(s.wallSeconds).toBe(12.3);
    expect(s.phaseSeconds).toEqual({ features: 2.3, head: 2 });
  });

  it('counts trainable parameters per depth', () => {
    expect(trainableByDepth({ wallSeconds: 1, trials: [trial({ unfreeze: 0, trainableParams: 5 }), trial({ unfreeze: 11, trainableParams: 9 }), trial({ unfreeze: 11, trainableParams: 7 })] }))
      .toEqual({ 0: 5, 11: 9 });
  });
});
