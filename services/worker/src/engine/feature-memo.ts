import * as tf from '@tensorflow/tfjs';
import type { Splits } from './trial-features.js';

/** Frozen-prefix outputs of one (backbone, weights, input size, cut, dataset, split) key. */
export interface MemoFeatures {
  /** Pooled backbone features per split (the head's input). */
  pooled: Splits<tf.Tensor>;
  /** The cut layer's activations per split (the fine-tune tail's input), when a cut was asked for. */
  activations: Splits<tf.Tensor> | null;
  /** Augmented passes 1.. of the training split (pass 0 is `pooled.train` / `activations.train`). */
  extraTrainPasses?: { pooled: tf.Tensor[]; activations: tf.Tensor[] | null };
}

export interface FeatureMemoStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
}

/** Every tensor of an entry, once. */
export const memoTensors = (f: MemoFeatures): tf.Tensor[] => [
  f.pooled.train, f.pooled.val, f.pooled.test,
  ...(f.activations ? [f.activations.train, f.activations.val, f.activations.test] : []),
  ...(f.extraTrainPasses ? [...f.extraTrainPasses.pooled, ...(f.extraTrainPasses.activations ?? [])] : []),
];
const splitTensors = memoTensors;

/**
 * An in-process LRU of frozen-prefix features, bounded in bytes. Trials of a
 * sweep that share a backbone, a cut point and a dataset (they differ only in
 * learning rate, dropout, head units or the layers above the cut) compute
 * the frozen prefix once per worker instead of once each. Exact, because
 * the prefix runs in inference mode, and augmented views are drawn from the
 * seed and recipe, which are part of the key (augmented-passes.ts).
 *
 * The memo owns what it stores: callers must not dispose tensors they got
 * from `get` or handed to a successful `put`.
 */
export class FeatureMemo {
  private readonly entries = new Map<string, { f: MemoFeatures; bytes: number }>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;

  /** @param maxBytes budget for stored tensors; 0 disables the memo. @default 512 MiB */
  constructor(readonly maxBytes = 512 * 1024 * 1024) {}

  /** Whether `key` is stored, without counting a use (cache-affinity advertisements). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): MemoFeatures | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Map order is insertion order: re-insert to mark as most recently used.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.f;
  }

  /** Stores `f` under `key`, evicting least recently used entries. False (and nothing stored) when it cannot fit. */
  put(key: string, f: MemoFeatures): boolean {
    const bytes = splitTensors(f).reduce((s, t) => s + t.size * 4, 0);
    if (bytes > this.maxBytes || this.entries.has(key)) return false;
    for (const [k, e] of this.entries) {
      if (this.bytes + bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
      tf.dispose(splitTensors(e.f));
    }
    this.entries.set(key, { f, bytes });
    this.bytes += bytes;
    return true;
  }

  stats(): FeatureMemoStats {
    return { entries: this.entries.size, bytes: this.bytes, hits: this.hits, misses: this.misses };
  }

  /** Frees every stored tensor. */
  clear(): void {
    for (const e of this.entries.values()) tf.dispose(splitTensors(e.f));
    this.entries.clear();
    this.bytes = 0;
  }
}
