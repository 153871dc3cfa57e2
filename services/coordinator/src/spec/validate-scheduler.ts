import type { FieldViolation } from '../errors.js';
import { SPEC_DEFAULTS, SPEC_LIMITS, type SchedulerKind, type SchedulerMetricName, type SchedulerSpec } from './sweep-spec.js';

const KINDS: SchedulerKind[] = ['fifo', 'asha', 'median'];
const METRICS: SchedulerMetricName[] = ['val_accuracy', 'val_loss'];
/** Which fields each kind reads; any other is a mistake worth naming (e.g. reductionFactor on median). */
const FIELDS: Record<SchedulerKind, string[]> = {
  fifo: ['kind'],
  asha: ['kind', 'metric', 'gracePeriod', 'reductionFactor', 'maxT'],
  median: ['kind', 'metric', 'gracePeriod', 'minSamples'],
};

/**
 * Validates `scheduler:` and fills defaults. `longestTrial` (headEpochs +
 * fineTuneEpochs) is maxT's default and bounds gracePeriod: a grace period
 * no trial reaches would silently turn the rule off.
 */
export function validateScheduler(raw: unknown, longestTrial: number | undefined, v: FieldViolation[]): SchedulerSpec {
  const d = SPEC_DEFAULTS.scheduler;
  const out: SchedulerSpec = { kind: d.kind, metric: d.metric, gracePeriod: d.gracePeriod, reductionFactor: d.reductionFactor, maxT: longestTrial ?? 1, minSamples: d.minSamples };
  if (raw === undefined || raw === null) return out;
  if (typeof raw === 'string') raw = { kind: raw };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    v.push({ field: 'scheduler', message: `must be a mapping {kind: ${KINDS.join(' | ')}, metric, gracePeriod, ...}` });
    return out;
  }
  const o = raw as Record<string, unknown>;
  const kind = o.kind ?? d.kind;
  if (typeof kind !== 'string' || !KINDS.includes(kind as SchedulerKind)) {
    v.push({ field: 'scheduler.kind', message: `must be one of: ${KINDS.join(', ')}; got ${JSON.stringify(o.kind)}` });
    return out;
  }
  out.kind = kind as SchedulerKind;
  const allowed = FIELDS[out.kind];
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) v.push({ field: `scheduler.${k}`, message: `not used by scheduler kind ${out.kind}; allowed: ${allowed.join(', ')}` });
  }
  const intIn = (field: string, min: number, max: number): number | undefined => {
    const x = o[field];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
      v.push({ field: `scheduler.${field}`, message: `must be an integer in ${min}..${max} (epochs); got ${JSON.stringify(x)}` });
      return undefined;
    }
    return x;
  };
  if (o.metric !== undefined && o.metric !== null) {
    if (typeof o.metric !== 'string' || !METRICS.includes(o.metric as SchedulerMetricName)) {
      v.push({ field: 'scheduler.metric', message: `must be one of: ${METRICS.join(', ')} (accuracy is maximised, loss minimised); got ${JSON.stringify(o.metric)}` });
    } else out.metric = o.metric as SchedulerMetricName;
  }
  const maxEpoch = longestTrial ?? SPEC_LIMITS.maxEpochs;
  out.gracePeriod = intIn('gracePeriod', 1, maxEpoch) ?? out.gracePeriod;
  out.maxT = intIn('maxT', 1, SPEC_LIMITS.maxEpochs) ?? out.maxT;
  out.minSamples = intIn('minSamples', 1, SPEC_LIMITS.maxTrialsPerSweep) ?? out.minSamples;
  if (o.reductionFactor !== undefined && o.reductionFactor !== null) {
    const x = o.reductionFactor;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 1.5 || x > 100) {
      v.push({ field: 'scheduler.reductionFactor', message: `must be a number in [1.5, 100] (keep the top 1/rf at each rung); got ${JSON.stringify(x)}` });
    } else out.reductionFactor = x;
  }
  if (out.kind === 'asha' && out.maxT < out.gracePeriod) {
    v.push({ field: 'scheduler.maxT', message: `must be at least gracePeriod (${out.gracePeriod}); got ${out.maxT}` });
  }
  return out;
}
