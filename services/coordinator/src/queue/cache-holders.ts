import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { affinityKeyHash } from './affinity-key.js';

export const CACHE_HOLDERS_BUCKET = 'tlsweep-cache-holders';

export interface CacheHoldersOptions {
  /** How long an advertisement lives unless refreshed: a dead worker drops out after this. @default 30000 ms */
  ttlMs?: number;
  /** KV replicas when created. @default 1 */
  replicas?: number;
}

/** A worker id as a subject token and KV key part: anything outside [A-Za-z0-9_-] becomes '_'. */
export function workerToken(workerId: string): string {
  const t = workerId.replace(/[^A-Za-z0-9_-]/g, '_');
  if (!t) throw new RangeError('worker id must not be empty');
  return t;
}

/**
 * Which workers hold which features (JetStream KV `tlsweep-cache-holders`).
 * A worker advertises the affinity keys (affinity-key.ts) of the features it
 * holds as `h.<keyHash>.<worker>`, plus `w.<worker>` for being alive, and
 * refreshes them well inside the bucket's TTL (its max age), so a worker
 * that dies or is partitioned drops out by itself, without a cleanup step.
 */
export class CacheHolders {
  private constructor(private readonly kv: KV, readonly ttlMs: number) {}

  /**
   * Creates (or opens) the bucket. `create: false` only opens it, for a
   * worker login, which may not create streams: the coordinator creates it.
   */
  static async open(nc: NatsConnection, opts: CacheHoldersOptions & { create?: boolean } = {}): Promise<CacheHolders> {
    const ttlMs = opts.ttlMs ?? 30_000;
    if (!(Number.isInteger(ttlMs) && ttlMs >= 100)) throw new RangeError(`ttlMs must be an integer >= 100; got ${ttlMs}`);
    const kvm = new Kvm(jetstream(nc));
    const kv = opts.create === false ? await kvm.open(CACHE_HOLDERS_BUCKET) : await kvm.create(CACHE_HOLDERS_BUCKET, { history: 1, ttl: ttlMs, replicas: opts.replicas ?? 1 });
    return new CacheHolders(kv, ttlMs);
  }

  /** Marks `workerId` alive and holding `keys` (refresh at least every ttlMs / 3). */
  async advertise(workerId: string, keys: Iterable<string>): Promise<void> {
    const w = workerToken(workerId);
    const at = JSON.stringify({ worker: workerId, atMs: Date.now() });
    await this.kv.put(`w.${w}`, at);
    for (const k of new Set(keys)) await this.kv.put(`h.${affinityKeyHash(k)}.${w}`, at);
  }

  /** Withdraws some keys (their features were evicted); the worker stays alive. */
  async forget(workerId: string, keys: Iterable<string>): Promise<void> {
    const w = workerToken(workerId);
    for (const k of new Set(keys)) await this.kv.delete(`h.${affinityKeyHash(k)}.${w}`).catch(() => {});
  }

  /** Withdraws everything `workerId` advertised (a draining worker). */
  async withdraw(workerId: string, keys: Iterable<string>): Promise<void> {
    const w = workerToken(workerId);
    for (const k of new Set(keys)) await this.kv.delete(`h.${affinityKeyHash(k)}.${w}`).catch(() => {});
    await this.kv.delete(`w.${w}`).catch(() => {});
  }

  /** Worker tokens that advertised `key` and are still alive. */
  async holdersOf(key: string): Promise<string[]> {
    const prefix = `h.${affinityKeyHash(key)}.`;
    const out: string[] = [];
    for await (const k of await this.kv.keys(`${prefix}*`)) {
      const w = k.slice(prefix.length);
      if (await this.isAlive(w)) out.push(w);
    }
    return out.sort();
  }

  /** Whether the worker with this token refreshed its advertisement within the TTL. */
  async isAlive(token: string): Promise<boolean> {
    const e = await this.kv.get(`w.${token}`);
    return !!e && e.operation === 'PUT' && Date.now() - e.created.getTime() <= this.ttlMs;
  }
}
