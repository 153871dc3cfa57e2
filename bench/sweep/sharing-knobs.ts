import type { SweepBenchOptions } from './options.js';

/**
 * One way tlsweep shares work between trials, and the single switch that
 * turns it off for the naive run and on for the full run. When a new sharing
 * feature lands (a disk / Object Store feature cache, fused trials, the
 * planner), add its row here: both runs then set it, and the bench output
 * lists it with its value per run. Knobs not in this table yet can be passed
 * ad hoc with --naive-env / --tlsweep-env / --naive-spec / --tlsweep-spec;
 * they are listed in the output too.
 */
export interface SharingKnob {
  /** Short name in the output. */
  name: string;
  /** What it shares, in a few words. */
  doc: string;
  /** A worker environment variable, or a sweep-spec field. */
  kind: 'worker-env' | 'spec';
  /** The variable or field name; `parent.field` for a field inside an object-valued spec field set by an earlier row (skipped when that one is not an object in the run). */
  key: string;
  /** Its value in the naive run (every trial alone). */
  off: (o: SweepBenchOptions) => string | boolean | Record<string, unknown>;
  /** Its value in the full run. */
  on: (o: SweepBenchOptions) => string | boolean | Record<string, unknown>;
}

export const SHARING_KNOBS: readonly SharingKnob[] = [
  {
    name: 'frozenPrefixOnce',
    doc: 'a trial runs its frozen layers once and trains every epoch on the stored output; off, they run again on every epoch (train and val), the work Keras model.fit and per-trial tuners do',
    kind: 'worker-env',
    key: 'TLSWEEP_FROZEN_PREFIX',
    off: () => 'every-epoch',
    on: () => 'once',
  },
  {
    name: 'featureMemo',
    doc: 'a worker keeps frozen-prefix features in memory and reuses them for later trials with the same backbone, cut and data',
    kind: 'worker-env',
    key: 'TLSWEEP_FEATURE_MEMO_MB',
    off: () => '0',
    on: () => '512',
  },
  {
    name: 'featureCache',
    doc: 'frozen-prefix features on local disk and in the NATS Object Store, so any worker reuses what another computed',
    kind: 'worker-env',
    key: 'TLSWEEP_FEATURE_CACHE_MB',
    off: () => '0',
    on: () => '4096',
  },
  {
    name: 'sharedFeatureStore',
    doc: 'the NATS Object Store tier of the feature cache (bucket tlsweep-features)',
    kind: 'worker-env',
    key: 'TLSWEEP_FEATURE_STORE_MB',
    off: () => '0',
    on: () => '8192',
  },
  {
    name: 'fusedTrials',
    doc: 'the planner groups trials that share frozen features into work units; trials differing only in learning rate, dropout or head units train fused in one pass',
    kind: 'spec',
    key: 'fuse',
    off: () => false,
    // A unit can hold a fine-tune group (lr × dropout) with its head-only twins (sharedHeadPhase).
    on: (o) => ({ maxTrials: Math.max(8, 2 * o.learningRates.length * o.dropouts.length) }),
  },
  {
    name: 'sharedHeadPhase',
    doc: 'head-only trials join the fine-tune unit that unfreezes the fewest layers; phase 1 (head on the frozen backbone\'s pooled features) trains once per head config and forks into each trial of any depth',
    kind: 'spec',
    key: 'fuse.shareHeads',
    off: () => false,
    on: () => true,
  },
  {
    name: 'earlyStopping',
    doc: 'the coordinator stops trials that fall behind at ASHA rungs (gracePeriod · rf^k epochs)',
    kind: 'spec',
    key: 'scheduler',
    off: () => ({ kind: 'fifo' }),
    on: (o) => ({ kind: 'asha', metric: 'val_accuracy', gracePeriod: o.asha.gracePeriod, reductionFactor: o.asha.reductionFactor }),
  },
];

/** How one tlsweep run is configured: worker environment, spec fields, and the list for the output. */
export interface KnobSettings {
  workerEnv: Record<string, string>;
  spec: Record<string, unknown>;
  /** name → {key, value, on}, extras included (name = key for those). */
  listed: Record<string, { key: string; value: unknown; on: boolean | null }>;
}

/** Sets `key` in `spec`; `parent.field` goes into the object at `parent` (copied), and nowhere when there is none (naive's `fuse: false`). */
function setSpecField(spec: Record<string, unknown>, key: string, value: unknown): void {
  const dot = key.indexOf('.');
  if (dot < 0) {
    spec[key] = value;
    return;
  }
  const parent = spec[key.slice(0, dot)];
  if (parent !== null && typeof parent === 'object') spec[key.slice(0, dot)] = { ...parent, [key.slice(dot + 1)]: value };
}

/** The knob settings of the `naive` (all off) or `tlsweep` (all on) run, plus that run's extras from the command line. */
export function knobSettings(run: 'naive' | 'tlsweep', o: SweepBenchOptions): KnobSettings {
  const out: KnobSettings = { workerEnv: {}, spec: {}, listed: {} };
  for (const k of SHARING_KNOBS) {
    const value = run === 'naive' ? k.off(o) : k.on(o);
    if (k.kind === 'worker-env') out.workerEnv[k.key] = value as string;
    else setSpecField(out.spec, k.key, value);
    out.listed[k.name] = { key: k.key, value, on: run === 'tlsweep' };
  }
  // Extras win over the table; whether they turn sharing on is the user's to say, so `on` is null.
  for (const [key, value] of Object.entries(o.extraEnv[run])) {
    out.workerEnv[key] = value;
    out.listed[key] = { key, value, on: null };
  }
  for (const [key, value] of Object.entries(o.extraSpec[run])) {
    out.spec[key] = value;
    out.listed[key] = { key, value, on: null };
  }
  return out;
}
