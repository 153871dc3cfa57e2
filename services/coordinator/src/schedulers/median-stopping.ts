import type { EpochRecord, TrialRecord } from '../records.js';
import { metricMode, metricOf, type Scheduler, type SchedulerDecision, type SchedulerMetric } from './scheduler.js';
import { mean, median } from './stats.js';

export interface MedianStoppingOptions {
  /** @default 'val_accuracy' (maximised; `val_loss` is minimised) */
  metric?: SchedulerMetric;
  /** No trial is stopped before this epoch, and running averages start here. @default 1 */
  gracePeriod?: number;
  /** Other trials that must have reached the epoch before the rule applies. @default 3 */
  minSamples?: number;
}

/**
 * The median stopping rule (Golovin et al. 2017, Vizier; Ray Tune's
 * MedianStoppingRule with hard stops): at epoch t ≥ gracePeriod, stop a
 * trial whose best result so far is strictly worse than the median, over
 * the other trials that have reached t, of their running averages of the
 * metric from gracePeriod to t. Until minSamples other trials have reached
 * t, every trial continues.
 */
export class MedianStoppingScheduler implements Scheduler {
  readonly metric: SchedulerMetric;
  readonly gracePeriod: number;
  readonly minSamples: number;
  private readonly sign: number;
  /** Trial id → epoch → sign-adjusted metric (larger is better). Keyed by epoch so a retried report replaces, not repeats. */
  private readonly results = new Map<string, Map<number, number>>();
  private readonly reasons = new Map<string, string>();

  constructor(opts: MedianStoppingOptions = {}) {
    this.metric = opts.metric ?? 'val_accuracy';
    this.gracePeriod = opts.gracePeriod ?? 1;
    this.minSamples = opts.minSamples ?? 3;
    if (!(this.gracePeriod >= 0)) throw new RangeError(`gracePeriod must be >= 0; got ${this.gracePeriod}`);
    if (!(this.minSamples >= 1)) throw new RangeError(`minSamples must be >= 1; got ${this.minSamples}`);
    this.sign = metricMode(this.metric) === 'max' ? 1 : -1;
  }

  onResult(trial: TrialRecord, result: EpochRecord): SchedulerDecision {
    const id = trial.config.trialId;
    const t = result.epoch;
    let mine = this.results.get(id);
    if (!mine) this.results.set(id, (mine = new Map()));
    mine.set(t, this.sign * metricOf(this.metric, result));
    if (t < this.gracePeriod) return 'CONTINUE';

    const averages: number[] = [];
    for (const [other, rs] of this.results) {
      if (other === id || lastEpoch(rs) < t) continue;
      averages.push(mean([...rs].filter(([e]) => e >= this.gracePeriod && e <= t).map(([, v]) => v)));
    }
    if (averages.length < this.minSamples) return 'CONTINUE';
    const med = median(averages);
    const best = Math.max(...[...mine].filter(([e]) => e <= t).map(([, v]) => (Number.isFinite(v) ? v : -Infinity)));
    if (best < med) {
      this.reasons.set(id, `median: best ${this.metric} ${fmt(this.sign * best)} by epoch ${t} is worse than the median ${fmt(this.sign * med)} of ${averages.length} other trials' running averages`);
      return 'STOP';
    }
    return 'CONTINUE';
  }

  stopReason(trialId: string): string {
    return this.reasons.get(trialId) ?? '';
  }

  forget(trialId: string): void {
    this.results.delete(trialId);
    this.reasons.delete(trialId);
  }
}

const lastEpoch = (rs: Map<number, number>) => Math.max(...rs.keys());
const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));
