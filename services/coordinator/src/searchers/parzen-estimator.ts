import type { Rng } from '../../../worker/src/data/prng.js';

/**
 * One-dimensional density estimators of TPE (Bergstra et al. 2011; Optuna's
 * `_ParzenEstimator`), each built from a group of observed values plus a
 * prior, so a group of zero observations is the prior alone.
 */
export interface Density {
  sample(rand: Rng): number;
  logPdf(x: number): number;
}

/**
 * Categorical axis: smoothed counts, p(k) = (count(k) + prior/K) / (n + prior).
 * The prior keeps unseen choices possible.
 */
export class CategoricalDensity implements Density {
  private readonly p: number[];
  constructor(choices: number, observed: readonly number[], priorWeight: number) {
    const counts = new Array<number>(choices).fill(priorWeight / choices);
    for (const k of observed) counts[k] += 1;
    const total = observed.length + priorWeight;
    this.p = counts.map((c) => c / total);
  }
  sample(rand: Rng): number {
    let u = rand();
    for (let k = 0; k < this.p.length; k++) {
      u -= this.p[k];
      if (u < 0) return k;
    }
    return this.p.length - 1;
  }
  logPdf(k: number): number {
    return Math.log(this.p[k]);
  }
}

/**
 * Numeric axis on [lo, hi]: a mixture of normals truncated to the interval,
 * one per observation plus a wide prior kernel at the centre. Each
 * observation's bandwidth is the larger gap to its neighbours (the interval's
 * ends count as neighbours), clipped to [(hi−lo)/min(100, 1+n), hi−lo] —
 * Optuna's univariate rule with its "magic clip", which stops a cluster of
 * equal values collapsing to a spike.
 */
export class TruncatedNormalMixture implements Density {
  readonly mus: number[];
  readonly sigmas: number[];
  private readonly weights: number[];
  private readonly logNorm: number[];
  constructor(private readonly lo: number, private readonly hi: number, observed: readonly number[], priorWeight: number) {
    const width = hi - lo;
    const n = observed.length;
    const order = [...observed.keys()].sort((a, b) => observed[a] - observed[b]);
    const sigma = new Array<number>(n);
    order.forEach((idx, r) => {
      const left = r === 0 ? lo : observed[order[r - 1]];
      const right = r === n - 1 ? hi : observed[order[r + 1]];
      sigma[idx] = Math.max(observed[idx] - left, right - observed[idx]);
    });
    const minSigma = width / Math.min(100, 1 + (n + 1));
    this.mus = [...observed, (lo + hi) / 2];
    this.sigmas = [...sigma.map((s) => Math.min(width, Math.max(minSigma, s))), width];
    const total = n + priorWeight;
    this.weights = [...observed.map(() => 1 / total), priorWeight / total];
    // Log of each kernel's mass inside [lo, hi], to renormalise the truncation.
    this.logNorm = this.mus.map((mu, i) => Math.log(Math.max(1e-300, normalCdf((hi - mu) / this.sigmas[i]) - normalCdf((lo - mu) / this.sigmas[i]))));
  }
  sample(rand: Rng): number {
    let u = rand();
    let i = 0;
    for (; i < this.weights.length - 1; i++) {
      u -= this.weights[i];
      if (u < 0) break;
    }
    const mu = this.mus[i];
    const s = this.sigmas[i];
    // Rejection from the untruncated normal: each kernel keeps at least ~1/3 of its mass inside (mu in range, sigma <= width).
    for (let tries = 0; tries < 100; tries++) {
      const x = mu + s * standardNormal(rand);
      if (x >= this.lo && x <= this.hi) return x;
    }
    return Math.min(this.hi, Math.max(this.lo, mu));
  }
  logPdf(x: number): number {
    const terms = this.mus.map((mu, i) => {
      const z = (x - mu) / this.sigmas[i];
      return Math.log(this.weights[i]) - 0.5 * z * z - Math.log(this.sigmas[i] * Math.sqrt(2 * Math.PI)) - this.logNorm[i];
    });
    return logSumExp(terms);
  }
}

function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  if (!Number.isFinite(m)) return m;
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

/** Box–Muller from two uniforms; 1 − u keeps log away from 0. */
function standardNormal(rand: Rng): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Φ(z) via erf (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7): plenty for a density ratio. */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}
