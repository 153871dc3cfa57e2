import { trialModelName } from '../../worker/src/engine/weights/object-layout.js';
import { EventEmitter } from 'node:events';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { TRIAL_STREAM, WORKER_CONSUMER } from './queue/names.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError } from './errors.js';
import { loadLeaseSigner, type LeaseSigner } from './lease.js';
import { newSweepId, trialIdOf } from './ids.js';
import { KeyedLock } from './keyed-lock.js';
import type { LeaderboardQueryInput, LeaderboardResult } from './leaderboard/leaderboard.js';
import { LeaderboardIndex } from './leaderboard/leaderboard-index.js';
import { PendingQueue } from './pending-queue.js';
import { silentLogger, type Logger } from './log.js';
import { TrialQueue, type TrialQueueOptions } from './queue/trial-queue.js';
import { AffinityQueue } from './queue/affinity-queue.js';
import { AffinityRouter } from './queue/affinity-router.js';
import { CacheHolders } from './queue/cache-holders.js';
import { planUnits } from './planner/plan-units.js';
import {
  newTrialRecord,
  type TrialTask,
  TERMINAL_TRIAL_STATUSES,
  unitOf,
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
import { datasetLabel, SPEC_DEFAULTS, SPEC_LIMITS, type SweepSpec, type TrialConfig } from './spec/sweep-spec.js';
import type { ClassificationMetrics } from '../../worker/src/engine/metrics.js';
import type { PhaseSeconds } from '../../worker/src/engine/phase-timer.js';
import { StateStore } from './store/state-store.js';
import { applyEpochEntries, type EpochEntry } from './store/epoch-log.js';
import type { EarlyStopReport } from '../../worker/src/engine/early-stopping.js';
import { unfreezesAnything } from '../../worker/src/engine/recipe-options.js';
import { ModelObjects, type ModelUpload, type StoredModel, type StoredModelInfo } from './store/model-objects.js';
import { MODELS_BUCKET, WEIGHTS_BUCKET } from '../../worker/src/engine/weights/object-layout.js';
import { WEIGHTS_NAME_RE } from '../../worker/src/engine/weights/weights-ref.js';

export interface CoordinatorOptions {
  nc: NatsConnection;
  /** @default silent */
  log?: Logger;
  queue?: TrialQueueOptions;
  /** KV replicas. @default 1 */
  replicas?: number;
  /** Early-stopping rule for sweeps whose spec names none (`scheduler.kind: fifo`). @default FIFO (never stops) */
  scheduler?: Scheduler;
  /** Key of the per-attempt lease tokens (TLSWEEP_LEASE_SECRET). @default a random secret kept in KV bucket `tlsweep-coordinator` */
  leaseSecret?: string | null;
  /** Sweeps running at once; a further submit gets RESOURCE_EXHAUSTED. 0 = unlimited. @default 0 */
  maxRunningSweeps?: number;
  /** Trials one sweep may have (at most SPEC_LIMITS.maxTrialsPerSweep). @default SPEC_LIMITS.maxTrialsPerSweep */
  maxTrialsPerSweep?: number;
  /** Accept sweeps on the `noop` backbone (synthetic metrics, nothing trained; control-plane benchmarks). @default false */
  allowNoopBackbone?: boolean;
  /** Where workers keep epoch checkpoints: a trial's is deleted once the trial is terminal. @default none */
  checkpoints?: { delete(trialId: string): Promise<void> };
  /** Cache-affinity dispatch (TLSWEEP_AFFINITY): units go to a worker that holds their features. @default null (off) */
  affinity?: AffinityOptions | null;
}

/** Cache-affinity dispatch settings. */
export interface AffinityOptions {
  /** TLSWEEP_AFFINITY_WAIT_MS: how long a holder has to start a unit before it goes to the shared queue (anyone). @default 5000 */
  waitMs?: number;
  /** TLSWEEP_CACHE_HOLDERS_TTL_MS: lifetime of a worker's advertisement; a dead holder is forgotten after it. @default 30000 */
  holdersTtlMs?: number;
}

/** Cache-affinity dispatch counters (coordinator /metrics). */
export interface AffinityStats {
  /** Units published to a worker that advertised their features. */
  routed: number;
  /** Of those, units whose holder started them (an affinity hit). */
  hits: number;
  /** Units the holder did not start within the wait, moved to the shared queue. */
  fallbacks: number;
  /** Units taken from an inbox whose delivery failed, drained or died, moved to the shared queue. */
  requeues: number;
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
  /** TrialStarted with CONTINUE: the lease token every later report of this attempt must carry. */
  leaseToken?: string;
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
  /** The worker holds the trained full model and can store it when asked. */
  hasModel?: boolean;
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
export interface ModelStoredInput { trialId: string; attempt: number; modelRef: string }
/** TrialFinished's answer; `keepModel` asks the worker to store the model and call modelStored. */
export interface FinishedAck { accepted: boolean; reason: string; keepModel: boolean }
export interface TrialFailedInput { trialId: string; attempt: number; error: string; code: string; retrying: boolean }

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
  /** Stream sequence of a queued work unit's message → its trial ids (advisories name the sequence only). */
  private readonly bySeq = new Map<number, Set<string>>();
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
  private readonly allowNoopBackbone: boolean;
  /** Status counters and sorted leaderboard views, updated after every durable trial change. */
  private readonly board = new LeaderboardIndex();
  /** Each sweep's pending trials, lowest index first: what dispatch queues next. */
  private readonly pending = new Map<string, PendingQueue>();
  /** The trials of each work unit (at most the planner's unit size), so dispatch queues a unit without scanning its sweep. */
  private readonly unitMembers = new Map<string, Map<string, TrialRecord>>();

  private readonly maxRunningSweeps: number;
  private readonly maxTrialsPerSweep: number;
  private readonly checkpoints: CoordinatorOptions['checkpoints'];
  /** Cache-affinity dispatch; null when off. */
  private affinity: { router: AffinityRouter; inboxes: AffinityQueue; holders: CacheHolders; waitMs: number } | null = null;
  /** Units in an inbox, each with the timer that checks on it (fallback, failed or dead holder). */
  private readonly inboxWatches = new Map<string, NodeJS.Timeout>();
  private readonly affinityCounts: AffinityStats = { routed: 0, hits: 0, fallbacks: 0, requeues: 0 };
  /** trialId → the worker it keeps busy (running it, or holding it in its inbox); see trackBusy. */
  private readonly busyWith = new Map<string, string>();
  /** worker → how many trials keep it busy. */
  private readonly busyWorkers = new Map<string, number>();
  private closed = false;

  private constructor(private readonly store: StateStore, private readonly queue: TrialQueue, private readonly models: ModelObjects, private readonly lease: LeaseSigner, opts: CoordinatorOptions) {
    this.log = opts.log ?? silentLogger;
    this.checkpoints = opts.checkpoints;
    this.maxRunningSweeps = opts.maxRunningSweeps ?? 0;
    this.maxTrialsPerSweep = Math.min(opts.maxTrialsPerSweep ?? SPEC_LIMITS.maxTrialsPerSweep, SPEC_LIMITS.maxTrialsPerSweep);
    this.scheduler = opts.scheduler ?? new FifoScheduler();
    this.allowNoopBackbone = opts.allowNoopBackbone ?? false;
    this.events.setMaxListeners(0);
  }

  /** Opens the KV buckets and the queue, rebuilds state, resumes dispatch of running sweeps. */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    const store = await StateStore.open(opts.nc, { replicas: opts.replicas });
    const queue = await TrialQueue.open(opts.nc, opts.queue);
    const models = await ModelObjects.open(opts.nc, { replicas: opts.replicas });
    const lease = await loadLeaseSigner(opts.nc, { configured: opts.leaseSecret, replicas: opts.replicas });
    const c = new Coordinator(store, queue, models, lease, opts);
    if (opts.affinity) {
      const inboxes = await AffinityQueue.open(opts.nc, { replicas: opts.replicas, ackWaitMs: opts.queue?.ackWaitMs });
      const holders = await CacheHolders.open(opts.nc, { ttlMs: opts.affinity.holdersTtlMs ?? 30_000, replicas: opts.replicas });
      c.affinity = { router: new AffinityRouter(queue, inboxes, holders), inboxes, holders, waitMs: opts.affinity.waitMs ?? 5000 };
    }
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
        void this.onDeliveriesExhausted(a.stream_seq, a.deliveries).catch((e) => {
          const trialIds = [...(this.bySeq.get(a.stream_seq) ?? [])];
          const t = this.trials.get(trialIds[0] ?? '');
          this.log.error('advisory.failed', { seq: a.stream_seq, sweepId: t?.config.sweepId, trialIds, error: e });
        });
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
    // nats-server 2.9 also sends this advisory, with 0 deliveries, when a message a consumer had handed
    // out and got back (nak) is deleted from the stream: that is the coordinator's own removal (a cancel,
    // a fallback), not a worker giving up on the trial.
    if (deliveries < 1) return;
    // Every trial of the terminated unit that has not ended (its worker reported each one's failure first, normally).
    for (const trialId of this.bySeq.get(seq) ?? []) await this.failTerminated(this.trials.get(trialId), deliveries, reason);
    await this.queue.remove(seq);
  }

  private async failTerminated(t: TrialRecord | undefined, deliveries: number, reason: string): Promise<void> {
    if (t && !TERMINAL_TRIAL_STATUSES.has(t.status)) {
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        // A cancelled sweep's trials end as cancelled (cancelWaitingTrials, or STOP at their next report).
        if (TERMINAL_TRIAL_STATUSES.has(t.status) || this.sweeps.get(t.config.sweepId)?.status !== 'running') return;
        await this.updateTrial(t, (x) => {
          x.status = 'failed';
          x.error = `TERMINATED by the worker after ${deliveries} deliveries: ${reason || t.error || 'no reason given'}`;
        });
        this.log.warn('trial.terminated', { sweepId: t.config.sweepId, trialId: t.config.trialId, deliveries, reason });
        this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      });
      await this.afterTerminal(t.config.sweepId);
    }
  }

  private async onDeliveriesExhausted(seq: number, deliveries: number): Promise<void> {
    // Every trial of the unit that has not ended fails: the unit's worker died each time.
    for (const trialId of this.bySeq.get(seq) ?? []) await this.failExhausted(this.trials.get(trialId), deliveries);
    // The stream keeps such a message forever otherwise.
    await this.queue.remove(seq);
  }

  private async failExhausted(t: TrialRecord | undefined, deliveries: number): Promise<void> {
    if (t && !TERMINAL_TRIAL_STATUSES.has(t.status)) {
      await this.lock.run(`trial:${t.config.trialId}`, async () => {
        if (TERMINAL_TRIAL_STATUSES.has(t.status)) return;
        const lastError = t.error || t.lastError;
        const last = lastError ? `; last error: ${lastError}` : '; no worker reported an error (killed or timed out)';
        await this.updateTrial(t, (x) => {
          x.status = 'failed';
          x.error = `MAX_DELIVERIES: gave up after ${deliveries} deliveries${last}`;
        });
        this.log.warn('trial.deliveries_exhausted', { sweepId: t.config.sweepId, trialId: t.config.trialId, deliveries });
        this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      });
      await this.afterTerminal(t.config.sweepId);
    }
  }

  /** Stops listening for queue advisories (the NATS connection is the caller's). */
  close(): void {
    this.closed = true;
    for (const t of this.inboxWatches.values()) clearTimeout(t);
    this.inboxWatches.clear();
    this.advisories?.unsubscribe();
    this.advisories = null;
    this.terminated?.unsubscribe();
    this.terminated = null;
  }

  private async rebuild(): Promise<void> {
    const [sweeps, trials] = await Promise.all([this.store.loadSweeps(), this.store.loadTrials((err) => this.log.warn('epochs.purge_failed', { error: err }))]);
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
      this.rewatchInboxes(s.sweepId);
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
    if (t.queueSeq > 0) {
      let ids = this.bySeq.get(t.queueSeq);
      if (!ids) this.bySeq.set(t.queueSeq, (ids = new Set()));
      ids.add(t.config.trialId);
    }
    let m = this.trialsBySweep.get(t.config.sweepId);
    if (!m) this.trialsBySweep.set(t.config.sweepId, (m = new Map()));
    m.set(t.config.trialId, t);
    this.board.upsert(t);
    const unitId = unitOf(t);
    let unit = this.unitMembers.get(unitId);
    if (!unit) this.unitMembers.set(unitId, (unit = new Map()));
    unit.set(t.config.trialId, t);
    if (t.status === 'pending') {
      let q = this.pending.get(t.config.sweepId);
      if (!q) this.pending.set(t.config.sweepId, (q = new PendingQueue()));
      q.push(t);
    }
    this.trackBusy(t);
  }

  /**
   * Which worker a trial keeps busy: the one running it, or the one whose
   * inbox holds it. Kept per worker so cache-affinity routing can pick an
   * idle holder without scanning every trial.
   */
  private trackBusy(t: TrialRecord): void {
    const id = t.config.trialId;
    const now = t.status === 'running' && t.worker ? t.worker : t.status === 'queued' && t.inbox ? t.inbox.worker : undefined;
    const prev = this.busyWith.get(id);
    if (prev === now) return;
    if (prev !== undefined) {
      const n = (this.busyWorkers.get(prev) ?? 1) - 1;
      if (n > 0) this.busyWorkers.set(prev, n);
      else this.busyWorkers.delete(prev);
      this.busyWith.delete(id);
    }
    if (now !== undefined) {
      this.busyWorkers.set(now, (this.busyWorkers.get(now) ?? 0) + 1);
      this.busyWith.set(id, now);
    }
  }

  /**
   * Applies `change` to a trial and writes it to KV. If the write fails the
   * in-memory record is rolled back, so memory never runs ahead of KV (a
   * retried report then finds the trial as KV has it).
   */
  private async updateTrial(t: TrialRecord, change: (t: TrialRecord) => void, epoch?: Omit<EpochEntry, 'trialId'>): Promise<void> {
    // Changes replace top-level fields or history entries, never mutate nested objects in place,
    // so a shallow copy (and a copy of the history array) is enough to roll back; a deep clone per report is not.
    const before: TrialRecord = { ...t, history: t.history.slice() };
    change(t);
    t.updatedAtMs = Date.now();
    try {
      // `epoch`: the change is that epoch and nothing else, so logging the epoch stores it (see store/epoch-log.ts).
      await (epoch ? this.store.appendEpoch(t, epoch) : this.store.putTrial(t));
    } catch (err) {
      Object.assign(t, before);
      throw err;
    }
    this.index(t);
    if (TERMINAL_TRIAL_STATUSES.has(t.status) && !TERMINAL_TRIAL_STATUSES.has(before.status)) {
      // The final record holds the whole history: the logged epochs are no longer needed (a restart purges any left).
      void this.store.purgeEpochs(t).catch((err) => this.log.warn('epochs.purge_failed', { trialId: t.config.trialId, error: err }));
      // Nothing will resume a terminal trial; a checkpoint left behind expires with the bucket's TTL.
      if (this.checkpoints) void this.checkpoints.delete(t.config.trialId).catch((err) => this.log.warn('checkpoint.delete_failed', { trialId: t.config.trialId, error: err }));
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
    const spec = parseSweepSpec(specText, { allowNoopBackbone: this.allowNoopBackbone });
    await checkFolderDatasets(spec);
    const sweepId = newSweepId();
    // An incremental searcher makes its trials as results arrive; the sweep will have exactly maxTrials.
    const trialCount = isIncremental(spec) ? spec.maxTrials! : expandAll(createSearcher(spec)).length;
    if (trialCount > this.maxTrialsPerSweep) {
      const field = isIncremental(spec) || spec.search === 'random' ? 'maxTrials' : 'backbones';
      throw new InvalidArgumentError([{ field, message: `the sweep has ${trialCount} trials; this coordinator allows at most ${this.maxTrialsPerSweep} per sweep (TLSWEEP_MAX_TRIALS_PER_SWEEP)` }], 'invalid sweep spec');
    }
    const sweep: SweepRecord = { sweepId, spec, status: 'running', trialCount, reason: '', createdAtMs: Date.now(), finishedAtMs: 0 };
    // Counting and storing under one lock, so two submits at once cannot both take the last slot.
    await this.lock.run('submit', async () => {
      const running = [...this.sweeps.values()].filter((s) => s.status === 'running').length;
      if (this.maxRunningSweeps > 0 && running >= this.maxRunningSweeps) {
        throw new ResourceExhaustedError(`${running} sweeps are running, the most this coordinator runs at once (TLSWEEP_MAX_RUNNING_SWEEPS=${this.maxRunningSweeps}); submit again when one finishes or cancel one`);
      }
      await this.store.putSweep(sweep);
      this.sweeps.set(sweepId, sweep);
    });
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
    const configs = points.map((p, index) => trialConfig(sweep.spec, sweep.sweepId, index, p));
    // Planned over all the sweep's trials, so a restart that recreates missing ones gives them the same units.
    const unitIds = new Map<string, string>();
    for (const u of planUnits(configs, sweep.spec.fuse ?? null, sweep.spec.maxParallel)) for (const id of u.trialIds) unitIds.set(id, u.unitId);
    const fresh = configs
      .filter((c) => !existing?.has(c.trialId))
      .map((c) => ({ ...newTrialRecord(c, now), unitId: unitIds.get(c.trialId) }));
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
    // Counted as of the last durable write of each trial (maintained on every status change, not recounted).
    const c: TrialCounts = this.board.statusCounts(sweepId);
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
    return this.board.best(sweepId);
  }

  query(q: LeaderboardQueryInput): LeaderboardResult {
    if (q.sweepId && !this.sweeps.has(q.sweepId)) throw new NotFoundError('sweep', q.sweepId);
    return this.board.query(q);
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
        if (t.inbox && this.affinity) await this.affinity.inboxes.remove(t.inbox.seq);
        await this.updateTrial(t, (x) => {
          x.status = 'cancelled';
          x.inbox = null;
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
      const c = this.board.statusCounts(sweepId);
      let inflight = c.queued + c.running;
      const pending = this.pending.get(sweepId);
      while (pending && inflight < sweep.spec.maxParallel) {
        const t = pending.pop();
        if (!t) break;
        const unitId = unitOf(t);
        const members = [...(this.unitMembers.get(unitId)?.values() ?? [t])].filter((m) => m.status === 'pending').sort((a, b) => a.config.index - b.config.index);
        // maxParallel counts trials; a unit larger than the free slots waits, unless nothing runs (it could never go otherwise).
        if (inflight > 0 && inflight + members.length > sweep.spec.maxParallel) {
          pending.push(t);
          break;
        }
        try {
          await this.queueUnit(unitId, members);
        } catch (err) {
          pending.push(t); // still pending: the next dispatch tries it again
          throw err;
        }
        inflight += members.filter((m) => m.status !== 'pending').length;
      }
      if (isIncremental(sweep.spec)) await this.suggestTrials(sweep, inflight);
    });
  }

  /** Publishes a work unit of pending trials and marks them queued. Caller holds the sweep lock. */
  private async queueUnit(unitId: string, members: TrialRecord[]): Promise<void> {
    const pending = members.filter((t) => t.status === 'pending');
    if (pending.length === 0) return;
    // Publish first: a crash before the KV writes leaves trials pending, and the republish is dropped by the stream's duplicate window.
    // A unit of one goes as a v1 message, which workers from before units can still run.
    // A requeued unit (its message was lost) gets a new message id, or the duplicate window would drop it.
    const requeues = Math.max(...pending.map((t) => t.requeues ?? 0));
    const single = pending.length === 1 && unitId === pending[0].config.trialId;
    // A unit that once left an inbox keeps numbering its attempts after the inbox delivery (see minAttempt).
    const base = Math.max(0, ...pending.map((t) => (t.minAttempt ?? 0) - 1));
    const task: TrialTask = single ? { v: 1, config: pending[0].config } : { v: 2, unitId, configs: pending.map((t) => t.config) };
    if (base > 0) task.attemptBase = base;
    const msgId = requeues > 0 ? `${unitId}.r${requeues}` : undefined;
    // Nothing to cache on the noop backbone: routing would only cost the control plane a KV lookup.
    const route = this.affinity && pending[0].config.backbone !== 'noop'
      ? await this.affinity.router.route(task, msgId, (w) => this.busyWorkers.has(w))
      : { kind: 'shared' as const, seq: await this.queue.publish(task, msgId) };
    // Written together; a worker may already have the message and have started a member (its
    // TrialStarted can win the trial lock): that member stays running, only where it went is recorded.
    await Promise.all(pending.map((t) => this.lock.run(`trial:${t.config.trialId}`, async () => {
      await this.updateTrial(t, (x) => {
        x.queueSeq = route.kind === 'shared' ? route.seq : 0;
        x.inbox = route.kind === 'inbox' ? { worker: route.worker, seq: route.seq } : null;
        if (x.status === 'pending') x.status = 'queued';
      });
      this.emit({ type: 'trial_queued', sweepId: t.config.sweepId, trial: t });
    })));
    if (route.kind === 'inbox') {
      this.affinityCounts.routed++;
      this.log.info('unit.routed', { sweepId: pending[0].config.sweepId, unitId, worker: route.worker, seq: route.seq, trials: pending.length });
      this.watchInbox(unitId);
    }
  }

  // ---------- cache-affinity dispatch ----------

  /** Affinity counters (routed, hits, fallbacks, requeues) since start; null when affinity dispatch is off. */
  affinityStats(): AffinityStats | null {
    return this.affinity ? { ...this.affinityCounts } : null;
  }

  /** Checks on a unit in an inbox after the affinity wait (and again while its holder runs it). */
  private watchInbox(unitId: string, delayMs = this.affinity?.waitMs ?? 0): void {
    if (this.closed || !this.affinity) return;
    clearTimeout(this.inboxWatches.get(unitId));
    const timer = setTimeout(() => {
      this.inboxWatches.delete(unitId);
      void this.checkInbox(unitId).catch((err) => {
        this.log.error('unit.inbox_check_failed', { unitId, error: err });
        this.watchInbox(unitId);
      });
    }, delayMs);
    timer.unref();
    this.inboxWatches.set(unitId, timer);
  }

  /** After a restart: every unit still in an inbox is watched again (its holder may have died meanwhile). */
  private rewatchInboxes(sweepId: string): void {
    const units = new Set<string>();
    for (const t of this.trialsBySweep.get(sweepId)?.values() ?? []) if (t.inbox && !TERMINAL_TRIAL_STATUSES.has(t.status)) units.add(unitOf(t));
    for (const u of units) this.watchInbox(u, 0);
  }

  /**
   * One look at a unit published to a worker's inbox:
   * - nobody started it within the wait (holder busy or gone): take the
   *   message back and publish the unit to the shared queue, for anyone;
   * - its holder runs it and is alive: look again later;
   * - its delivery ended without finishing every trial (a failure reported
   *   as retrying, a drain) or its holder stopped advertising (died): the
   *   rest goes to the shared queue, that delivery counting as an attempt
   *   (TLSWEEP_MAX_DELIVER), since an inbox never redelivers;
   * - every trial ended: the message is dropped.
   * Under the sweep lock, then every member's trial lock, so TrialStarted
   * and failure reports cannot interleave with the move.
   */
  private async checkInbox(unitId: string): Promise<void> {
    const aff = this.affinity;
    const first = [...(this.unitMembers.get(unitId)?.values() ?? [])][0];
    if (!aff || !first) return;
    const sweepId = first.config.sweepId;
    const again = await this.lock.run(`sweep:${sweepId}`, async () => {
      const members = [...(this.unitMembers.get(unitId)?.values() ?? [])].filter((t) => t.inbox).sort((a, b) => a.config.index - b.config.index);
      if (members.length === 0) return false;
      return this.withTrialLocks(members.map((t) => t.config.trialId), async () => {
        const inbox = members[0].inbox!;
        const open = members.filter((t) => !TERMINAL_TRIAL_STATUSES.has(t.status));
        if (open.length === 0) {
          await aff.inboxes.remove(inbox.seq);
          for (const t of members) await this.updateTrial(t, (x) => { x.inbox = null; });
          return false;
        }
        const started = members.some((t) => t.attempt > (t.minAttempt ?? 0) || t.status === 'running' || TERMINAL_TRIAL_STATUSES.has(t.status));
        if (!started) return this.moveToShared(unitId, open, inbox, 'fallback');
        // A worker acks an inbox message whatever became of the unit (the coordinator owns inbox retries):
        // while it is there the delivery is in progress, unless its holder stopped advertising (died).
        if (!(await aff.inboxes.has(inbox.seq))) return this.moveToShared(unitId, open, inbox, 'delivery_ended');
        if (await aff.holders.isAlive(inbox.worker)) return true;
        return this.moveToShared(unitId, open, inbox, 'holder_gone');
      });
    });
    if (again) this.watchInbox(unitId);
  }

  /** Publishes a unit's open trials from an inbox to the shared queue. Caller holds the sweep and trial locks. Returns false (stop watching). */
  private async moveToShared(unitId: string, open: TrialRecord[], inbox: { worker: string; seq: number }, why: 'fallback' | 'holder_gone' | 'delivery_ended'): Promise<false> {
    const aff = this.affinity!;
    // Removed first: from here the holder can no longer take it. A holder that already pulled it
    // is told STOP at TrialStarted (minAttempt), so the trial runs once either way.
    await aff.inboxes.remove(inbox.seq);
    const taken = why !== 'fallback' || (await aff.inboxes.mayHaveDelivered(inbox.worker, inbox.seq));
    // The inbox delivery counts as an attempt when it was (or may have been) handed out; a message
    // nobody pulled costs no attempt, so a plain fallback shows none to users.
    const base = Math.max(...open.map((t) => t.attempt), taken ? 1 : 0);
    const sweep = this.sweeps.get(open[0].config.sweepId);
    const single = open.length === 1 && unitId === open[0].config.trialId;
    const task: TrialTask = single ? { v: 1, config: open[0].config, attemptBase: base } : { v: 2, unitId, configs: open.map((t) => t.config), attemptBase: base };
    let seq = 0;
    if (sweep?.status === 'running' && base < this.queue.maxDeliver) {
      // A fixed message id per move, so a move retried after a crash is dropped as a duplicate.
      seq = await this.queue.publish(task, `${unitId}.i${inbox.seq}`);
    }
    for (const t of open) {
      await this.updateTrial(t, (x) => {
        x.inbox = null;
        x.minAttempt = base + 1;
        if (seq > 0) {
          x.queueSeq = seq;
          x.status = 'queued';
        } else if (sweep?.status !== 'running') {
          x.status = 'cancelled';
        } else {
          const lastError = x.error || x.lastError;
          x.status = 'failed';
          x.error = `MAX_DELIVERIES: gave up after ${base} deliveries${lastError ? `; last error: ${lastError}` : '; no worker reported an error (killed or timed out)'}`;
        }
      });
    }
    if (why === 'fallback') this.affinityCounts.fallbacks++;
    else this.affinityCounts.requeues++;
    this.log.info('unit.left_inbox', { sweepId: open[0].config.sweepId, unitId, worker: inbox.worker, why, attemptBase: base, seq });
    if (seq === 0) await this.afterTerminalLater(open[0].config.sweepId);
    return false;
  }

  /** Runs `fn` holding every named trial lock (taken in sorted order, after the sweep lock, as everywhere). */
  private withTrialLocks<T>(trialIds: string[], fn: () => Promise<T>): Promise<T> {
    const ids = [...trialIds].sort();
    const step = (i: number): Promise<T> => (i === ids.length ? fn() : this.lock.run(`trial:${ids[i]}`, () => step(i + 1)));
    return step(0);
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
      // Suggested one at a time, a tpe trial is a unit of its own.
      await this.queueUnit(t.config.trialId, [t]);
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
    const c = this.board.statusCounts(sweep.sweepId);
    let terminal = 0;
    for (const status of TERMINAL_TRIAL_STATUSES) terminal += c[status];
    // A cancelled incremental sweep never makes the rest of its trials.
    if ((sweep.status === 'running' && c.total < sweep.trialCount) || terminal < c.total) return;
    await this.updateSweep(sweep, (s) => {
      if (s.status === 'running') {
        const failed = c.failed;
        const diverged = c.diverged ?? 0;
        const firstFailed = () => [...(this.trialsBySweep.get(sweep.sweepId)?.values() ?? [])].find((t) => t.status === 'failed');
        if (failed + diverged === c.total) {
          s.status = 'failed';
          s.reason = failed > 0
            ? `all ${c.total} trials failed${diverged ? ` or diverged (${diverged} diverged)` : ''}; first error: ${firstFailed()?.error ?? 'unknown'}`
            : `all ${c.total} trials diverged`;
        } else {
          s.status = 'completed';
          const parts = [failed > 0 ? `${failed} of ${c.total} trials failed` : '', diverged > 0 ? `${diverged} of ${c.total} trials diverged` : ''];
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

  /**
   * Refuses a report that does not carry the lease token TrialStarted gave
   * this (trial, attempt): only the worker that started the attempt may
   * report on it. Checked by the gRPC layer before anything is applied.
   * @throws NotFoundError for an unknown trial, PermissionDeniedError for a missing or wrong token.
   */
  checkLease(trialId: string, attempt: number, token: string): void {
    this.trialFor(trialId);
    if (!token) throw new PermissionDeniedError(`lease_token: required; report with the token TrialStarted returned for attempt ${attempt} of trial '${trialId}'`);
    if (!this.lease.verify(trialId, attempt, token)) throw new PermissionDeniedError(`lease_token: not the lease of attempt ${attempt} of trial '${trialId}'; only the worker that started this attempt may report on it`);
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
      if (r.attempt < (t.minAttempt ?? 0)) return { action: 'STOP', reason: `attempt ${r.attempt} left the worker's inbox for the shared queue; attempt ${t.minAttempt} or later runs the trial` };
      if (r.attempt === t.attempt && t.status === 'running' && t.worker && r.worker !== t.worker) {
        // One delivery is one worker's: a second worker claiming it must not get the attempt's lease.
        return { action: 'STOP', reason: `attempt ${r.attempt} of trial '${r.trialId}' is held by worker '${t.worker}'` };
      }
      const cap = this.queue.maxDeliver;
      if (r.attempt > cap) {
        // Deliveries ran out (every earlier worker died or handed it back): the coordinator, not JetStream,
        // ends the trial, so this works even when nobody heard an advisory. The worker acks the message.
        const deliveries = r.attempt - 1;
        const lastError = t.error || t.lastError;
        const last = lastError ? `; last error: ${lastError}` : '; no worker reported an error (killed or timed out)';
        await this.updateTrial(t, (x) => {
          x.status = 'failed';
          x.error = `MAX_DELIVERIES: gave up after ${deliveries} deliveries${last}`;
        });
        this.log.warn('trial.deliveries_exhausted', { sweepId: t.config.sweepId, trialId: r.trialId, deliveries });
        this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
        await this.afterTerminalLater(t.config.sweepId);
        return { action: 'STOP', reason: `trial failed: deliveries ran out (${deliveries} of ${cap})` };
      }
      // An affinity hit: the first trial of an inbox unit that its holder starts.
      const hit = !!t.inbox && r.attempt !== t.attempt && ![...(this.unitMembers.get(unitOf(t))?.values() ?? [])]
        .some((m) => m !== t && m.inbox && (m.status === 'running' || m.attempt > (m.minAttempt ?? 0) || TERMINAL_TRIAL_STATUSES.has(m.status)));
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
          history: kept, error: '', lastError: x.error || x.lastError, valAccuracy: last?.valAccuracy ?? null, valLoss: last?.valLoss ?? null, epochs: kept.length,
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
      if (hit) this.affinityCounts.hits++;
      this.log.info('trial.started', { sweepId: t.config.sweepId, trialId: r.trialId, attempt: r.attempt, worker: r.worker, backend: r.backend, resumedEpochs: resumed, inbox: !!t.inbox });
      this.emit({ type: 'trial_started', sweepId: t.config.sweepId, trial: t });
      return { action: 'CONTINUE', reason: '', leaseToken: this.lease.token(r.trialId, r.attempt) };
    });
  }

  /** One epoch of a running trial; answers the scheduler's decision. Idempotent per (trial, attempt, epoch). */
  async reportEpoch(r: ReportEpochInput): Promise<Decision> {
    const t = this.trialFor(r.trialId);
    return this.lock.run(`trial:${r.trialId}`, async () => {
      if (r.attempt !== t.attempt || t.status !== 'running') return { action: 'STOP', reason: `attempt ${r.attempt} does not own the trial (status ${t.status}, attempt ${t.attempt})` };
      const planned = plannedEpochs(t.config);
      if (r.metrics.epoch > planned) {
        // Would corrupt the history (and the schedulers' rungs) with an epoch the trial cannot have.
        throw new InvalidArgumentError([{ field: 'metrics.epoch', message: `must be at most ${planned}, the trial's planned epochs (head + fine-tune); got ${r.metrics.epoch}` }], 'invalid epoch report');
      }
      const sweep = this.getSweep(t.config.sweepId);
      // Decided before the write so the STOP is stored with the epoch: a retried report, even to a restarted coordinator, gets the same answer.
      const early = sweep.status === 'running' ? this.earlyStop(sweep, t, r.metrics) : null;
      // Appended to the epoch log, not a rewrite of the whole record: a report costs the same at epoch 200 as at epoch 2.
      await this.updateTrial(t, (x) => {
        applyEpochEntries(x, [{ trialId: x.config.trialId, attempt: r.attempt, metrics: r.metrics, earlyStop: early }]);
      }, { attempt: r.attempt, metrics: r.metrics, earlyStop: early });
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
  async trialFinished(r: TrialFinishedInput): Promise<FinishedAck> {
    const t = this.trialFor(r.trialId);
    const res = await this.lock.run(`trial:${r.trialId}`, async () => {
      // A retry of a call that landed (its answer was lost): the same attempt's result is already stored.
      if ((t.status === 'completed' || t.status === 'stopped') && r.attempt === t.attempt) {
        return { accepted: true, reason: 'already recorded', keepModel: r.hasModel === true && !t.modelRef && this.topModelTrials(t.config.sweepId).has(t.config.trialId) };
      }
      if (TERMINAL_TRIAL_STATUSES.has(t.status) && t.status !== 'cancelled') return { accepted: false, reason: `trial is already ${t.status}`, keepModel: false };
      if (r.attempt !== t.attempt || r.attempt < (t.minAttempt ?? 0)) return { accepted: false, reason: `stale attempt ${r.attempt}; attempt ${Math.max(t.attempt, t.minAttempt ?? 0)} owns the trial`, keepModel: false };
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
        x.hasModel = r.hasModel === true;
      });
      this.log.info('trial.finished', { sweepId: t.config.sweepId, trialId: r.trialId, status: t.status, valAccuracy: r.valAccuracy, testAccuracy: r.testAccuracy, seconds: r.seconds });
      this.emit({ type: t.status === 'stopped' ? 'trial_stopped' : 'trial_finished', sweepId: t.config.sweepId, trial: t });
      return { accepted: true, reason: '', keepModel: r.hasModel === true && t.status !== 'cancelled' && this.topModelTrials(t.config.sweepId).has(t.config.trialId) };
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
      const error = r.code ? `${r.code}: ${r.error}` : r.error;
      // A retry on the last allowed delivery would only come back to be refused at TrialStarted: end it now.
      // A drain is never the trial's fault and does not end it here (the next delivery's TrialStarted decides).
      const exhausted = r.retrying && r.code !== 'DRAINING' && r.attempt >= this.queue.maxDeliver;
      await this.updateTrial(t, (x) => {
        // Nothing of a cancelled sweep is retried.
        x.status = cancelled ? 'cancelled' : r.diverged ? 'diverged' : exhausted ? 'failed' : r.retrying ? 'queued' : 'failed';
        x.error = exhausted ? `MAX_DELIVERIES: gave up after ${r.attempt} deliveries; last error: ${error}` : error;
      });
      this.log.warn('trial.failed', { sweepId: t.config.sweepId, trialId: r.trialId, attempt: r.attempt, retrying: r.retrying, error: t.error });
      this.emit({ type: 'trial_failed', sweepId: t.config.sweepId, trial: t });
      return { accepted: true, reason: '' };
    });
    // A unit from an inbox goes back through the shared queue: look soon, once its worker has acked the message.
    if (res.accepted && t.inbox) this.watchInbox(unitOf(t), 500);
    if (res.accepted && TERMINAL_TRIAL_STATUSES.has(t.status)) await this.afterTerminal(t.config.sweepId);
    return res;
  }

  // ---------- weights and models (Object Store) ----------

  /** Stores backbone weights under `name` in the tlsweep-weights bucket (replacing any of that name). */
  async pushWeights(m: ModelUpload): Promise<StoredModelInfo> {
    if (!WEIGHTS_NAME_RE.test(m.name)) {
      throw new InvalidArgumentError([{ field: 'name', message: `must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(m.name)}` }], 'invalid weights');
    }
    const info = await this.models.put(WEIGHTS_BUCKET, m);
    this.log.info('weights.pushed', { name: info.name, bytes: info.bytes, sha256: info.sha256 });
    return info;
  }

  listWeights(): Promise<StoredModelInfo[]> {
    return this.models.list(WEIGHTS_BUCKET);
  }

  /** A trial's stored full model. @throws FailedPreconditionError when it has none. */
  async exportModel(trialId: string): Promise<StoredModel> {
    const t = this.getTrial(trialId);
    if (!t.modelRef) {
      const keep = this.getSweep(t.config.sweepId).spec.keepModels ?? SPEC_DEFAULTS.keepModels;
      throw new FailedPreconditionError(
        `trial '${trialId}' has no stored model: sweep ${t.config.sweepId} keeps the models of its top ${keep} trial(s) by val accuracy (spec keepModels), once their worker has stored them`,
      );
    }
    return this.models.get(MODELS_BUCKET, t.modelRef);
  }

  /**
   * The trials of a sweep whose models are kept: the top `keepModels` by val
   * accuracy among completed and stopped trials (ties: lower index first).
   */
  private topModelTrials(sweepId: string): Set<string> {
    const keep = this.sweeps.get(sweepId)?.spec.keepModels ?? SPEC_DEFAULTS.keepModels;
    const ranked = [...(this.trialsBySweep.get(sweepId)?.values() ?? [])]
      // Only trials that have a model compete: one without (export failed, older worker) must not take a slot.
      .filter((t) => (t.status === 'completed' || t.status === 'stopped') && t.valAccuracy !== null && Number.isFinite(t.valAccuracy) && (t.hasModel || !!t.modelRef))
      .sort((a, b) => b.valAccuracy! - a.valAccuracy! || a.config.index - b.config.index);
    return new Set(ranked.slice(0, keep).map((t) => t.config.trialId));
  }

  /**
   * A worker stored a trial's model (after TrialFinished answered keep_model).
   * Records it on the trial, then deletes every model of the sweep that is no
   * longer in the top `keepModels`, this one included if a better trial
   * finished in between. A model from an attempt that does not own the trial
   * is deleted and refused.
   */
  async modelStored(r: ModelStoredInput): Promise<{ accepted: boolean; reason: string }> {
    if (!r.modelRef) throw new InvalidArgumentError([{ field: 'model_ref', message: 'required' }], 'invalid report');
    // A caller names only its own trial's model: never delete or record a name it made up.
    if (r.modelRef !== trialModelName(r.trialId)) {
      throw new InvalidArgumentError([{ field: 'model_ref', message: `must be the trial's own model name '${trialModelName(r.trialId)}'; got ${JSON.stringify(r.modelRef)}` }], 'invalid report');
    }
    const t = this.trialFor(r.trialId);
    const sweepId = t.config.sweepId;
    return this.lock.run(`models:${sweepId}`, async () => {
      const owned = await this.lock.run(`trial:${r.trialId}`, async () => {
        if (r.attempt !== t.attempt || (t.status !== 'completed' && t.status !== 'stopped')) return false;
        if (t.modelRef && t.modelRef !== r.modelRef) await this.models.delete(MODELS_BUCKET, t.modelRef);
        await this.updateTrial(t, (x) => {
          x.modelRef = r.modelRef;
        });
        return true;
      });
      if (!owned) {
        await this.models.delete(MODELS_BUCKET, r.modelRef);
        return { accepted: false, reason: `attempt ${r.attempt} does not own trial ${r.trialId} (status ${t.status}, attempt ${t.attempt}); model deleted` };
      }
      const top = this.topModelTrials(sweepId);
      for (const other of this.trialsBySweep.get(sweepId)?.values() ?? []) {
        if (!other.modelRef || top.has(other.config.trialId)) continue;
        await this.lock.run(`trial:${other.config.trialId}`, async () => {
          const ref = other.modelRef!;
          await this.models.delete(MODELS_BUCKET, ref);
          await this.updateTrial(other, (x) => {
            x.modelRef = '';
          });
          this.log.info('model.pruned', { sweepId, trialId: other.config.trialId, modelRef: ref });
        });
      }
      const kept = top.has(r.trialId);
      this.log.info('model.stored', { sweepId, trialId: r.trialId, modelRef: r.modelRef, kept });
      return { accepted: true, reason: kept ? '' : 'no longer among the top keepModels trials; deleted' };
    });
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
    ...(spec.weights?.[p.backbone] ? { weights: spec.weights[p.backbone] } : {}),
    // A graph backbone runs at its own input size, whatever the sweep's imageSize.
    ...(spec.graphBackbones?.[p.backbone] ? { graph: spec.graphBackbones[p.backbone], imageSize: spec.graphBackbones[p.backbone].inputSize } : {}),
    exportModel: (spec.keepModels ?? SPEC_DEFAULTS.keepModels) > 0,
    recipe: spec.recipe,
    augmentation: spec.augmentation ?? null,
  };
}
