import type { RawTensor } from './entry-codec.js';
import type { FeatureStore } from './feature-store.js';

/** What happened to one trial's feature lookup, for logs, metrics and tests. */
export type FeatureCacheEvent =
  | { type: 'hit'; tier: string; key: string }
  | { type: 'computed'; key: string; seconds: number }
  | { type: 'store_failed'; tier: string; op: 'get' | 'put'; key: string; error: string };

export type FeatureCacheListener = (e: FeatureCacheEvent) => void;

/**
 * Looks `key` up in `stores`, fastest first. A hit is copied into the faster
 * stores that missed (an Object Store hit lands on local disk). A failing
 * store counts as a miss: a cache may slow a trial down, never fail it.
 */
export async function readThrough(stores: readonly FeatureStore[], key: string, emit: FeatureCacheListener): Promise<RawTensor[] | undefined> {
  for (let i = 0; i < stores.length; i++) {
    let entry: RawTensor[] | undefined;
    try {
      entry = await stores[i].get(key);
    } catch (err) {
      emit({ type: 'store_failed', tier: stores[i].name, op: 'get', key, error: (err as Error).message });
    }
    if (!entry) continue;
    emit({ type: 'hit', tier: stores[i].name, key });
    await writeThrough(stores.slice(0, i), key, entry, emit);
    return entry;
  }
  return undefined;
}

/** Stores `entry` in every store; failures are reported, not thrown. */
export async function writeThrough(stores: readonly FeatureStore[], key: string, entry: readonly RawTensor[], emit: FeatureCacheListener): Promise<void> {
  for (const store of stores) {
    try {
      await store.put(key, entry);
    } catch (err) {
      emit({ type: 'store_failed', tier: store.name, op: 'put', key, error: (err as Error).message });
    }
  }
}
