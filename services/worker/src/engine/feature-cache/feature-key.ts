import { createHash } from 'node:crypto';

/**
 * The identity of a frozen-prefix feature set, free of tfjs so the
 * coordinator can compute it too (cache-affinity dispatch) and every cache
 * tier (memory, disk, Object Store) uses the same name for the same tensors.
 */
export interface FeatureKeyParts {
  /** Registry name of the backbone. */
  backbone: string;
  /** Where its weights came from (`random init (seed N)` names the seed). */
  weightsSource: string;
  /** [H, W] the backbone runs at. */
  inputSize: readonly number[];
  /** Index of the clean cut the activations come from; null: pooled features of the whole backbone only. */
  cut: number | null;
  /** Identifies the data exactly: dataset spec, split fractions and seed, image size. */
  dataKey: string;
  /** augmentedPassesKey(...) of the active augmentation; null without augmentation. */
  augment: string | null;
}

/**
 * Bumped whenever the way features are computed changes (folding, pooling,
 * augmentation draws), so entries cached by an older engine are never read.
 */
export const FEATURE_KEY_VERSION = 'fc1';

/** The cache key: every input that decides the frozen prefix's output, in one string. */
export function featureKey(p: FeatureKeyParts): string {
  const base = `${FEATURE_KEY_VERSION}|${p.backbone}|${p.weightsSource}|${p.inputSize.join('x')}|cut=${p.cut ?? 'none'}|${p.dataKey}`;
  return p.augment ? `${base}|${p.augment}` : base;
}

/** SHA-256 of a key, hex: a fixed-length name for files and Object Store objects. */
export function featureKeyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
