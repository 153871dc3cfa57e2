import type { NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { EPOCH_STREAM, EPOCH_SUBJECT_PREFIX, epochSubject } from '../queue/names.js';
import type { EpochRecord, TrialRecord } from '../records.js';

/** One epoch report as the log keeps it. */
export interface EpochEntry {
  trialId: string;
  attempt: number;
  metrics: EpochRecord;
  /** The early-stopping decision taken at this epoch, stored with it so a retried report gets the same answer. */
  earlyStop: { epoch: number; reason: string } | null;
}

export interface EpochLogOptions {
  /** Replicas (3 on a clustered JetStream). @default 1 */
  replicas?: number;
  /**
   * Entries older than this are dropped by the server. Entries are purged
   * when their trial ends; this only bounds what a crash could leave behind.
   * @default 30 days
   */
  maxAgeMs?: number;
}

/**
 * The epochs of running trials, as an append-only JetStream stream.
 *
 * Why: rewriting a trial's whole KV record (its history included) for every
 * epoch makes each report cost O(epochs so far), so long trials slow the
 * whole control plane down. An epoch report appends one small entry here
 * instead; the trial's KV record is rewritten at the events that change it
 * otherwise (start of an attempt, end, cancel), always with the full history.
 * A restarted coordinator lays the current attempt's entries over the KV
 * record (StateStore + applyEpochEntries). Entries of a trial are purged once
 * its final record, history and all, is in KV.
 */
export class EpochLog {
  private constructor(private readonly js: JetStreamClient, private readonly jsm: JetStreamManager) {}

  static async open(nc: NatsConnection, opts: EpochLogOptions = {}): Promise<EpochLog> {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(EPOCH_STREAM);
    } catch {
      await jsm.streams.add({
        name: EPOCH_STREAM,
        subjects: [`${EPOCH_SUBJECT_PREFIX}.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: opts.replicas ?? 1,
        max_age: (opts.maxAgeMs ?? 30 * 24 * 3_600_000) * 1_000_000,
      });
    }
    return new EpochLog(jetstream(nc), jsm);
  }

  /** Appends an epoch; resolves once JetStream has stored it. */
  async append(sweepId: string, e: EpochEntry): Promise<void> {
    await this.js.publish(epochSubject(sweepId, e.trialId), JSON.stringify(e));
  }

  /** Drops a trial's entries (its final record holds the history now). */
  async purge(sweepId: string, trialId: string): Promise<void> {
    await this.jsm.streams.purge(EPOCH_STREAM, { filter: epochSubject(sweepId, trialId) });
  }

  /** Every stored entry, oldest first, grouped by trial id. */
  async loadAll(): Promise<Map<string, EpochEntry[]>> {
    const out = new Map<string, EpochEntry[]>();
    const info = await this.jsm.streams.info(EPOCH_STREAM);
    if (info.state.messages === 0) return out;
    const last = info.state.last_seq;
    const consumer = await this.js.consumers.get(EPOCH_STREAM, { deliver_policy: DeliverPolicy.All });
    const msgs = await consumer.consume();
    for await (const m of msgs) {
      const e = m.json<EpochEntry>();
      let list = out.get(e.trialId);
      if (!list) out.set(e.trialId, (list = []));
      list.push(e);
      if (m.seq >= last || m.info.pending === 0) break;
    }
    await msgs.close();
    return out;
  }
}

/**
 * Lays a running trial's logged epochs over its KV record: entries of the
 * attempt that owns the trial replace or add history entries by epoch
 * number (later entries win, as a retried report would); entries of earlier
 * attempts are ignored (the attempt's TrialStarted stored what it kept of
 * them). Derived fields are recomputed as ReportEpoch computes them.
 * @returns whether anything changed.
 */
export function applyEpochEntries(t: TrialRecord, entries: readonly EpochEntry[]): boolean {
  let changed = false;
  for (const e of entries) {
    if (e.attempt !== t.attempt) continue;
    const i = t.history.findIndex((h) => h.epoch === e.metrics.epoch);
    if (i >= 0) t.history[i] = e.metrics;
    else t.history.push(e.metrics);
    t.valAccuracy = e.metrics.valAccuracy;
    t.valLoss = e.metrics.valLoss;
    if (e.earlyStop && !t.earlyStop) t.earlyStop = e.earlyStop;
    changed = true;
  }
  if (changed) {
    t.epochs = t.history.length;
    t.seconds = t.history.reduce((sum, h) => sum + h.seconds, 0);
  }
  return changed;
}
