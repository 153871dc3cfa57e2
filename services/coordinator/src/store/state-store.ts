import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { SWEEPS_BUCKET, TRIALS_BUCKET } from '../queue/names.js';
import { TERMINAL_TRIAL_STATUSES, type SweepRecord, type TrialRecord } from '../records.js';
import { applyEpochEntries, EpochLog, type EpochEntry } from './epoch-log.js';

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

  private constructor(private readonly sweeps: KV, private readonly trials: KV, private readonly epochs: EpochLog) {}

  static async open(nc: NatsConnection, opts: StateStoreOptions = {}): Promise<StateStore> {
    const kvm = new Kvm(jetstream(nc));
    const replicas = opts.replicas ?? 1;
    const sweeps = await kvm.create(SWEEPS_BUCKET, { history: 1, replicas });
    const trials = await kvm.create(TRIALS_BUCKET, { history: 1, replicas });
    const epochs = await EpochLog.open(nc, { replicas });
    return new StateStore(sweeps, trials, epochs);
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

  /**
   * Stores one epoch of a running trial without rewriting its record: the
   * entry goes to the epoch log (store/epoch-log.ts), which loadTrials lays
   * over the record. Resolves once JetStream has stored it.
   */
  appendEpoch(t: TrialRecord, e: Omit<EpochEntry, 'trialId'>): Promise<void> {
    return this.epochs.append(t.config.sweepId, { trialId: t.config.trialId, ...e });
  }

  /** Drops a finished trial's logged epochs (its KV record holds them all now). */
  purgeEpochs(t: TrialRecord): Promise<void> {
    return this.epochs.purge(t.config.sweepId, t.config.trialId);
  }

  async loadSweeps(): Promise<SweepRecord[]> {
    return loadAll<SweepRecord>(this.sweeps);
  }

  /**
   * Every trial as last stored: its KV record with the epochs its current
   * attempt logged since laid over it. Log entries of trials that ended are
   * purged (a crash between the final write and the purge leaves them).
   */
  async loadTrials(onPurgeError: (err: unknown) => void = () => {}): Promise<TrialRecord[]> {
    const [trials, logged] = await Promise.all([loadAll<TrialRecord>(this.trials), this.epochs.loadAll()]);
    for (const t of trials) {
      const entries = logged.get(t.config.trialId);
      if (!entries) continue;
      if (TERMINAL_TRIAL_STATUSES.has(t.status)) void this.purgeEpochs(t).catch(onPurgeError);
      else applyEpochEntries(t, entries);
    }
    return trials;
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
