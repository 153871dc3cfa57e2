import type { FieldViolation } from '../errors.js';
import { SPEC_DEFAULTS, type NumericRange, type SchedulerMetricName, type TpeSpec } from './sweep-spec.js';

/** Whether a spec value is written as a range `{ min, max, ... }` rather than a list. */
export const isRangeInput = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/**
 * Validates a numeric range axis. `bounds` is the axis' allowed interval
 * (open/closed as `ok` says); `log` needs min > 0. Ranges only make sense
 * where values are sampled, so grid refuses them.
 */
export function validateRange(
  raw: Record<string, unknown>, field: string, search: unknown, ok: (n: number) => boolean, allowed: string, v: FieldViolation[],
): NumericRange | undefined {
  if (search !== 'random' && search !== 'tpe') {
    v.push({ field, message: `a range {min, max} needs search: random or tpe; grid requires a list of values` });
    return undefined;
  }
  const before = v.length;
  for (const k of Object.keys(raw)) if (!['min', 'max', 'log'].includes(k)) v.push({ field: `${field}.${k}`, message: 'unknown field; allowed: min, max, log' });
  const bound = (k: 'min' | 'max') => {
    const x = raw[k];
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) {
      v.push({ field: `${field}.${k}`, message: `required: ${allowed}; got ${JSON.stringify(x)}` });
      return undefined;
    }
    return x;
  };
  const min = bound('min');
  const max = bound('max');
  const log = raw.log ?? false;
  if (typeof log !== 'boolean') v.push({ field: `${field}.log`, message: `must be true or false; got ${JSON.stringify(log)}` });
  if (min !== undefined && max !== undefined && !(min < max)) v.push({ field: `${field}.max`, message: `must be greater than min (${min}); got ${max}` });
  if (log === true && min !== undefined && min <= 0) v.push({ field: `${field}.min`, message: `must be > 0 with log: true; got ${min}` });
  if (v.length > before) return undefined;
  return { min: min!, max: max!, log: log as boolean };
}

/** Validates `tpe:` (only with search: tpe) and fills Optuna's defaults. */
export function validateTpe(raw: unknown, search: unknown, v: FieldViolation[]): TpeSpec | null {
  if (search !== 'tpe') {
    if (raw !== undefined && raw !== null) v.push({ field: 'tpe', message: `only used with search: tpe; got search: ${JSON.stringify(search ?? 'grid')}` });
    return null;
  }
  const d = SPEC_DEFAULTS.tpe;
  const out: TpeSpec = { nStartupTrials: d.nStartupTrials, gamma: d.gamma, nEiCandidates: d.nEiCandidates, metric: d.metric };
  if (raw === undefined || raw === null) return out;
  if (!isRangeInput(raw)) {
    v.push({ field: 'tpe', message: 'must be a mapping {nStartupTrials, gamma, nEiCandidates, metric}' });
    return out;
  }
  for (const k of Object.keys(raw)) if (!(k in d)) v.push({ field: `tpe.${k}`, message: `unknown field; allowed: ${Object.keys(d).join(', ')}` });
  const int = (k: 'nStartupTrials' | 'nEiCandidates', min: number, max: number) => {
    const x = raw[k];
    if (x === undefined || x === null) return;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) v.push({ field: `tpe.${k}`, message: `must be an integer in ${min}..${max}; got ${JSON.stringify(x)}` });
    else out[k] = x;
  };
  int('nStartupTrials', 1, 10_000);
  int('nEiCandidates', 1, 10_000);
  if (raw.gamma !== undefined && raw.gamma !== null) {
    const x = raw.gamma;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0 || x >= 1) v.push({ field: 'tpe.gamma', message: `must be a number in (0, 1): the fraction of finished trials taken as good; got ${JSON.stringify(x)}` });
    else out.gamma = x;
  }
  if (raw.metric !== undefined && raw.metric !== null) {
    if (raw.metric !== 'val_accuracy' && raw.metric !== 'val_loss') v.push({ field: 'tpe.metric', message: `must be one of: val_accuracy, val_loss; got ${JSON.stringify(raw.metric)}` });
    else out.metric = raw.metric as SchedulerMetricName;
  }
  return out;
}
