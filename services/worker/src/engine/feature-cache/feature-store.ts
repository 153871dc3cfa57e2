import type { RawTensor } from './entry-codec.js';

/**
 * A place frozen-prefix features outlive one process in: local disk, the
 * NATS Object Store. Entries are plain named float32 arrays, so a store
 * needs neither tfjs nor the engine, and the engine needs no NATS.
 *
 * Implementations verify what they read (entry-codec.ts) and drop a corrupt
 * entry instead of returning it; `get` answers undefined for a miss.
 */
export interface FeatureStore {
  /** Short name for logs and stats: 'disk', 'object-store'. */
  readonly name: string;
  get(key: string): Promise<RawTensor[] | undefined>;
  put(key: string, entry: readonly RawTensor[]): Promise<void>;
}
