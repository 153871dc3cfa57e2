import { EventEmitter } from 'node:events';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { TRIAL_STREAM, WORKER_CONSUMER } from './queue/names.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import { newSweepId, trialIdOf } from './ids.js';
import { KeyedLock } from './keyed-lock.js';
import { queryLeaderboard, type LeaderboardQueryInput, type LeaderboardResult } from './leaderboard/leaderboard.js';
import { silentLogger, type Logger } from './log.js';
import { TrialQueue, type TrialQueueOptions } from './queue/trial-queue.js';
import {
  newTrialRecord,
  TERMINAL_TRIAL_STATUSES,
  type EpochRecord,
  type SweepRecord,
  type TrialRecord,
  type TrialStatus,
} from './records.js';
import { createScheduler } from './schedulers/create-scheduler.js';
import { FifoScheduler, type Scheduler } from './schedulers/scheduler.js';
import { createSearcher } from './searchers/create-searcher.js';
import { expandAll, type SearchPoint, type Searcher } from './searchers/searcher.js';
import { TpeSearcher } from './searchers/tpe.js';
import { parseSweepSpec } from './spec/validate-spec.js';
import { checkFolderDatasets } from './spec/check-folder-datasets.js';
import { datasetLabel, type SweepSpec, type TrialConfig } from './spec/sweep-spec.js';
import type { ClassificationMetrics } from '../../worker/src/engine/metrics.js';
import type { PhaseSeconds } from '../../worker/src/engine/phase-timer.js';
import { StateStore } from './store/state-store.js';
import type { EarlyStopReport } from '../../worker/src/engine/early-stopping.js';
import { unfreezesAnything } from '../../worker/src/engine/recipe-options.js';

export interface CoordinatorOptions {
  nc: NatsConnection;
  /** @default silent */
  log?: Logger;
  queue?: TrialQueueOptions;
  /** KV replicas. @default 1 */
  replicas?: number;
  /** Early-stopping rule for sweeps whose spec names none (`scheduler.kind: fifo`). @default FIFO (never stops) */
  scheduler?: Scheduler;
  /** Where workers keep epoch checkpoints: a trial's is deleted once the trial is terminal. @default none */
  checkpoints?: { delete(trialId: string): Promise<void> };
}

/** What watchers of a sweep receive. */
export interface SweepEvent {
  type: 'trial_queued' | 'trial_started' | 'epoch' | 'trial_finished' | 'trial_failed' | 'trial_stopped' | 'sweep_finished' | 'sweep_cancelled';
  sweepId: string;
  trial?: TrialRecord;
  epoch?: EpochRecord;
  sweep?: SweepRecord;
}

export interface Decision {
  action: 'CONTINUE' | 'STOP';
  reason: string;
}

export interface TrialStartedInput {
  trialId: string; attempt: number; worker: string; backend: string; pretrained: boolean; weightsSource: string;
  /** Epochs this attempt takes from the trial's checkpoint; the history keeps those and drops the rest. @default 0 */
  resumedEpochs?: number;
}
export interface ReportEpochInput { trialId: string; attempt: number; metrics: EpochRecord }
export interface TrialFinishedInput {
  trialId: string; attempt: number; valAccuracy: number; valLoss: number; testAccuracy: number; testLoss: number;
  epochs: number; seconds: number; stopped: boolean; totalParams: number; trainableParams: number; cutLayer: string;
  pretrained?: boolean; weightsSource?: string; backend?: string;
  /** Backbone layers the unfreeze depth resolved to; what early stopping did. Absent from older workers. */
  unfreezeLayers?: number; earlyStops?: EarlyStopReport[];
  testMetrics?: ClassificationMetrics | null; phaseSeconds?: PhaseSeconds | null;
  /** Corrupt or truncated images skipped while loading the dataset. */
  skippedImages?: number;
}
export interface TrialFailedInput {
  trialId: string; attempt: number; error: string; code: string; retrying: boolean;
  /** The loss became NaN or exploded: the trial ends `diverged` (never retried). @default false */
  diverged?: boolean;
}

export type TrialCounts = Record<TrialStatus, number> & { total: number };

/**
 * The coordinator's state machine: sweeps in, trials out to the queue,
 * reports in, leaderboard out. Every change is written to JetStream KV before
 * the in-memory view (and watchers) see it; `start` rebuilds from KV.
 */
// A symbol, so no sweep id can collide with the all-sweeps channel.
const ALL_SWEEPS = Symbol('all sweeps');

export class Coordinator {
  private readonly sweeps = new Map<string, SweepRecord>();
  private readonly trialsBySweep = new Map<string, Map<string, TrialRecord>>();
  private readonly trials = new Map<string, TrialRecord>();
  /** Stream sequence of a queued trial's message → trial id (advisories name the sequence only). */
  private readonly bySeq = new Map<number, string>();
  private advisories: Subscription | null = null;
  private terminated: Subscription | null = null;
  private readonly lock = new KeyedLock();
  private readonly events = new EventEmitter();
  private readonly log: Logger;
  private readonly scheduler: Scheduler;
  /** Each running sweep's own scheduler (ASHA, median), built on first use from the stored histories. */
  private readonly schedulers = new Map<string, Scheduler>();
  /** Incremental (tpe) sweeps' searchers and the trials whose results they were given; rebuilt from KV when absent. */
  private readonly searchers = new Map<string, { searcher: TpeSearcher; fed: Set<string> }>();

  private readonly checkpoints: CoordinatorOptions['checkpoints'];

  private constructor(private readonly store: StateStore, private readonly queue: TrialQueue, opts: CoordinatorOptions) {
    this.log = opts.log ?? silentLogger;
    this.checkpoints = opts.checkpoints;
    this.scheduler = opts.scheduler ?? new FifoScheduler();
    this.events.setMaxListeners(0);
  }

  /** Opens the KV buckets and the queue, rebuilds state, resumes dispatch of running sweeps. */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const store = await StateStore.open(opts.nc, { replicas: opts.replicas });
    const queue = await TrialQueue.open(opts.nc, opts.queue);
    const c = new Coordinator(store, queue, opts);
    await c.rebuild();
    c.watchAdvisories(opts.nc);
    return c;
  }

  /**
   * A trial whose deliveries run out (every worker that took it died or
   * timed out) never reports again, and JetStream keeps its message in the
   * WorkQueue stream: the MAX_DELIVERIES advisory is the only signal. Mark
   * the trial failed and drop the message, so the sweep can finish.
   */
  private watchAdvisories(nc: NatsConnection): void {
    this.advisories = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${TRIAL_STREAM}.${WORKER_CONSUMER}`, {
      callback: (err, msg) => {
        if (err) return;
        const a = msg.json<{ stream_seq: number; deliveries: number }>();
        void this.onDeliveriesExhausted(a.stream_seq, a.deliveries).catch((e) => this.log.error('advisory.failed', { seq: a.stream_seq, error: e }));
      },
    });
    // A worker `term`s a trial that can never succeed after reporting it failed; if that report was
    // lost (coordinator down past the worker's retry window) this advisory is what is left.
    this.terminated = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${TRIAL_STREAM}.${WORKER_CONSUMER}`, {
      callback: (err, msg) => {
        if (err) return;
        const a = msg.json<{ stream_seq: number; deliveries: number; reason?: string }>();
        void this.onTerminated(a.stream_seq, a.deliveries, a.reason ?? '').catch((e) => this.log.error('advisory.failed', { seq: a.stream_seq, error: e }));
      },
    });
  }

  private async onTerminated(seq: number, deliveries: number, reason: string): Promise<void> {
    const trialId = this.bySeq.get(seq);
    const t = trialId ? this.trials.get(trialId) : undefined;
    if (t && !TERMINAL_TRIAL_STATUSES.has(t.status)) {
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        if (TERMINAL_TRIAL_STATUSES.has(t.status)) return;
        await this.updateTrial(t, (x) => {
          x.status = 'failed';
          x.error = `TERMINATED by the worker after ${deliveries} deliveries: ${reason || t.error || 'no reason given'}`;
        });
        this.log.warn('trial.terminated', { sweepId: t.config.sweepId, trialId: t.config.trialId, deliveries, reason });
        this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      });
      await this.afterTerminal(t.config.sweepId);
    }
    await this.queue.remove(seq);
  }

  private async onDeliveriesExhausted(seq: number, deliveries: number): Promise<void> {
    const trialId = this.bySeq.get(seq);
    const t = trialId ? this.trials.get(trialId) : undefined;
    if (t && !TERMINAL_TRIAL_STATUSES.has(t.status)) {
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        if (TERMINAL_TRIAL_STATUSES.has(t.status)) return;
        const last = t.error ? `; last error: ${t.error}` : '; no worker reported an error (killed or timed out)';
        await this.updateTrial(t, (x) => {
          x.status = 'failed';
          x.error = `MAX_DELIVERIES: gave up after ${deliveries} deliveries${last}`;
        });
        this.log.warn('trial.deliveries_exhausted', { sweepId: t.config.sweepId, trialId: t.config.trialId, deliveries });
        this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      });
      await this.afterTerminal(t.config.sweepId);
    }
    // The stream keeps such a message forever otherwise.
    await this.queue.remove(seq);
  }

  /** Stops listening for queue advisories (the NATS connection is the caller's). */
  close(): void {
    this.advisories?.unsubscribe();
    this.advisories = null;
    this.terminated?.unsubscribe();
    this.terminated = null;
  }

  private async rebuild(): Promise<void> {
    const [sweeps, trials] = await Promise.all([this.store.loadSweeps(), this.store.loadTrials()]);
    for (const s of sweeps) this.sweeps.set(s.sweepId, s);
    for (const t of trials) this.index(t);
    let resumed = 0;
    for (const s of this.sweeps.values()) {
      if (s.status === 'cancelled' && s.finishedAtMs === 0) {
        // Crashed half-way through a cancel: finish it.
        await this.cancelWaitingTrials(s.sweepId);
        await this.maybeFinish(s.sweepId);
        continue;
      }
      if (s.status !== 'running') continue;
      await this.reconcileLostMessages(s.sweepId);
      // A crash while a sweep was being written leaves trials missing; the searchers are deterministic, so recreate them.
      const have = this.trialsBySweep.get(s.sweepId)?.size ?? 0;
      if (have < s.trialCount) await this.createTrials(s);
      await this.dispatch(s.sweepId);
      await this.maybeFinish(s.sweepId);
      resumed++;
    }
    this.log.info('coordinator.rebuilt', { sweeps: sweeps.length, trials: trials.length, resumed });
  }

  private index(t: TrialRecord): void {
    this.trials.set(t.config.trialId, t);
    if (t.queueSeq > 0) this.bySeq.set(t.queueSeq, t.config.trialId);
    let m = this.trialsBySweep.get(t.config.sweepId);
    if (!m) this.trialsBySweep.set(t.config.sweepId, (m = new Map()));
    m.set(t.config.trialId, t);
  }

  /**
   * Applies `change` to a trial and writes it to KV. If the write fails the
   * in-memory record is rolled back, so memory never runs ahead of KV (a
   * retried report then finds the trial as KV has it).
   */
  private async updateTrial(t: TrialRecord, change: (t: TrialRecord) => void): Promise<void> {
    const before = structuredClone(t);
    change(t);
    t.updatedAtMs = Date.now();
    try {
      await this.store.putTrial(t);
    } catch (err) {
      Object.assign(t, before);
      throw err;
    }
    this.index(t);
    if (this.checkpoints && TERMINAL_TRIAL_STATUSES.has(t.status) && !TERMINAL_TRIAL_STATUSES.has(before.status)) {
      // Nothing will resume a terminal trial; a checkpoint left behind expires with the bucket's TTL.
      void this.checkpoints.delete(t.config.trialId).catch((err) => this.log.warn('checkpoint.delete_failed', { trialId: t.config.trialId, error: err }));
    }
  }

  private async saveTrial(t: TrialRecord): Promise<void> {
    await this.updateTrial(t, () => {});
  }

  /** Like updateTrial, for the sweep record. */
  private async updateSweep(s: SweepRecord, change: (s: SweepRecord) => void): Promise<void> {
    const before = structuredClone(s);
    change(s);
    try {
      await this.store.putSweep(s);
    } catch (err) {
      Object.assign(s, before);
      throw err;
    }
  }

  private emit(e: SweepEvent): void {
    this.events.emit(e.sweepId, e);
    this.events.emit(ALL_SWEEPS, e);
  }

  /** Trials waiting in the work queue and delivered but unacknowledged (metrics, autoscaling). */
  queueLag(): Promise<{ pending: number; inFlight: number }> {
    return this.queue.consumerLag();
  }

  /** Listens to every sweep's events (metrics, the dashboard's sweep list); returns the unsubscribe function. */
  subscribeAll(fn: (e: SweepEvent) => void): () => void {
    this.events.on(ALL_SWEEPS, fn);
    return () => this.events.off(ALL_SWEEPS, fn);
  }

  /** Listens to one sweep's events; returns the unsubscribe function. */
  subscribe(sweepId: string, fn: (e: SweepEvent) => void): () => void {
    this.events.on(sweepId, fn);
    return () => this.events.off(sweepId, fn);
  }

  // ---------- sweeps ----------

  /** Validates the spec (YAML/JSON), stores the sweep and its trials, queues the first `maxParallel`. */
  async submitSweep(specText: string): Promise<SweepRecord> {
    const spec = parseSweepSpec(specText);
    await checkFolderDatasets(spec);
    const sweepId = newSweepId();
    // An incremental searcher makes its trials as results arrive; the sweep will have exactly maxTrials.
    const trialCount = isIncremental(spec) ? spec.maxTrials! : expandAll(createSearcher(spec)).length;
    const sweep: SweepRecord = { sweepId, spec, status: 'running', trialCount, reason: '', createdAtMs: Date.now(), finishedAtMs: 0 };
    await this.store.putSweep(sweep);
    this.sweeps.set(sweepId, sweep);
    // From here the sweep is stored: failing the call would make a retrying user submit it twice.
    // If writing its trials or queueing them fails, finish that in the background instead.
    try {
      await this.createTrials(sweep);
      await this.dispatch(sweepId);
    } catch (err) {
      this.log.error('sweep.setup_deferred', { sweepId, error: err });
      this.completeSetupLater(sweep);
    }
    this.log.info('sweep.submitted', { sweepId, name: spec.name, trials: trialCount });
    return sweep;
  }

  /** Retries creating and queueing a sweep's trials with capped backoff until it works (restart does the same). */
  private completeSetupLater(sweep: SweepRecord, delayMs = 500): void {
    setTimeout(() => {
      this.createTrials(sweep)
        .then(() => this.dispatch(sweep.sweepId))
        .then(() => this.log.info('sweep.setup_completed', { sweepId: sweep.sweepId }))
        .catch((err) => {
          this.log.error('sweep.setup_deferred', { sweepId: sweep.sweepId, error: err });
          this.completeSetupLater(sweep, Math.min(delayMs * 2, 30_000));
        });
    }, delayMs).unref();
  }

  private async createTrials(sweep: SweepRecord): Promise<void> {
    if (isIncremental(sweep.spec)) return; // dispatch() creates them one by one
    const points = expandAll(createSearcher(sweep.spec));
    const existing = this.trialsBySweep.get(sweep.sweepId);
    const now = Date.now();
    const fresh = points
      .map((p, index) => ({ p, index }))
      .filter(({ index }) => !existing?.has(trialIdOf(sweep.sweepId, index)))
      .map(({ p, index }) => newTrialRecord(trialConfig(sweep.spec, sweep.sweepId, index, p), now));
    // Bounded concurrency: thousands of KV puts at once would only queue in the client.
    for (let i = 0; i < fresh.length; i += 64) await Promise.all(fresh.slice(i, i + 64).map((t) => this.saveTrial(t)));
  }

  getSweep(sweepId: string): SweepRecord {
    const s = this.sweeps.get(sweepId);
    if (!s) throw new NotFoundError('sweep', sweepId);
    return s;
  }

  listSweeps(): SweepRecord[] {
    return [...this.sweeps.values()].sort((a, b) => b.createdAtMs - a.createdAtMs);
  }

  trialsOf(sweepId: string): TrialRecord[] {
    this.getSweep(sweepId);
    return [...(this.trialsBySweep.get(sweepId)?.values() ?? [])].sort((a, b) => a.config.index - b.config.index);
  }

  getTrial(trialId: string): TrialRecord {
    const t = this.trials.get(trialId);
    if (!t) throw new NotFoundError('trial', trialId);
    return t;
  }

  counts(sweepId: string): TrialCounts {
    const c: TrialCounts = { total: 0, pending: 0, queued: 0, running: 0, completed: 0, failed: 0, stopped: 0, cancelled: 0, diverged: 0 };
    for (const t of this.trialsBySweep.get(sweepId)?.values() ?? []) {
      c.total++;
      c[t.status]++;
    }
    // A running tpe sweep has not made all its trials yet: count the rest as pending, so progress reads k/maxTrials.
    const sweep = this.sweeps.get(sweepId);
    if (sweep?.status === 'running' && c.total < sweep.trialCount) {
      c.pending += sweep.trialCount - c.total;
      c.total = sweep.trialCount;
    }
    return c;
  }

  /** The best trial of a sweep by validation accuracy, if any finished. */
  best(sweepId: string): TrialRecord | null {
    let best: TrialRecord | null = null;
    for (const t of this.trialsBySweep.get(sweepId)?.values() ?? []) {
      if ((t.status !== 'completed' && t.status !== 'stopped') || t.valAccuracy === null || !Number.isFinite(t.valAccuracy)) continue;
      if (!best || t.valAccuracy > (best.valAccuracy ?? -1)) best = t;
    }
    return best;
  }

  query(q: LeaderboardQueryInput): LeaderboardResult {
    if (q.sweepId && !this.sweeps.has(q.sweepId)) throw new NotFoundError('sweep', q.sweepId);
    const source = q.sweepId ? (this.trialsBySweep.get(q.sweepId)?.values() ?? []) : this.trials.values();
    return queryLeaderboard(source, q);
  }

  /** Cancels a running sweep: pending and queued trials are cancelled, running ones are told to STOP at their next epoch. */
  async cancelSweep(sweepId: string, reason = 'cancelled by user'): Promise<SweepRecord> {
    const sweep = this.getSweep(sweepId);
    return this.lock.run(`sweep:${sweepId}`, async () => {
      if (sweep.status !== 'running') throw new FailedPreconditionError(`sweep '${sweepId}' is already ${sweep.status}`);
      await this.updateSweep(sweep, (s) => {
        s.status = 'cancelled';
        s.reason = reason;
      });
      await this.cancelWaitingTrials(sweepId);
      this.log.info('sweep.cancelled', { sweepId, reason });
      this.emit({ type: 'sweep_cancelled', sweepId, sweep });
      await this.finishIfDone(sweep);
      return sweep;
    });
  }

  /** Pending and queued trials of a cancelled sweep become cancelled (queued ones leave the stream). */
  private async cancelWaitingTrials(sweepId: string): Promise<void> {
    for (const t of this.trialsBySweep.get(sweepId)?.values() ?? []) {
      if (t.status !== 'pending' && t.status !== 'queued') continue;
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        if (t.status === 'queued' && t.queueSeq > 0) await this.queue.remove(t.queueSeq);
        await this.updateTrial(t, (x) => {
          x.status = 'cancelled';
        });
      });
    }
  }

  // ---------- dispatch ----------

  /**
   * Queues pending trials while fewer than `maxParallel` of the sweep are
   * queued or running; an incremental (tpe) sweep then asks its searcher for
   * new trials to fill the free slots.
   */
  private dispatch(sweepId: string): Promise<void> {
    return this.lock.run(`sweep:${sweepId}`, async () => {
      const sweep = this.sweeps.get(sweepId);
      if (!sweep || sweep.status !== 'running') return;
      const trials = [...(this.trialsBySweep.get(sweepId)?.values() ?? [])].sort((a, b) => a.config.index - b.config.index);
      let inflight = trials.filter((t) => t.status === 'queued' || t.status === 'running').length;
      for (const t of trials) {
        if (inflight >= sweep.spec.maxParallel) break;
        if (t.status !== 'pending') continue;
        await this.queueTrial(t);
        inflight++;
      }
      if (isIncremental(sweep.spec)) await this.suggestTrials(sweep, inflight);
    });
  }

  /** Publishes a pending trial and marks it queued. */
  private queueTrial(t: TrialRecord): Promise<void> {
    return this.lock.run(`trial:${t.config.trialId}`, async () => {
      if (t.status !== 'pending') return;
      // Publish first: a crash before the KV write leaves the trial pending, and the republish is dropped by the stream's duplicate window.
      // A requeued trial (its message was lost) gets a new message id, or the window would drop it too.
      const seq = await this.queue.publish({ v: 1, config: t.config }, t.requeues ? `${t.config.trialId}.r${t.requeues}` : undefined);
      await this.updateTrial(t, (x) => {
        x.queueSeq = seq;
        x.status = 'queued';
      });
      this.emit({ type: 'trial_queued', sweepId: t.config.sweepId, trial: t });
    });
  }

  /**
   * Fills free slots of an incremental sweep with the searcher's
   * suggestions, after feeding it every result it has not seen. Each new
   * trial is stored (pending) before it is queued, so a crash in between
   * leaves a pending trial that the restarted coordinator queues. Caller
   * holds the sweep lock.
   */
  private async suggestTrials(sweep: SweepRecord, inflight: number): Promise<void> {
    const st = this.searcherOf(sweep);
    const mine = this.trialsBySweep.get(sweep.sweepId);
    const finished = [...(mine?.values() ?? [])].filter((t) => TERMINAL_TRIAL_STATUSES.has(t.status) && !st.fed.has(t.config.trialId));
    for (const t of finished.sort((a, b) => a.config.index - b.config.index)) {
      st.searcher.onTrialComplete(pointOf(t.config), trialMetric(t, sweep.spec));
      st.fed.add(t.config.trialId);
    }
    while (inflight < sweep.spec.maxParallel) {
      const p = st.searcher.suggest();
      if (p === null || p === 'FINISHED') return;
      const index = this.trialsBySweep.get(sweep.sweepId)?.size ?? 0;
      const t = newTrialRecord(trialConfig(sweep.spec, sweep.sweepId, index, p), Date.now());
      try {
        await this.saveTrial(t);
      } catch (err) {
        // The searcher counted a trial that was not stored: rebuild it from KV next time.
        this.searchers.delete(sweep.sweepId);
        throw err;
      }
      this.log.info('trial.suggested', { sweepId: sweep.sweepId, trialId: t.config.trialId, learningRate: p.learningRate, dropout: p.dropout });
      await this.queueTrial(t);
      inflight++;
    }
  }

  /** The incremental searcher of a sweep, resumed after the stored trials (results are fed by suggestTrials). */
  private searcherOf(sweep: SweepRecord): { searcher: TpeSearcher; fed: Set<string> } {
    let st = this.searchers.get(sweep.sweepId);
    if (!st) {
      const searcher = createSearcher(sweep.spec) as Searcher;
      if (!(searcher instanceof TpeSearcher)) throw new Error(`search '${sweep.spec.search}' is not incremental`);
      searcher.resume(this.trialsBySweep.get(sweep.sweepId)?.size ?? 0);
      st = { searcher, fed: new Set() };
      this.searchers.set(sweep.sweepId, st);
    }
    return st;
  }

  private maybeFinish(sweepId: string): Promise<void> {
    return this.lock.run(`sweep:${sweepId}`, async () => {
      const s = this.sweeps.get(sweepId);
      if (s) await this.finishIfDone(s);
    });
  }

  /** Marks the sweep finished once every trial is terminal. Caller holds the sweep lock. */
  private async finishIfDone(sweep: SweepRecord): Promise<void> {
    if (sweep.finishedAtMs > 0) return;
    const trials = [...(this.trialsBySweep.get(sweep.sweepId)?.values() ?? [])];
    // A cancelled incremental sweep never makes the rest of its trials.
    if ((sweep.status === 'running' && trials.length < sweep.trialCount) || trials.some((t) => !TERMINAL_TRIAL_STATUSES.has(t.status))) return;
    await this.updateSweep(sweep, (s) => {
      if (s.status === 'running') {
        const failed = trials.filter((t) => t.status === 'failed');
        const diverged = trials.filter((t) => t.status === 'diverged').length;
        if (failed.length + diverged === trials.length) {
          s.status = 'failed';
          s.reason = failed.length > 0
            ? `all ${trials.length} trials failed${diverged ? ` or diverged (${diverged} diverged)` : ''}; first error: ${failed[0]?.error ?? 'unknown'}`
            : `all ${trials.length} trials diverged`;
        } else {
          s.status = 'completed';
          const parts = [failed.length > 0 ? `${failed.length} of ${trials.length} trials failed` : '', diverged > 0 ? `${diverged} of ${trials.length} trials diverged` : ''];
          if (parts.some(Boolean)) s.reason = parts.filter(Boolean).join('; ');
        }
      }
      s.finishedAtMs = Date.now();
    });
    this.schedulers.delete(sweep.sweepId);
    this.searchers.delete(sweep.sweepId);
    this.log.info('sweep.finished', { sweepId: sweep.sweepId, status: sweep.status, reason: sweep.reason });
    this.emit({ type: 'sweep_finished', sweepId: sweep.sweepId, sweep });
  }

  private async afterTerminal(sweepId: string): Promise<void> {
    await this.failIfTooManyFailed(sweepId);
    await this.dispatch(sweepId);
    await this.maybeFinish(sweepId);
  }

  /**
   * `maxFailedTrials`: once more trials than that failed or diverged, the
   * sweep fails with the count and the first error; waiting trials are
   * cancelled and running ones are told to STOP at their next epoch.
   */
  private failIfTooManyFailed(sweepId: string): Promise<void> {
    return this.lock.run(`sweep:${sweepId}`, async () => {
      const sweep = this.sweeps.get(sweepId);
      const limit = sweep?.spec.maxFailedTrials ?? null;
      if (!sweep || sweep.status !== 'running' || limit === null) return;
      const bad = [...(this.trialsBySweep.get(sweepId)?.values() ?? [])].filter((t) => t.status === 'failed' || t.status === 'diverged');
      if (bad.length <= limit) return;
      const first = bad.sort((a, b) => a.updatedAtMs - b.updatedAtMs)[0];
      await this.updateSweep(sweep, (s) => {
        s.status = 'failed';
        s.reason = `maxFailedTrials exceeded: ${bad.length} trials failed or diverged (limit ${limit}); first: ${first.config.trialId} ${first.status}: ${first.error || 'no error recorded'}; the remaining trials were cancelled`;
      });
      await this.cancelWaitingTrials(sweepId);
      this.log.warn('sweep.too_many_failures', { sweepId, failed: bad.length, limit });
      await this.finishIfDone(sweep);
    });
  }

  /**
   * After a restart: a queued or running trial whose message is gone from
   * the stream (acked or removed while an advisory went unheard, or lost
   * with a wiped stream) and not in a worker's hands can never be delivered
   * again. With deliveries left it is queued again under a new message id;
   * otherwise it fails naming why.
   */
  private async reconcileLostMessages(sweepId: string): Promise<void> {
    for (const t of this.trialsBySweep.get(sweepId)?.values() ?? []) {
      if ((t.status !== 'queued' && t.status !== 'running') || t.queueSeq === 0) continue;
      if (await this.queue.has(t.queueSeq)) continue;
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        if (t.attempt >= this.queue.maxDeliver) {
          await this.updateTrial(t, (x) => {
            x.status = 'failed';
            x.error = `LOST: its queue message disappeared after ${t.attempt} deliveries while the coordinator was down${t.error ? `; last error: ${t.error}` : ''}`;
          });
          this.emit({ type: 'trial_failed', sweepId, trial: t });
        } else {
          // Back to pending: dispatch publishes it again; its deliveries restart at 1.
          await this.updateTrial(t, (x) => {
            x.status = 'pending';
            x.attempt = 0;
            x.queueSeq = 0;
            x.requeues = (x.requeues ?? 0) + 1;
          });
        }
        this.log.warn('trial.message_lost', { sweepId, trialId: t.config.trialId, attempt: t.attempt, status: t.status });
      });
    }
  }

  /** afterTerminal from inside a trial lock: runs once the lock is released (the sweep lock may be waiting on it). */
  private afterTerminalLater(sweepId: string): Promise<void> {
    setImmediate(() => void this.afterTerminal(sweepId).catch((err) => this.log.error('sweep.finish_failed', { sweepId, error: err })));
    return Promise.resolve();
  }

  // ---------- worker reports ----------

  private trialFor(trialId: string): TrialRecord {
    if (!trialId) throw new InvalidArgumentError([{ field: 'trial_id', message: 'required' }], 'invalid report');
    return this.getTrial(trialId);
  }

  /** A worker took a trial. STOP tells it to drop the trial (cancelled sweep, finished trial, stale attempt). */
  async trialStarted(r: TrialStartedInput): Promise<Decision> {
    const t = this.trialFor(r.trialId);
    return this.lock.run(`trial:${r.trialId}`, async () => {
      const sweep = this.getSweep(t.config.sweepId);
      if (TERMINAL_TRIAL_STATUSES.has(t.status)) return { action: 'STOP', reason: `trial is already ${t.status}` };
      if (sweep.status !== 'running') {
        // A trial of a cancelled sweep that came back to the queue (its worker failed or drained) ends here.
        await this.updateTrial(t, (x) => {
          x.status = 'cancelled';
        });
        await this.afterTerminalLater(t.config.sweepId);
        return { action: 'STOP', reason: `sweep is ${sweep.status}` };
      }
      if (r.attempt < t.attempt) return { action: 'STOP', reason: `stale attempt ${r.attempt}; attempt ${t.attempt} owns the trial` };
      const resumed = r.attempt === t.attempt ? 0 : Math.max(0, r.resumedEpochs ?? 0);
      await this.updateTrial(t, (x) => {
        if (r.attempt === x.attempt) {
          // A retried TrialStarted of the attempt that already owns the trial: nothing to reset.
          Object.assign(x, { status: 'running', worker: r.worker, backend: r.backend });
          return;
        }
        // A new attempt keeps the epochs its checkpoint holds (they were reported by the attempt that
        // saved it) and drops the rest, which it trains again; without a checkpoint it starts from scratch.
        const kept = x.history.filter((e) => e.epoch <= resumed).sort((a, b) => a.epoch - b.epoch);
        const last = kept.at(-1);
        Object.assign(x, {
          status: 'running', attempt: r.attempt, worker: r.worker, backend: r.backend, pretrained: r.pretrained, weightsSource: r.weightsSource,
          history: kept, error: '', valAccuracy: last?.valAccuracy ?? null, valLoss: last?.valLoss ?? null, epochs: kept.length,
          seconds: kept.reduce((sum, e) => sum + e.seconds, 0),
          earlyStop: x.earlyStop && x.earlyStop.epoch <= resumed ? x.earlyStop : null,
          resumedEpochs: (x.resumedEpochs ?? 0) + kept.length,
          retrainedEpochs: (x.retrainedEpochs ?? 0) + (x.history.length - kept.length),
        });
      });
      const scheduler = this.schedulers.get(t.config.sweepId);
      if (scheduler) {
        scheduler.forget?.(r.trialId);
        // The kept epochs stay part of the trial's results.
        if (scheduler.forget) for (const e of t.history) scheduler.onResult(t, e);
      }
      this.log.info('trial.started', { sweepId: t.config.sweepId, trialId: r.trialId, attempt: r.attempt, worker: r.worker, backend: r.backend, resumedEpochs: resumed });
      this.emit({ type: 'trial_started', sweepId: t.config.sweepId, trial: t });
      return { action: 'CONTINUE', reason: '' };
    });
  }

  /** One epoch of a running trial; answers the scheduler's decision. Idempotent per (trial, attempt, epoch). */
  async reportEpoch(r: ReportEpochInput): Promise<Decision> {
    const t = this.trialFor(r.trialId);
    return this.lock.run(`trial:${r.trialId}`, async () => {
      if (r.attempt !== t.attempt || t.status !== 'running') return { action: 'STOP', reason: `attempt ${r.attempt} does not own the trial (status ${t.status}, attempt ${t.attempt})` };
      const sweep = this.getSweep(t.config.sweepId);
      // Decided before the write so the STOP is stored with the epoch: a retried report, even to a restarted coordinator, gets the same answer.
      const early = sweep.status === 'running' ? this.earlyStop(sweep, t, r.metrics) : null;
      await this.updateTrial(t, (x) => {
        const i = x.history.findIndex((e) => e.epoch === r.metrics.epoch);
        if (i >= 0) x.history[i] = r.metrics;
        else x.history.push(r.metrics);
        x.epochs = x.history.length;
        x.valAccuracy = r.metrics.valAccuracy;
        x.valLoss = r.metrics.valLoss;
        x.seconds = x.history.reduce((sum, e) => sum + e.seconds, 0);
        if (early) x.earlyStop = early;
      });
      this.emit({ type: 'epoch', sweepId: t.config.sweepId, trial: t, epoch: r.metrics });
      if (sweep.status !== 'running') return { action: 'STOP', reason: `sweep is ${sweep.status}` };
      if (t.earlyStop && t.earlyStop.epoch <= r.metrics.epoch) {
        if (early) this.log.info('trial.early_stopped', { sweepId: t.config.sweepId, trialId: r.trialId, epoch: r.metrics.epoch, reason: early.reason });
        return { action: 'STOP', reason: t.earlyStop.reason };
      }
      return { action: 'CONTINUE', reason: '' };
    });
  }

  /**
   * Asks the sweep's scheduler about a new epoch; null unless it says STOP.
   * A report of an epoch already stored (a retry) is not asked again: its
   * answer is the stored one. A STOP at the trial's last epoch is dropped,
   * as there is nothing left to save and the trial should read `completed`.
   */
  private earlyStop(sweep: SweepRecord, t: TrialRecord, result: EpochRecord): { epoch: number; reason: string } | null {
    if (t.earlyStop) return null;
    if (t.history.some((e) => e.epoch === result.epoch)) return null;
    const scheduler = this.schedulerOf(sweep);
    const d = scheduler.onResult(t, result);
    if (d !== 'STOP' || result.epoch >= plannedEpochs(t.config)) return null;
    return { epoch: result.epoch, reason: scheduler.stopReason?.(t.config.trialId) || 'early-stopping rule' };
  }

  /**
   * The sweep's scheduler. Built on first use by replaying every stored
   * epoch of the sweep's trials: that is how its state survives a restart
   * (ASHA's rung records and the median rule's averages depend only on the
   * results, not on the order trials reported them).
   */
  private schedulerOf(sweep: SweepRecord): Scheduler {
    let s = this.schedulers.get(sweep.sweepId);
    if (s) return s;
    const kind = sweep.spec.scheduler?.kind ?? 'fifo';
    s = kind === 'fifo' ? this.scheduler : createScheduler(sweep.spec.scheduler);
    if (kind !== 'fifo') {
      for (const t of this.trialsBySweep.get(sweep.sweepId)?.values() ?? []) {
        for (const e of [...t.history].sort((a, b) => a.epoch - b.epoch)) s.onResult(t, e);
      }
    }
    this.schedulers.set(sweep.sweepId, s);
    return s;
  }

  /** Final metrics of a trial. Reports from a stale attempt or for a finished trial are refused (accepted: false). */
  async trialFinished(r: TrialFinishedInput): Promise<{ accepted: boolean; reason: string }> {
    const t = this.trialFor(r.trialId);
    const res = await this.lock.run(`trial:${r.trialId}`, async () => {
      if (TERMINAL_TRIAL_STATUSES.has(t.status) && t.status !== 'cancelled') return { accepted: false, reason: `trial is already ${t.status}` };
      if (r.attempt !== t.attempt) return { accepted: false, reason: `stale attempt ${r.attempt}; attempt ${t.attempt} owns the trial` };
      const sweep = this.getSweep(t.config.sweepId);
      await this.updateTrial(t, (x) => {
        Object.assign(x, {
          status: sweep.status === 'cancelled' ? 'cancelled' : r.stopped ? 'stopped' : 'completed',
          valAccuracy: r.valAccuracy, valLoss: r.valLoss, testAccuracy: r.testAccuracy, testLoss: r.testLoss,
          epochs: r.epochs, seconds: r.seconds, totalParams: r.totalParams, trainableParams: r.trainableParams, cutLayer: r.cutLayer,
        });
        if (r.unfreezeLayers !== undefined) x.unfreezeLayers = r.unfreezeLayers;
        if (r.earlyStops !== undefined) x.earlyStops = r.earlyStops;
        if (r.pretrained !== undefined) x.pretrained = r.pretrained;
        if (r.weightsSource) x.weightsSource = r.weightsSource;
        if (r.backend) x.backend = r.backend;
        if (r.testMetrics) x.testMetrics = r.testMetrics;
        if (r.phaseSeconds) x.phaseSeconds = r.phaseSeconds;
        if (r.skippedImages !== undefined) x.skippedImages = r.skippedImages;
      });
      this.log.info('trial.finished', { sweepId: t.config.sweepId, trialId: r.trialId, status: t.status, valAccuracy: r.valAccuracy, testAccuracy: r.testAccuracy, seconds: r.seconds });
      this.emit({ type: t.status === 'stopped' ? 'trial_stopped' : 'trial_finished', sweepId: t.config.sweepId, trial: t });
      return { accepted: true, reason: '' };
    });
    if (res.accepted) await this.afterTerminal(t.config.sweepId);
    return res;
  }

  /** A trial failed. `retrying`: the worker let the queue redeliver it; otherwise it is final. */
  async trialFailed(r: TrialFailedInput): Promise<{ accepted: boolean; reason: string }> {
    const t = this.trialFor(r.trialId);
    const res = await this.lock.run(`trial:${r.trialId}`, async () => {
      if (TERMINAL_TRIAL_STATUSES.has(t.status)) return { accepted: false, reason: `trial is already ${t.status}` };
      if (r.attempt < t.attempt) return { accepted: false, reason: `stale attempt ${r.attempt}` };
      const cancelled = this.getSweep(t.config.sweepId).status !== 'running';
      await this.updateTrial(t, (x) => {
        // Nothing of a cancelled sweep is retried.
        x.status = cancelled ? 'cancelled' : r.diverged ? 'diverged' : r.retrying ? 'queued' : 'failed';
        x.error = r.code ? `${r.code}: ${r.error}` : r.error;
      });
      this.log.warn('trial.failed', { sweepId: t.config.sweepId, trialId: r.trialId, attempt: r.attempt, retrying: r.retrying, error: t.error });
      this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      return { accepted: true, reason: '' };
    });
    if (res.accepted && TERMINAL_TRIAL_STATUSES.has(t.status)) await this.afterTerminal(t.config.sweepId);
    return res;
  }
}

/** Searchers that suggest trials as results arrive instead of all at submit. */
function isIncremental(spec: SweepSpec): boolean {
  return spec.search === 'tpe';
}

function pointOf(c: TrialConfig): SearchPoint {
  return { dataset: c.dataset, backbone: c.backbone, unfreeze: c.unfreeze, learningRate: c.learningRate, dropout: c.dropout };
}

/** What a finished trial teaches the searcher: its final metric if it ran (completed or early-stopped), else nothing. */
function trialMetric(t: TrialRecord, spec: SweepSpec): number | null {
  if (t.status !== 'completed' && t.status !== 'stopped') return null;
  return spec.tpe?.metric === 'val_loss' ? t.valLoss : t.valAccuracy;
}

/** Epochs a trial runs when nothing stops it (trials with unfreeze 0 skip fine-tuning). */
function plannedEpochs(c: TrialConfig): number {
  return c.headEpochs + (unfreezesAnything(c.unfreeze) ? c.fineTuneEpochs : 0);
}

function trialConfig(spec: SweepSpec, sweepId: string, index: number, p: SearchPoint): TrialConfig {
  return {
    trialId: trialIdOf(sweepId, index),
    sweepId,
    index,
    backbone: p.backbone,
    unfreeze: p.unfreeze,
    learningRate: p.learningRate,
    dropout: p.dropout,
    dataset: p.dataset,
    datasetLabel: datasetLabel(p.dataset),
    imageSize: spec.imageSize,
    headUnits: spec.headUnits,
    headEpochs: spec.headEpochs,
    fineTuneEpochs: spec.fineTuneEpochs,
    fineTuneLrFactor: spec.fineTuneLrFactor,
    batchSize: spec.batchSize,
    // One seed for every trial: the same split, initial head weights and batch order for all,
    // so trials differ only in their hyperparameters (common random numbers).
    seed: spec.seed,
    split: spec.split,
    recipe: spec.recipe,
    augmentation: spec.augmentation ?? null,
  };
}
