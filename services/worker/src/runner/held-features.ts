import { existsSync } from 'node:fs';
import { affinityKeyOf, type CacheHolders, type Logger, type TrialConfig } from '../../../coordinator/src/index.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import { DiskFeatureStore } from '../engine/feature-cache/disk-cache.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';

/**
 * The features this worker holds locally (memory memo or disk tier), by the
 * affinity key the coordinator routes on, advertised in the cache-holders
 * KV for cache-affinity dispatch. Advertisements are refreshed every third
 * of the bucket's TTL; an affinity key whose feature entries were all
 * evicted (LRU) is withdrawn at the next refresh, and everything is
 * withdrawn on shutdown. The shared Object Store tier does not count: any
 * worker can read it, so it is no reason to route to this one.
 */
export class HeldFeatures {
  /** Affinity key → the feature-cache keys (feature-key.ts) that back it here. */
  private readonly held = new Map<string, Set<string>>();
  /** Feature-cache key → seconds this worker took to compute it. */
  private readonly buildSeconds = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly disk: DiskFeatureStore[];

  constructor(
    private readonly holders: CacheHolders,
    private readonly workerId: string,
    private readonly local: { memo?: FeatureMemo; stores?: readonly FeatureStore[] },
    private readonly log: Logger,
    /**
     * Only features that took at least this long to compute are advertised: a unit routed to a
     * holder can wait up to about a second for it to look at its inbox (its shared pull slice),
     * which features cheaper than that do not repay. @default 2000 ms
     */
    private readonly minBuildMs = 2000,
  ) {
    this.disk = (local.stores ?? []).filter((s): s is DiskFeatureStore => s instanceof DiskFeatureStore);
  }

  /** Starts refreshing (and says this worker is alive). */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch((err) => this.log.warn('worker.advertise_failed', { error: (err as Error).message })), Math.max(100, Math.floor(this.holders.ttlMs / 3)));
    this.timer.unref();
  }

  /**
   * A unit ran here and used these feature entries (`computed`: the ones it
   * built, with the seconds each took): its trials' affinity keys are held
   * now, if those features were worth routing for (minBuildMs).
   */
  async add(configs: readonly TrialConfig[], featureKeys: ReadonlySet<string>, computed: ReadonlyMap<string, number> = new Map()): Promise<void> {
    if (featureKeys.size === 0) return;
    for (const [f, seconds] of computed) this.buildSeconds.set(f, Math.max(seconds, this.buildSeconds.get(f) ?? 0));
    const costly = [...featureKeys].some((f) => (this.buildSeconds.get(f) ?? 0) * 1000 >= this.minBuildMs);
    let added = false;
    for (const c of configs) {
      const k = affinityKeyOf(c);
      const set = this.held.get(k);
      if (!set && !costly) continue;
      const s = set ?? new Set<string>();
      for (const f of featureKeys) s.add(f);
      this.held.set(k, s);
      added ||= !set;
    }
    if (added) await this.refresh();
  }

  /** Affinity keys advertised now. */
  keys(): string[] {
    return [...this.held.keys()];
  }

  /** Drops keys whose entries were evicted, then advertises the rest (and that this worker is alive). */
  async refresh(): Promise<void> {
    const gone: string[] = [];
    for (const [k, features] of this.held) {
      for (const f of [...features]) if (!this.isLocal(f)) features.delete(f);
      if (features.size === 0) gone.push(k);
    }
    for (const k of gone) this.held.delete(k);
    for (const f of [...this.buildSeconds.keys()]) if (![...this.held.values()].some((set) => set.has(f))) this.buildSeconds.delete(f);
    if (gone.length > 0) {
      await this.holders.forget(this.workerId, gone);
      this.log.info('worker.features_withdrawn', { keys: gone.length, reason: 'evicted' });
    }
    await this.holders.advertise(this.workerId, this.held.keys());
  }

  /** Stops refreshing and withdraws everything (a draining worker). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.holders.withdraw(this.workerId, this.held.keys()).catch(() => {});
    this.held.clear();
  }

  private isLocal(featureKey: string): boolean {
    if (this.local.memo?.has(featureKey)) return true;
    return this.disk.some((d) => existsSync(d.pathOf(featureKey)));
  }
}
