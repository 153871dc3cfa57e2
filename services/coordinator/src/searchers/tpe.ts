import { deriveSeed, mulberry32, type Rng } from '../../../worker/src/data/prng.js';
import { SPEC_DEFAULTS, type SweepSpec, type TpeSpec } from '../spec/sweep-spec.js';
import { CategoricalDensity, TruncatedNormalMixture, type Density } from './parzen-estimator.js';
import { AXIS_NAMES, axesOf, fromInternal, pointFrom, samplePoint, toInternal, type Axis, type AxisName } from './search-space.js';
import type { SearchPoint, Searcher } from './searcher.js';

/** As Optuna: the good group never has more than 25 trials, however many finished. */
const MAX_GOOD = 25;
/** Weight of the prior in each density (Optuna's prior_weight). */
const PRIOR_WEIGHT = 1;

interface Observation {
  point: SearchPoint;
  /** Sign-adjusted: larger is better. */
  value: number;
  /** Stable tie-break, so the good/bad split does not depend on the order results arrived in. */
  key: string;
}

/**
 * Tree-structured Parzen estimator (Bergstra et al. 2011), as Optuna's
 * default independent TPESampler: the first `nStartupTrials` suggestions are
 * uniform draws; after that (once all of them have ended) finished trials
 * are split by the `gamma` quantile of the metric into good and bad, each
 * axis gets a density l(x) from the good and g(x) from the bad (smoothed
 * counts for lists, truncated-normal Parzen windows for ranges, in log space
 * for log ranges), and each axis takes, among `nEiCandidates` draws from
 * l, the one maximising l(x)/g(x).
 *
 * Suggestion i uses its own random stream derived from (seed, i), and the
 * observations are ordered canonically, so the suggestion is a function of
 * the seed, i and the set of results: a restarted coordinator that calls
 * `resume(i)` and feeds the stored results suggests what the first would have.
 */
export class TpeSearcher implements Searcher {
  readonly options: TpeSpec;
  private readonly maxTrials: number;
  private suggested = 0;
  private ended = 0;
  private readonly observations: Observation[] = [];
  private readonly sign: number;

  constructor(private readonly spec: SweepSpec, options: Partial<TpeSpec> = spec.tpe ?? {}) {
    this.options = { ...SPEC_DEFAULTS.tpe, ...options };
    this.maxTrials = spec.maxTrials ?? 1;
    this.sign = this.options.metric === 'val_loss' ? -1 : 1;
  }

  /** Continue after `suggested` points were already handed out (a restart). */
  resume(suggested: number): void {
    this.suggested = suggested;
  }

  /** How many points were handed out. */
  get count(): number {
    return this.suggested;
  }

  suggest(): SearchPoint | 'FINISHED' | null {
    if (this.suggested >= this.maxTrials) return 'FINISHED';
    const i = this.suggested;
    const rand = mulberry32(deriveSeed(this.spec.seed, 'tpe', i));
    if (i < this.options.nStartupTrials) {
      this.suggested++;
      return samplePoint(this.spec, rand);
    }
    // The model needs the startup results; suggesting early would only be random search again.
    if (this.ended < this.options.nStartupTrials) return null;
    this.suggested++;
    return this.sampleFromModel(rand);
  }

  /** A trial ended; `metric` null (failed, cancelled, NaN) counts as ended but teaches nothing. */
  onTrialComplete(point: SearchPoint, metric: number | null): void {
    this.ended++;
    if (metric === null || !Number.isFinite(metric)) return;
    this.observations.push({ point, value: this.sign * metric, key: JSON.stringify(point) });
  }

  private sampleFromModel(rand: Rng): SearchPoint {
    const sorted = [...this.observations].sort((a, b) => b.value - a.value || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const nGood = Math.min(Math.ceil(this.options.gamma * sorted.length), MAX_GOOD);
    const good = sorted.slice(0, nGood).map((o) => o.point);
    const bad = sorted.slice(nGood).map((o) => o.point);
    const axes = axesOf(this.spec);
    const values = {} as Record<AxisName, unknown>;
    for (const name of AXIS_NAMES) values[name] = this.sampleAxis(axes[name], name, good, bad, rand);
    return pointFrom(values);
  }

  private sampleAxis(axis: Axis, name: AxisName, good: SearchPoint[], bad: SearchPoint[], rand: Rng): unknown {
    if (axis.kind === 'choice' && axis.values.length === 1) return axis.values[0];
    const encode = encoder(axis);
    const code = (pts: SearchPoint[]) => pts.map((p) => encode(p[name])).filter((x): x is number => x !== null);
    const density = (xs: number[]): Density => axis.kind === 'choice'
      ? new CategoricalDensity(axis.values.length, xs, PRIOR_WEIGHT)
      : new TruncatedNormalMixture(toInternal(axis.range, axis.range.min), toInternal(axis.range, axis.range.max), xs, PRIOR_WEIGHT);
    const l = density(code(good));
    const g = density(code(bad));
    let best = NaN;
    let bestScore = -Infinity;
    for (let c = 0; c < this.options.nEiCandidates; c++) {
      const x = l.sample(rand);
      const score = l.logPdf(x) - g.logPdf(x);
      if (score > bestScore) {
        bestScore = score;
        best = x;
      }
    }
    return axis.kind === 'choice' ? axis.values[best] : fromInternal(axis.range, best);
  }
}

/** Axis value → the estimator's number: a choice's index, or a range value in sampling space; null if not on the axis. */
function encoder(axis: Axis): (v: unknown) => number | null {
  if (axis.kind === 'range') return (v) => (typeof v === 'number' && v >= axis.range.min && v <= axis.range.max ? toInternal(axis.range, v) : null);
  const index = new Map(axis.values.map((x, i) => [JSON.stringify(x), i]));
  return (v) => index.get(JSON.stringify(v)) ?? null;
}
