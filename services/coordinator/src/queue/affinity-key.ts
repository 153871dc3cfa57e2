import { createHash } from 'node:crypto';
import { augmentationKey, isIdentityAugmentation } from '../../../worker/src/engine/augment-config.js';
import { backboneInfo } from '../../../worker/src/engine/backbones/catalog.js';
import { unfreezeLabel, unfreezesAnything } from '../../../worker/src/engine/recipe-options.js';
import type { TrialConfig } from '../spec/sweep-spec.js';

/**
 * Which frozen-prefix features a trial needs, computed from its config
 * alone (no tfjs, no model): the coordinator routes on it and a worker
 * advertises it for the trials whose features it holds. Trials with equal
 * keys are guaranteed the same feature-cache key on any worker (same
 * backbone weights, size, unfreeze depth, data and augmented views); the
 * converse does not hold, since two unfreeze depths can share a clean cut,
 * which only costs a missed routing chance, never a wrong result: the
 * worker always looks features up by the exact key (feature-key.ts).
 */
export function affinityKeyOf(c: TrialConfig): string {
  const info = backboneInfo(c.backbone);
  // Random-init backbones are drawn from the trial seed; bundled weights are the same for every seed.
  // A graph backbone's weights are its GraphModel (with the node and preprocessing that decide its features).
  const weights = c.graph ? `graph=${sortedJson(c.graph)}` : info?.pretrained ? 'bundled' : `seed=${c.seed}`;
  const size = c.imageSize ?? info?.defaultSize ?? 'default';
  const depth = unfreezesAnything(c.unfreeze) && c.fineTuneEpochs > 0 ? `unfreeze=${unfreezeLabel(c.unfreeze)}` : 'head';
  const aug = c.augmentation && !isIdentityAugmentation(c.augmentation) ? `|${augmentationKey(c.augmentation)}|seed=${c.seed}` : '';
  const data = sortedJson({ dataset: c.dataset, split: c.split, seed: c.seed });
  return `${c.backbone}|${weights}|${size}|${depth}|${data}${aug}`;
}

/** Short, subject- and KV-safe digest of an affinity key. */
export function affinityKeyHash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 32);
}

function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${sortedJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
