/** Finite values only: a NaN metric (diverged trial) must not move a cutoff, as numpy's nan* functions ignore it. */
const finite = (xs: readonly number[]) => xs.filter((x) => Number.isFinite(x));

/**
 * The q-th percentile (0..100) with linear interpolation between closest
 * ranks (numpy's default method), ignoring non-finite values; NaN when none.
 */
export function percentile(xs: readonly number[], q: number): number {
  const v = finite(xs).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const rank = (q / 100) * (v.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return v[lo] + (v[hi] - v[lo]) * (rank - lo);
}

export const median = (xs: readonly number[]) => percentile(xs, 50);

/** Arithmetic mean of the finite values; NaN when none. */
export function mean(xs: readonly number[]): number {
  const v = finite(xs);
  return v.length === 0 ? NaN : v.reduce((s, x) => s + x, 0) / v.length;
}
