import type { EpochRecord, TrialRecord } from '../records.js';
import { metricMode, metricOf, type Scheduler, type SchedulerDecision, type SchedulerMetric } from './scheduler.js';
import { percentile } from './stats.js';

export interface AshaOptions {
  /** @default 'val_accuracy' (maximised; `val_loss` is minimised) */
  metric?: SchedulerMetric;
  /** Epochs every trial runs before it can be stopped: the first rung. @default 1 */
  gracePeriod?: number;
  /** Keep the top 1/reductionFactor at each rung; rungs are gracePeriod·rf^k. @default 3 */
  reductionFactor?: number;
  /** A trial reaching this epoch is stopped (it has had its full budget). @default 100 */
  maxT?: number;
}

interface Rung {
  milestone: number;
  /** Trial id → its (sign-adjusted, larger is better) metric when it reached this rung, and the answer it got. */
  recorded: Map<string, { value: number; epoch: number; decision: SchedulerDecision }>;
}

/**
 * Asynchronous successive halving (Li et al. 2018; Ray Tune's
 * AsyncHyperBandScheduler with one bracket). Rungs sit at epochs
 * gracePeriod·rf^k up to maxT. When a trial first reaches a rung, its
 * metric is compared with the results already recorded there: it goes on
 * only if it is at or above their (1 − 1/rf) percentile, i.e. in the top
 * 1/rf so far; either way its result is recorded. Decisions never wait for
 * other trials, so no worker idles at a rung.
 */
export class AshaScheduler implements Scheduler {
  readonly metric: SchedulerMetric;
  readonly gracePeriod: number;
  readonly reductionFactor: number;
  readonly maxT: number;
  /** Highest milestone first, as Ray walks them: a result is judged at the highest rung it has reached. */
  private readonly rungs: Rung[];
  private readonly sign: number;
  private readonly reasons = new Map<string, string>();

  constructor(opts: AshaOptions = {}) {
    this.metric = opts.metric ?? 'val_accuracy';
    this.gracePeriod = opts.gracePeriod ?? 1;
    this.reductionFactor = opts.reductionFactor ?? 3;
    this.maxT = opts.maxT ?? 100;
    if (!(this.gracePeriod > 0)) throw new RangeError(`gracePeriod must be > 0; got ${this.gracePeriod}`);
    if (!(this.reductionFactor > 1)) throw new RangeError(`reductionFactor must be > 1; got ${this.reductionFactor}`);
    if (!(this.maxT >= this.gracePeriod)) throw new RangeError(`maxT must be >= gracePeriod (${this.gracePeriod}); got ${this.maxT}`);
    this.sign = metricMode(this.metric) === 'max' ? 1 : -1;
    const milestones: number[] = [];
    // Multiply instead of log(maxT/grace)/log(rf): floating logs put 243/3^5 a hair under 5 rungs.
    for (let m = this.gracePeriod; m <= this.maxT * (1 + 1e-12); m *= this.reductionFactor) milestones.push(m);
    this.rungs = milestones.reverse().map((milestone) => ({ milestone, recorded: new Map() }));
  }

  /** The rung epochs, lowest first. */
  get milestones(): number[] {
    return this.rungs.map((r) => r.milestone).reverse();
  }

  onResult(trial: TrialRecord, result: EpochRecord): SchedulerDecision {
    const id = trial.config.trialId;
    const t = result.epoch;
    if (t >= this.maxT) {
      this.reasons.set(id, `asha: reached maxT ${this.maxT}`);
      return 'STOP';
    }
    const value = this.sign * metricOf(this.metric, result);
    for (const rung of this.rungs) {
      if (t < rung.milestone) continue;
      const seen = rung.recorded.get(id);
      if (seen) {
        // The same result again (a retried report) gets the same answer; a later epoch has passed this rung already.
        if (seen.epoch === t) return seen.decision;
        continue;
      }
      const cutoff = percentile([...rung.recorded.values()].map((r) => r.value), (1 - 1 / this.reductionFactor) * 100);
      // A NaN metric is never above the cutoff: a diverged trial stops once there is anything to compare with.
      const below = Number.isFinite(cutoff) && !(value >= cutoff);
      const decision: SchedulerDecision = below ? 'STOP' : 'CONTINUE';
      if (below) {
        this.reasons.set(id, `asha: ${this.metric} ${fmt(this.sign * value)} at epoch ${t} is outside the top 1/${this.reductionFactor} of ${rung.recorded.size} trial(s) at rung ${rung.milestone} (cutoff ${fmt(this.sign * cutoff)})`);
      }
      rung.recorded.set(id, { value: Number.isFinite(value) ? value : NaN, epoch: t, decision });
      return decision;
    }
    return 'CONTINUE';
  }

  stopReason(trialId: string): string {
    return this.reasons.get(trialId) ?? '';
  }

  forget(trialId: string): void {
    for (const r of this.rungs) r.recorded.delete(trialId);
    this.reasons.delete(trialId);
  }

  /** Results recorded at the rung at `milestone` (trial id → metric as reported), for inspection and tests. */
  recordedAt(milestone: number): Map<string, number> {
    const rung = this.rungs.find((r) => r.milestone === milestone);
    return new Map([...(rung?.recorded ?? new Map())].map(([k, v]) => [k, this.sign * v.value]));
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));
