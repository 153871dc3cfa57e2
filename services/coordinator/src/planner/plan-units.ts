import { backboneInfo } from '../../../worker/src/engine/backbones/catalog.js';
import { catalogCut } from '../../../worker/src/engine/backbones/catalog-cut.js';
import { unfreezeLabel, unfreezesAnything } from '../../../worker/src/engine/recipe-options.js';
import type { FuseSpec, TrialConfig } from '../spec/sweep-spec.js';

/** Trials that one worker runs together: they share the frozen features (and one queue message). */
export interface WorkUnit {
  /** The message id on the queue: the trial id for a unit of one (as before units existed). */
  unitId: string;
  /** In the order the worker runs them: fusable groups next to each other, by trial index within. */
  trialIds: string[];
}

/** JSON with sorted keys, so equal values give equal keys whatever order their fields were written in. */
function stableJson(x: unknown): string {
  if (x === null || typeof x !== 'object') return JSON.stringify(x) ?? 'null';
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  const o = x as Record<string, unknown>;
  return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(',')}}`;
}

/**
 * Everything that determines a trial's frozen features: backbone and its
 * weights (with them the preprocessing; a graph backbone's GraphModel spec), input size, cut point, dataset,
 * split and seed, augmentation recipe and passes. Trials with equal keys can
 * share one computation of the frozen prefix. The cut comes from the catalog
 * (no TensorFlow.js); when the catalog cannot resolve it, the depth as written
 * stands in (fewer trials share, never wrongly).
 */
export function featureKey(c: TrialConfig): string {
  const info = backboneInfo(c.backbone);
  const cut = catalogCut(c.backbone, c.unfreeze, c.fineTuneEpochs);
  return stableJson({
    backbone: c.backbone,
    // A graph backbone's label is the user's: its model, feature node and preprocessing decide the features.
    graph: c.graph,
    pretrained: info?.pretrained ?? null,
    imageSize: c.imageSize ?? info?.defaultSize ?? null,
    cut: cut ?? `unfreeze:${unfreezeLabel(c.unfreeze)}`,
    dataset: c.dataset,
    split: c.split,
    seed: c.seed,
    augmentation: c.augmentation ?? null,
  });
}

/**
 * Trials with equal fusion keys differ only in learning rate, dropout or head
 * units: the same features, depth, epochs, batches and recipe, so they can
 * train in one pass over each batch (engine/fused-trials.ts).
 */
export function fusionKey(c: TrialConfig): string {
  const { trialId: _t, sweepId: _s, index: _i, learningRate: _lr, dropout: _d, headUnits: _h, datasetLabel: _l, ...rest } = c;
  return `${featureKey(c)}|${stableJson({ ...rest, recipe: rest.recipe ?? null, augmentation: rest.augmentation ?? null })}`;
}

/** `items` grouped by `key`, groups in order of first appearance. */
function groupBy<T>(items: readonly T[], key: (x: T) => string): T[][] {
  const groups = new Map<string, T[]>();
  for (const x of items) {
    const k = key(x);
    const g = groups.get(k);
    if (g) g.push(x);
    else groups.set(k, [x]);
  }
  return [...groups.values()];
}

/** Whether a trial trains its head only (nothing unfrozen, or no fine-tune epochs): its phase 1 is all it does. */
export function isHeadOnly(c: TrialConfig): boolean {
  return !unfreezesAnything(c.unfreeze) || c.fineTuneEpochs === 0;
}

/**
 * The fusion key of a trial as its phase 1 sees it: fine-tune settings taken
 * out. Phase 1 trains the head on the pooled output of the whole frozen
 * backbone, the same tensor whatever the cut, so a head-only trial and a
 * fine-tune trial with equal head fusion keys can fuse their phase 1
 * (engine/fused-trials.ts), and with equal learning rate, dropout and head
 * units share it outright.
 */
export function headFusionKey(c: TrialConfig): string {
  return fusionKey({ ...c, unfreeze: 0, fineTuneEpochs: 0, fineTuneLrFactor: 0 });
}

/**
 * `configs` split into fusable groups (equal fusion keys), in order of first
 * appearance. With `shareHeads`, head-only groups join the first fine-tune
 * group with the same head fusion key (they ride on its phase 1).
 */
export function fusableGroups<T extends TrialConfig>(configs: readonly T[], opts: { shareHeads?: boolean } = {}): T[][] {
  const groups = groupBy(configs, fusionKey);
  if (!opts.shareHeads) return groups;
  const hosts = new Map<string, T[]>();
  for (const g of groups) if (!isHeadOnly(g[0]) && !hosts.has(headFusionKey(g[0]))) hosts.set(headFusionKey(g[0]), g);
  const out: T[][] = [];
  for (const g of groups) {
    const host = isHeadOnly(g[0]) ? hosts.get(headFusionKey(g[0])) : undefined;
    if (host) host.push(...g);
    else out.push(g);
  }
  return out;
}

/**
 * Feature groups with head-only trials moved into a fine-tune group of the
 * same head fusion key (fuse.shareHeads): their pooled features come from
 * that group's cut and their phase 1 fuses with (or is) its phase 1, so they
 * cost little more than evaluation. Of several such groups the one that
 * fine-tunes the fewest layers (deepest cut) takes them: it has the least
 * work of its own, which keeps units even across workers.
 */
function attachHeadOnly(groups: TrialConfig[][]): TrialConfig[][] {
  const tuned = groups.filter((g) => !isHeadOnly(g[0]));
  const cutIndex = (g: TrialConfig[]) => {
    const cut = catalogCut(g[0].backbone, g[0].unfreeze, g[0].fineTuneEpochs);
    return typeof cut === 'number' ? cut : -1;
  };
  const out: TrialConfig[][] = [];
  for (const g of groups) {
    if (!isHeadOnly(g[0])) {
      out.push(g);
      continue;
    }
    const left: TrialConfig[] = [];
    for (const c of g) {
      const key = headFusionKey(c);
      let best: TrialConfig[] | null = null;
      for (const t of tuned) if (t.some((x) => headFusionKey(x) === key) && (!best || cutIndex(t) > cutIndex(best))) best = t;
      if (best) best.push(c);
      else left.push(c);
    }
    if (left.length > 0) out.push(left);
  }
  return out;
}

/** The queue message id of a unit: its first trial's id, marked with the others' count when there are more. */
export function unitIdOf(trialIds: readonly string[]): string {
  return trialIds.length === 1 ? trialIds[0] : `${trialIds[0]}+${trialIds.length - 1}`;
}

/**
 * Groups a sweep's trials into work units by feature key, each at most
 * `min(fuse.maxTrials, ⌊maxParallel / 2⌋)` trials (at least 1), so that at
 * least two units can be in flight and a sweep still spreads over workers;
 * an over-full key is cut into near-equal units (18 at 8 → 6+6+6),
 * fusable groups kept together as far as the cut allows. With
 * `fuse.shareHeads`, head-only trials first join a fine-tune feature group
 * that shares their phase 1 (attachHeadOnly). `fuse: null` gives
 * one trial per unit. Pure and deterministic: a restarted coordinator plans
 * the same units.
 */
export function planUnits(configs: readonly TrialConfig[], fuse: FuseSpec | null, maxParallel: number): WorkUnit[] {
  const sorted = [...configs].sort((a, b) => a.index - b.index);
  if (!fuse) return sorted.map((c) => ({ unitId: c.trialId, trialIds: [c.trialId] }));
  const cap = Math.max(1, Math.min(fuse.maxTrials, Math.floor(maxParallel / 2)));
  const units: WorkUnit[] = [];
  const byFeature = groupBy(sorted, featureKey);
  for (const same of fuse.shareHeads ? attachHeadOnly(byFeature) : byFeature) {
    const ordered = fusableGroups(same, { shareHeads: fuse.shareHeads }).flat();
    const count = Math.ceil(ordered.length / cap);
    const size = Math.ceil(ordered.length / count);
    for (let i = 0; i < ordered.length; i += size) {
      const trialIds = ordered.slice(i, i + size).map((c) => c.trialId);
      units.push({ unitId: unitIdOf(trialIds), trialIds });
    }
  }
  return units;
}
