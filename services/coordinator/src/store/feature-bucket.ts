import type { NatsConnection } from '@nats-io/transport-node';
import { StorageType } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';

/** The workers' shared feature-cache bucket (services/worker/src/runner/object-feature-store.ts reads and writes it). */
export const FEATURE_BUCKET = 'tlsweep-features';

export interface FeatureBucketOptions {
  /** Size cap of the bucket; workers evict the oldest entries to stay under it. */
  maxBytes: number;
  /** Stream replicas. @default 1 */
  replicas?: number;
}

/**
 * Creates the shared feature-cache bucket when absent (an existing one is
 * left as it is). The coordinator does this at start because a worker that
 * logs in with the restricted `worker` NATS user (deploy/nats) may read and
 * write the bucket but not create streams; the worker then only opens it.
 * Same stream settings as a worker creating it itself (no auth, local use).
 */
export async function ensureFeatureBucket(nc: NatsConnection, o: FeatureBucketOptions): Promise<void> {
  if (!(Number.isInteger(o.maxBytes) && o.maxBytes > 0)) throw new RangeError(`maxBytes must be a positive integer; got ${o.maxBytes}`);
  await new Objm(nc).create(FEATURE_BUCKET, {
    storage: StorageType.File,
    max_bytes: o.maxBytes,
    replicas: o.replicas ?? 1,
    description: 'tlsweep frozen-prefix features (see README: Feature cache)',
  });
}
