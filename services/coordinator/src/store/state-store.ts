import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { SWEEPS_BUCKET, TRIALS_BUCKET } from '../queue/names.js';
import type { SweepRecord, TrialRecord } from '../records.js';

/** Options of the KV buckets; defaults suit a single-node dev server. */
export interface StateStoreOptions {
  /** KV replicas (use 3 on a clustered JetStream). @default 1 */
  replicas?: number;
}

/**
 * Durable sweep and trial state in JetStream KV. The coordinator writes
 * here before it changes its in-memory view, so a restart rebuilds exactly
 * what was acknowledged.
 */
export class StateStore {
  /** Trial writes waiting for this event-loop turn to end. */
  private batch: Array<{ key: string; value: string; done: (err?: unknown) => void }> = [];

  private constructor(private readonly sweeps: KV, private readonly trials: KV) {}

  static async open(nc: NatsConnection, opts: StateStoreOptions = {}): Promise<StateStore> {
    const kvm = new Kvm(jetstream(nc));
    const replicas = opts.replicas ?? 1;
    const sweeps = await kvm.create(SWEEPS_BUCKET, { history: 1, replicas });
    const trials = await kvm.create(TRIALS_BUCKET, { history: 1, replicas });
    return new StateStore(sweeps, trials);
  }

  async putSweep(s: SweepRecord): Promise<void> {
    await this.sweeps.put(s.sweepId, JSON.stringify(s));
  }

  /**
   * Writes a trial; resolves once JetStream has acknowledged it (the record
   * is durable), rejects if it did not. Writes made during one event-loop
   * turn (reports that arrived together) are published together at its
   * end, so the client sends them in one socket write instead of one each;
   * every write still waits for its own acknowledgement.
   */
  putTrial(t: TrialRecord): Promise<void> {
    const key = trialKey(t.config.sweepId, t.config.trialId);
    // Serialised now: the caller may change the record again once this resolves.
    const value = JSON.stringify(t);
    return new Promise((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => this.flush());
      this.batch.push({ key, value, done: (err) => (err === undefined ? resolve() : reject(err)) });
    });
  }

  private flush(): void {
    const batch = this.batch;
    this.batch = [];
    for (const w of batch) this.trials.put(w.key, w.value).then(() => w.done(), (err: unknown) => w.done(err ?? new Error('KV put failed')));
  }

  async loadSweeps(): Promise<SweepRecord[]> {
    return loadAll<SweepRecord>(this.sweeps);
  }

  async loadTrials(): Promise<TrialRecord[]> {
    return loadAll<TrialRecord>(this.trials);
  }
}

/** KV keys are subject tokens: the sweep id first lets a watcher filter one sweep. */
export const trialKey = (sweepId: string, trialId: string) => `${sweepId}.${trialId}`;

/** Reads the last value of every key, via a watcher that stops once caught up. */
async function loadAll<T>(kv: KV): Promise<T[]> {
  const status = await kv.status();
  if (status.values === 0) return [];
  const out = new Map<string, T>();
  const iter = await kv.watch({ ignoreDeletes: true });
  for await (const e of iter) {
    if (e.operation === 'PUT') out.set(e.key, e.json<T>());
    else out.delete(e.key);
    // delta counts the entries still pending in the initial snapshot.
    if (e.delta === 0) break;
  }
  iter.stop();
  return [...out.values()];
}
