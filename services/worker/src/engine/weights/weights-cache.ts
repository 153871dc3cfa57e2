import type { WeightsArtifacts } from './read-weights.js';

/**
 * Weights read from the Object Store, kept per process so that a sweep's
 * trials on one worker download a backbone's weights once. Keyed by the
 * stored object's identity (a re-push makes a new key); least recently used
 * entries go first. Entries are read-only: loaders decode from them and copy.
 */
export class WeightsCache {
  private readonly entries = new Map<string, WeightsArtifacts>();
  private bytes = 0;

  /** @param maxBytes Weight bytes kept at most; 0 keeps nothing. */
  constructor(readonly maxBytes: number) {}

  get(key: string): WeightsArtifacts | undefined {
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  /** Stores `a` unless it alone exceeds `maxBytes`, evicting older entries. */
  put(key: string, a: WeightsArtifacts): void {
    const size = a.data.byteLength;
    if (size > this.maxBytes || this.entries.has(key)) return;
    for (const [k, e] of this.entries) {
      if (this.bytes + size <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.data.byteLength;
    }
    this.entries.set(key, a);
    this.bytes += size;
  }

  stats(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }
}
