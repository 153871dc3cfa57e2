import type { DatasetSpec, NumericRange, SweepSpec, UnfreezeSpec } from '../spec/sweep-spec.js';
import type { Rng } from '../../../worker/src/data/prng.js';
import type { SearchPoint } from './searcher.js';

/** One axis of the search space: a list of values to choose from, or a numeric range. */
export type Axis = { kind: 'choice'; values: readonly unknown[] } | { kind: 'range'; range: NumericRange };

/** The axes of a point, in a fixed order. */
export const AXIS_NAMES = ['dataset', 'backbone', 'unfreeze', 'learningRate', 'dropout'] as const;
export type AxisName = (typeof AXIS_NAMES)[number];

/** The spec's axes; lists become choices, ranges stay ranges. */
export function axesOf(spec: SweepSpec): Record<AxisName, Axis> {
  const choice = (values: readonly unknown[]): Axis => ({ kind: 'choice', values });
  return {
    dataset: choice(spec.datasets),
    backbone: choice(spec.backbones),
    unfreeze: choice(spec.unfreeze),
    learningRate: spec.learningRateRange ? { kind: 'range', range: spec.learningRateRange } : choice(spec.learningRates),
    dropout: spec.dropoutRange ? { kind: 'range', range: spec.dropoutRange } : choice(spec.dropouts),
  };
}

/** Whether any axis is continuous (then points are sampled, not enumerated). */
export const hasRanges = (spec: SweepSpec) => Boolean(spec.learningRateRange || spec.dropoutRange);

/** Range bounds in the space the sampler works in: log for log ranges. */
export const toInternal = (r: NumericRange, x: number) => (r.log ? Math.log(x) : x);
export const fromInternal = (r: NumericRange, y: number) => {
  // exp(log(x)) may land a hair outside [min, max]: clamp so every suggestion passes the spec's own bounds.
  const x = r.log ? Math.exp(y) : y;
  return Math.min(r.max, Math.max(r.min, x));
};

/** A uniform draw from one axis (log-uniform for log ranges). */
export function sampleAxis(axis: Axis, rand: Rng): unknown {
  if (axis.kind === 'choice') return axis.values[Math.floor(rand() * axis.values.length)];
  const lo = toInternal(axis.range, axis.range.min);
  const hi = toInternal(axis.range, axis.range.max);
  return fromInternal(axis.range, lo + rand() * (hi - lo));
}

/** Builds a point from per-axis values. */
export function pointFrom(values: Record<AxisName, unknown>): SearchPoint {
  return {
    dataset: values.dataset as DatasetSpec,
    backbone: values.backbone as string,
    unfreeze: values.unfreeze as UnfreezeSpec,
    learningRate: values.learningRate as number,
    dropout: values.dropout as number,
  };
}

/** A point drawn uniformly from the whole space, axis by axis. */
export function samplePoint(spec: SweepSpec, rand: Rng): SearchPoint {
  const axes = axesOf(spec);
  const v = {} as Record<AxisName, unknown>;
  for (const name of AXIS_NAMES) v[name] = sampleAxis(axes[name], rand);
  return pointFrom(v);
}
