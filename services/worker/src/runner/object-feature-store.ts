import type { NatsConnection } from '@nats-io/transport-node';
import { StorageType } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { decodeEntry, encodeEntry, type RawTensor } from '../engine/feature-cache/entry-codec.js';
import { FeatureCacheCorruptError } from '../engine/feature-cache/errors.js';
import { featureKeyDigest } from '../engine/feature-cache/feature-key.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';

import { FEATURE_BUCKET } from '../../../coordinator/src/store/feature-bucket.js';

/** Bucket every worker shares (the coordinator creates it when workers may not: TLSWEEP_FEATURE_STORE_MB). */
export { FEATURE_BUCKET };

export interface ObjectFeatureStoreOptions {
  /** Object Store bucket. @default 'tlsweep-features' */
  bucket?: string;
  /** Size cap of the bucket when this worker creates it; the oldest entries are deleted to make room. @default 8 GiB */
  maxBytes?: number;
  /** Entries expire this long after they were written; 0 keeps them until evicted. @default 0 */
  ttlMs?: number;
  /** Bucket replicas when created. @default 1 */
  replicas?: number;
  /** Hears about corrupt entries and evictions. @default ignore */
  onWarning?: (event: string, fields: Record<string, unknown>) => void;
}

export interface ObjectFeatureStoreStats {
  hits: number;
  misses: number;
  writes: number;
  corrupt: number;
  evictions: number;
}

export const DEFAULT_OBJECT_FEATURE_BYTES = 8 * 1024 ** 3;

/**
 * Feature-cache entries in the NATS Object Store, so any worker reuses what
 * another computed. Object name = SHA-256 of the key (keys hold dataset
 * paths and recipes, too long and too free-form for names); the entry bytes
 * are the same as on disk. The Object Store checks its own chunk digest;
 * ours is checked too, so an entry written by a buggy or older writer is
 * never trusted: a corrupt object is deleted and reported as a miss.
 */
export class ObjectFeatureStore implements FeatureStore {
  readonly name = 'object-store';
  private readonly counts: ObjectFeatureStoreStats = { hits: 0, misses: 0, writes: 0, corrupt: 0, evictions: 0 };
  private readonly warn: NonNullable<ObjectFeatureStoreOptions['onWarning']>;

  private constructor(private readonly os: ObjectStore, opts: ObjectFeatureStoreOptions) {
    this.warn = opts.onWarning ?? (() => {});
  }

  /** Opens the bucket, creating it with the size cap when absent. */
  static async open(nc: NatsConnection, opts: ObjectFeatureStoreOptions = {}): Promise<ObjectFeatureStore> {
    const maxBytes = opts.maxBytes ?? DEFAULT_OBJECT_FEATURE_BYTES;
    if (!(Number.isInteger(maxBytes) && maxBytes > 0)) throw new RangeError(`maxBytes must be a positive integer; got ${maxBytes}`);
    const os = await new Objm(nc).create(opts.bucket ?? FEATURE_BUCKET, {
      storage: StorageType.File,
      max_bytes: maxBytes,
      ttl: (opts.ttlMs ?? 0) * 1_000_000,
      replicas: opts.replicas ?? 1,
      description: 'tlsweep frozen-prefix features (see README: Feature cache)',
    });
    return new ObjectFeatureStore(os, opts);
  }

  async get(key: string): Promise<RawTensor[] | undefined> {
    const name = featureKeyDigest(key);
    let bytes: Uint8Array | null;
    try {
      bytes = await this.os.getBlob(name);
    } catch (err) {
      // The Object Store's own digest check failed (or the chunks are gone): same as ours failing.
      if (!/corrupt|digest|missing|not found/i.test((err as Error).message)) throw err;
      return this.dropCorrupt(name, (err as Error).message);
    }
    if (!bytes) {
      this.counts.misses++;
      return undefined;
    }
    try {
      const entry = decodeEntry(bytes, key);
      this.counts.hits++;
      return entry;
    } catch (err) {
      if (!(err instanceof FeatureCacheCorruptError)) throw err;
      return this.dropCorrupt(name, err.message);
    }
  }

  async put(key: string, entry: readonly RawTensor[]): Promise<void> {
    const name = featureKeyDigest(key);
    const bytes = encodeEntry(key, entry);
    const meta = { name, description: key.slice(0, 512) };
    try {
      await this.os.putBlob(meta, bytes);
    } catch (err) {
      if (!/maximum bytes|insufficient resources|exceeded/i.test((err as Error).message)) throw err;
      // The bucket is full (discard: new): make room from the oldest entries and try once more.
      await this.evictFor(bytes.length);
      await this.os.putBlob(meta, bytes);
    }
    this.counts.writes++;
  }

  /** Deletes the object of `key` (tests; an operator clearing one entry). */
  async delete(key: string): Promise<void> {
    await this.os.delete(featureKeyDigest(key)).catch(() => {});
  }

  stats(): ObjectFeatureStoreStats {
    return { ...this.counts };
  }

  private async dropCorrupt(name: string, error: string): Promise<undefined> {
    this.counts.corrupt++;
    this.counts.misses++;
    this.warn('feature_cache.corrupt_entry', { tier: this.name, object: name, error });
    await this.os.delete(name).catch(() => {});
    return undefined;
  }

  /** Deletes the least recently written objects until `incoming` bytes fit under the bucket's cap. */
  private async evictFor(incoming: number): Promise<void> {
    const status = await this.os.status();
    const cap = status.streamInfo.config.max_bytes;
    let used = status.size;
    const objects = (await this.os.list()).filter((o) => !o.deleted).sort((a, b) => Date.parse(a.mtime) - Date.parse(b.mtime));
    for (const o of objects) {
      // Chunks carry headers and the meta record: leave a little slack over the payload size.
      if (cap <= 0 || used + incoming * 1.05 + 4096 <= cap) break;
      await this.os.delete(o.name).catch(() => {});
      used -= o.size;
      this.counts.evictions++;
      this.warn('feature_cache.evicted', { tier: this.name, object: o.name, bytes: o.size });
    }
  }
}
