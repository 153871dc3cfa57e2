import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AshaScheduler,
  createScheduler,
  MedianStoppingScheduler,
  parseSweepSpec,
  percentile,
  type EpochRecord,
  type Scheduler,
  type TrialRecord,
} from '../services/coordinator/src/index.js';
import { newTrialRecordForTest } from './helpers/trial-record.js';

/** Feeds one made-up epoch to a scheduler and returns its answer. */
function feed(s: Scheduler, trial: string, epoch: number, valAccuracy: number, valLoss = 1 - valAccuracy): string {
  const r: EpochRecord = { phase: 'head', epoch, loss: 0, accuracy: 0, valLoss, valAccuracy, seconds: 0 };
  return s.onResult(trialRecord(trial), r);
}
const trials = new Map<string, TrialRecord>();
const trialRecord = (id: string) => trials.get(id) ?? trials.set(id, newTrialRecordForTest(id)).get(id)!;

describe('percentile (numpy linear interpolation)', () => {
  it('matches hand-computed values', () => {
    expect(percentile([0.5], 66.667)).toBeCloseTo(0.5, 12);
    expect(percentile([0.5, 0.4], (1 - 1 / 3) * 100)).toBeCloseTo(0.4 + 0.1 * (2 / 3), 12);
    expect(percentile([0.6, 0.4, 0.5], (1 - 1 / 3) * 100)).toBeCloseTo(0.5 + 0.1 * (1 / 3), 12);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([NaN, 1, 3], 50)).toBe(2);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('ASHA', () => {
  it('places rungs at gracePeriod·rf^k up to maxT', () => {
    expect(new AshaScheduler({ gracePeriod: 1, reductionFactor: 3, maxT: 9 }).milestones).toEqual([1, 3, 9]);
    expect(new AshaScheduler({ gracePeriod: 1, reductionFactor: 3, maxT: 243 }).milestones).toEqual([1, 3, 9, 27, 81, 243]);
    expect(new AshaScheduler({ gracePeriod: 2, reductionFactor: 2, maxT: 10 }).milestones).toEqual([2, 4, 8]);
    expect(() => new AshaScheduler({ reductionFactor: 1 })).toThrow(/reductionFactor/);
  });

  it('keeps only the top 1/rf of results recorded at a rung, deciding as results arrive', () => {
    const s = new AshaScheduler({ gracePeriod: 1, reductionFactor: 3, maxT: 9 });
    // Rung 1, nothing recorded yet: the first trial always goes on.
    expect(feed(s, 'a', 1, 0.5)).toBe('CONTINUE');
    // Recorded [0.5]: cutoff = 0.5; 0.4 is below.
    expect(feed(s, 'b', 1, 0.4)).toBe('STOP');
    expect(s.stopReason('b')).toMatch(/^asha: val_accuracy 0\.4000 at epoch 1 .* rung 1 \(cutoff 0\.5000\)/);
    // Recorded [0.4, 0.5]: cutoff = 0.4 + 0.1·2/3 = 0.4667; 0.6 is above.
    expect(feed(s, 'c', 1, 0.6)).toBe('CONTINUE');
    // Recorded [0.4, 0.5, 0.6]: cutoff = 0.5 + 0.1·1/3 = 0.5333; 0.52 is below, 0.54 above.
    expect(feed(s, 'd', 1, 0.52)).toBe('STOP');
    expect(feed(s, 'e', 1, 0.54)).toBe('CONTINUE');
    expect(s.recordedAt(1)).toEqual(new Map([['a', 0.5], ['b', 0.4], ['c', 0.6], ['d', 0.52], ['e', 0.54]]));
    // Between rungs nothing is judged, however bad.
    expect(feed(s, 'a', 2, 0.01)).toBe('CONTINUE');
    // Rung 3: first arrival goes on; the next is below 0.7.
    expect(feed(s, 'a', 3, 0.7)).toBe('CONTINUE');
    expect(feed(s, 'c', 3, 0.65)).toBe('STOP');
    expect(feed(s, 'e', 3, 0.71)).toBe('CONTINUE');
    // maxT: the trial has had its budget.
    expect(feed(s, 'a', 9, 0.99)).toBe('STOP');
    expect(s.stopReason('a')).toBe('asha: reached maxT 9');
  });

  it('answers a repeated report the same way, and judges a fresh attempt again after forget()', () => {
    const s = new AshaScheduler({ gracePeriod: 1, reductionFactor: 2, maxT: 8 });
    expect(feed(s, 'a', 1, 0.8)).toBe('CONTINUE');
    expect(feed(s, 'b', 1, 0.2)).toBe('STOP');
    expect(feed(s, 'b', 1, 0.2)).toBe('STOP');
    expect(feed(s, 'a', 1, 0.8)).toBe('CONTINUE');
    s.forget('b');
    // Recorded [0.8] only; with rf 2 the cutoff is the median 0.8: 0.9 goes on.
    expect(feed(s, 'b', 1, 0.9)).toBe('CONTINUE');
  });

  it('minimises val_loss, and stops a diverged (NaN) trial', () => {
    const s = new AshaScheduler({ metric: 'val_loss', gracePeriod: 1, reductionFactor: 3, maxT: 9 });
    expect(feed(s, 'a', 1, 0, 1.0)).toBe('CONTINUE');
    expect(feed(s, 'b', 1, 0, 1.2)).toBe('STOP');
    expect(s.stopReason('b')).toMatch(/val_loss 1\.2000 at epoch 1 .*\(cutoff 1\.0000\)/);
    expect(feed(s, 'c', 1, 0, 0.9)).toBe('CONTINUE');
    expect(feed(s, 'd', 1, 0, NaN)).toBe('STOP');
  });
});

describe('median stopping rule', () => {
  it('stops a trial whose best is below the median of the others\' running averages at that epoch', () => {
    const s = new MedianStoppingScheduler({ gracePeriod: 1, minSamples: 2 });
    for (const [e, v] of [[1, 0.5], [2, 0.6], [3, 0.7]]) expect(feed(s, 'a', e, v)).toBe('CONTINUE');
    // Only one other trial has reached each epoch: too few samples.
    for (const [e, v] of [[1, 0.1], [2, 0.1], [3, 0.1]]) expect(feed(s, 'b', e, v)).toBe('CONTINUE');
    // Epoch 1: averages a 0.5, b 0.1 → median 0.3; best 0.29 is worse.
    expect(feed(s, 'c', 1, 0.29)).toBe('STOP');
    expect(s.stopReason('c')).toMatch(/^median: best val_accuracy 0\.2900 by epoch 1 is worse than the median 0\.3000 of 2/);
    // Equal to the median is not worse.
    expect(feed(s, 'd', 1, 0.3)).toBe('CONTINUE');
    // Epoch 2: a's average (0.5+0.6)/2 = 0.55, b's 0.1, d's (c stopped at 1) → only a, b reach 2: median 0.325.
    // d's best is max(0.3, 0.32) = 0.32 < 0.325.
    expect(feed(s, 'd', 2, 0.32)).toBe('STOP');
    // Best so far counts, not the latest: e had 0.4 at epoch 1, so a dip at epoch 2 is tolerated.
    expect(feed(s, 'e', 1, 0.4)).toBe('CONTINUE');
    expect(feed(s, 'e', 2, 0.2)).toBe('CONTINUE');
    // Nobody else reached epoch 4.
    expect(feed(s, 'f', 4, 0.0)).toBe('CONTINUE');
  });

  it('never stops before the grace period, and averages only from it on', () => {
    const s = new MedianStoppingScheduler({ gracePeriod: 2, minSamples: 1 });
    feed(s, 'a', 1, 0.0);
    feed(s, 'a', 2, 0.8);
    expect(feed(s, 'b', 1, 0.0)).toBe('CONTINUE');
    // a's running average over epochs 2..2 is 0.8 (epoch 1 is before the grace period).
    expect(feed(s, 'b', 2, 0.79)).toBe('STOP');
  });

  it('minimises val_loss', () => {
    const s = new MedianStoppingScheduler({ metric: 'val_loss', gracePeriod: 1, minSamples: 1 });
    feed(s, 'a', 1, 0, 0.5);
    expect(feed(s, 'b', 1, 0, 0.4)).toBe('CONTINUE');
    expect(feed(s, 'c', 1, 0, 0.46)).toBe('STOP'); // median of 0.5, 0.4 = 0.45; a loss of 0.46 is worse
    expect(feed(s, 'd', 1, 0, 0.45)).toBe('CONTINUE');
  });
});

describe('scheduler spec', () => {
  const base = `name: s\ndataset: { kind: synthetic }\nbackbones: [tiny_cnn]\nunfreeze: [0, 2]\nlearningRates: [0.1]\ndropouts: [0.2]\nheadEpochs: 4\nfineTuneEpochs: 2\n`;
  it('fills documented defaults', () => {
    expect(parseSweepSpec(base).scheduler).toMatchObject({ kind: 'fifo' });
    const s = parseSweepSpec(base + 'scheduler: { kind: asha }').scheduler;
    expect(s).toEqual({ kind: 'asha', metric: 'val_accuracy', gracePeriod: 1, reductionFactor: 3, maxT: 6, minSamples: 3 });
    expect(createScheduler(s)).toBeInstanceOf(AshaScheduler);
    expect((createScheduler(s) as AshaScheduler).milestones).toEqual([1, 3]);
    expect(createScheduler(parseSweepSpec(base + 'scheduler: { kind: median, metric: val_loss, minSamples: 5 }').scheduler)).toMatchObject({ metric: 'val_loss', minSamples: 5 });
  });
  it('refuses bad values and fields of another kind, naming the field', () => {
    const bad = (y: string, field: string, msg: RegExp) => {
      try {
        parseSweepSpec(base + y);
        throw new Error('accepted');
      } catch (e) {
        expect((e as { violations: { field: string; message: string }[] }).violations).toContainEqual({ field, message: expect.stringMatching(msg) });
      }
    };
    bad('scheduler: { kind: hyperband }', 'scheduler.kind', /one of: fifo, asha, median/);
    bad('scheduler: { kind: median, reductionFactor: 2 }', 'scheduler.reductionFactor', /not used by scheduler kind median/);
    bad('scheduler: { kind: asha, metric: accuracy }', 'scheduler.metric', /val_accuracy, val_loss/);
    bad('scheduler: { kind: asha, reductionFactor: 1 }', 'scheduler.reductionFactor', /\[1\.5, 100\]/);
    bad('scheduler: { kind: asha, gracePeriod: 7 }', 'scheduler.gracePeriod', /1\.\.6/);
    bad('scheduler: { kind: asha, gracePeriod: 3, maxT: 2 }', 'scheduler.maxT', /at least gracePeriod \(3\)/);
  });
  it('examples/asha-tpe.yaml is a valid spec with ASHA rungs at 1, 3, 9', () => {
    const s = parseSweepSpec(readFileSync(new URL('../examples/asha-tpe.yaml', import.meta.url), 'utf8'));
    expect(s).toMatchObject({ search: 'tpe', maxTrials: 24, learningRateRange: { log: true }, scheduler: { kind: 'asha', maxT: 11 } });
    expect((createScheduler(s.scheduler) as AshaScheduler).milestones).toEqual([1, 3, 9]);
  });
});
