import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { CacheHolders, openInbox, TRIAL_STREAM, WORKER_CONSUMER, configsOf, type Logger, type TrialConfig, type TrialTask } from '../../../coordinator/src/index.js';
import { HeldFeatures } from './held-features.js';
import type { Reporter } from './reporter.js';
import { runUnit } from './run-unit.js';
import { storeTrialModel } from './store-model.js';
import { WeightsCache } from '../engine/weights/weights-cache.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';
import type { TrialOutcome } from '../engine/train-trial.js';
import type { Checkpointer } from '../engine/checkpoint/trial-checkpoint.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { FrozenPrefixMode } from '../engine/per-epoch-features.js';

export interface TrialConsumerOptions {
  nc: NatsConnection;
  reporter: Reporter;
  workerId: string;
  /** Backend actually running (logged and stored with each trial). */
  backend: string;
  log: Logger;
  /** `working()` interval while a trial runs. @default 10000 ms */
  heartbeatMs?: number;
  /** Redelivery delay after a transient failure. @default 5000 ms */
  nakDelayMs?: number;
  /** Stop after this many queue messages (trials or work units); 0 = never. @default 0 */
  maxTrials?: number;
  /** Frozen-prefix features shared by this process's trials. @default none (every trial computes its own) */
  featureMemo?: FeatureMemo;
  /** Object Store weights (`objstore:` refs) kept between this process's trials. @default 1 GiB */
  weightsCacheBytes?: number;
  /** Feature-cache tiers behind the memo, fastest first: local disk, the NATS Object Store. @default none */
  featureStores?: readonly FeatureStore[];
  /** Prometheus metrics to update. @default none */
  metrics?: WorkerMetrics;
  /** Epoch checkpoints (the NATS Object Store): saved after every epoch, resumed on redelivery. @default none (a redelivered trial starts over) */
  checkpoints?: Checkpointer;
  /** Where trials' frozen-prefix output comes from (engine/per-epoch-features.ts). @default 'once' */
  frozenPrefix?: FrozenPrefixMode;
  /**
   * Cache-affinity dispatch (TLSWEEP_AFFINITY): advertise the features held locally in the
   * `tlsweep-cache-holders` KV (created by the coordinator) and take trials from this worker's inbox
   * before the shared queue; only features that took at least `minBuildMs` to compute are advertised.
   * null turns it off. @default { holdersTtlMs: 30000, minBuildMs: 2000 }
   */
  affinity?: { holdersTtlMs?: number; minBuildMs?: number } | null;
}

/**
 * Pulls trials one at a time from the shared durable consumer and runs them.
 * `drain()` stops pulling; a trial in hand is stopped at its next epoch and
 * `nak`ed for immediate redelivery to another worker.
 */
export class TrialConsumer {
  private draining = false;
  private done: Promise<void> | null = null;
  private trialsRun = 0;
  private readonly weightsCache: WeightsCache;
  /** The message in hand, so a drain whose grace period runs out can hand it back at once. */
  private current: { msg: JsMsg; trialIds: string[]; attempt: number; abandoned: boolean; fromInbox: boolean } | null = null;
  /** What this worker advertises for cache-affinity dispatch; null when off or the bucket is missing. */
  private held: HeldFeatures | null = null;
  /** This worker's inbox consumer once the coordinator created it, and when it was last looked for. */
  private inbox: Consumer | null = null;
  private inboxLookedAt = 0;

  constructor(private readonly o: TrialConsumerOptions) {
    this.weightsCache = new WeightsCache(o.weightsCacheBytes ?? 1024 ** 3);
  }

  /** Uploads a top trial's model and reports it; failures cost the model, never the result. */
  private async storeModel(cfg: TrialConfig, attempt: number, outcome: TrialOutcome, log: Logger): Promise<void> {
    try {
      const modelRef = await storeTrialModel(this.o.nc, cfg, outcome);
      const ack = await this.o.reporter.modelStored({ trialId: cfg.trialId, attempt, modelRef });
      log.info('trial.model_stored', { modelRef, kept: ack.accepted && !ack.reason, reason: ack.reason });
    } catch (err) {
      log.warn('trial.model_not_stored', { error: (err as Error).message });
    }
  }

  /** Starts the pull loop; resolves when it ends (drain or maxTrials). */
  run(): Promise<void> {
    this.done ??= this.loop();
    return this.done;
  }

  /**
   * The drain's grace period ran out with a trial still training: hand it
   * back now (`nak(0)`, immediate redelivery). Its last epoch checkpoint is
   * stored first (checkpoints are written in the background; waited for up to
   * 5 s), so the next worker loses at most the epoch in progress.
   * Returns whether there was a trial to hand back.
   */
  async abandon(reason: string): Promise<boolean> {
    const cur = this.current;
    if (!cur || cur.abandoned) return false;
    cur.abandoned = true;
    await this.o.checkpoints?.idle?.(5000);
    // An inbox never redelivers: the coordinator moves the unit on once the message is gone.
    if (cur.fromInbox) cur.msg.ack();
    else cur.msg.nak(0);
    // Best effort: the unit's running trials learn it from their next (refused) report anyway.
    await Promise.all(cur.trialIds.map((trialId) => this.o.reporter
      .trialFailed({ trialId, attempt: cur.attempt, error: reason, code: 'DRAINING', retrying: true, diverged: false })
      .catch(() => {})));
    for (const trialId of cur.trialIds) this.o.log.warn('trial.abandoned', { trialId, attempt: cur.attempt, reason });
    return true;
  }

  /** Withdraws this worker's cache-affinity advertisements (a process about to exit without ending the loop). */
  async stopAdvertising(): Promise<void> {
    await this.held?.stop();
  }

  /** Stops pulling and hands back the trial in progress; resolves when the loop has ended. */
  async drain(): Promise<void> {
    this.draining = true;
    await this.done;
  }

  private async consumer(): Promise<{ c: Consumer; maxDeliver: number }> {
    // The coordinator creates the consumer; a worker that starts first waits for it.
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const c = await jetstream(this.o.nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
        const info = await c.info();
        return { c, maxDeliver: info.config.max_deliver ?? -1 };
      } catch (err) {
        if (this.draining) throw err;
        this.o.log.info('worker.waiting_for_queue', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Opens the holders KV and starts advertising; affinity stays off (logged) when the coordinator has not created it. */
  private async startAffinity(): Promise<void> {
    const a = this.o.affinity === undefined ? {} : this.o.affinity;
    if (!a) return;
    try {
      const holders = await CacheHolders.open(this.o.nc, { ttlMs: a.holdersTtlMs ?? 30_000, create: false });
      this.held = new HeldFeatures(holders, this.o.workerId, { memo: this.o.featureMemo, stores: this.o.featureStores }, this.o.log, a.minBuildMs ?? 2000);
      await this.held.start();
    } catch (err) {
      this.held = null;
      this.o.log.warn('worker.affinity_unavailable', { error: (err as Error).message });
    }
  }

  /**
   * A message from this worker's inbox if one waits there (cache-affinity
   * dispatch prefers it), else null. The inbox consumer exists only once the
   * coordinator routed something here; it is looked for at most every 250 ms (one cheap request).
   */
  private async nextFromInbox(): Promise<JsMsg | null> {
    if (!this.held) return null;
    if (!this.inbox && performance.now() - this.inboxLookedAt > 250) {
      this.inboxLookedAt = performance.now();
      this.inbox = await openInbox(this.o.nc, this.o.workerId);
    }
    if (!this.inbox) return null;
    try {
      if ((await this.inbox.info()).num_pending === 0) return null;
      return await this.inbox.next({ expires: 1000 });
    } catch (err) {
      // Deleted (inactive) or unreachable: looked for again later.
      this.o.log.warn('worker.inbox_pull_failed', { error: (err as Error).message });
      this.inbox = null;
      return null;
    }
  }

  private async loop(): Promise<void> {
    const { c, maxDeliver } = await this.consumer();
    await this.startAffinity();
    this.o.log.info('worker.pulling', { maxDeliver, affinity: !!this.held });
    try {
      await this.pullLoop(c, maxDeliver);
    } finally {
      await this.held?.stop();
    }
  }

  private async pullLoop(c: Consumer, maxDeliver: number): Promise<void> {
    while (!this.draining) {
      // The slot is free from here: pull, reports and ack until the next pull are the trial's control-plane time.
      const freeAt = performance.now();
      let msg: JsMsg | null;
      let fromInbox = false;
      try {
        msg = await this.nextFromInbox();
        fromInbox = msg !== null;
        // Short shared pulls while affinity is on, so a unit routed here waits at most about a second.
        msg ??= await c.next({ expires: this.held ? 1000 : 2000 });
      } catch (err) {
        this.o.log.warn('worker.pull_failed', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!msg) continue;
      if (this.draining) {
        // The pull was already waiting when the drain began: hand the trial straight back
        // (an inbox message is acked: the coordinator sends it to the shared queue once it is gone).
        if (fromInbox) msg.ack();
        else msg.nak(0);
        break;
      }
      await this.handle(msg, maxDeliver, freeAt, fromInbox);
      this.trialsRun++;
      if (this.o.maxTrials && this.trialsRun >= this.o.maxTrials) break;
    }
    this.o.log.info('worker.stopped_pulling', { trialsRun: this.trialsRun });
  }

  private async handle(msg: JsMsg, maxDeliver: number, freeAt: number, fromInbox: boolean): Promise<void> {
    let configs: TrialConfig[];
    let attemptBase = 0;
    try {
      const task = msg.json<TrialTask>();
      if (task.v !== 1 && task.v !== 2) throw new Error(`unsupported trial message (v=${String((task as { v?: unknown }).v)})`);
      configs = configsOf(task);
      attemptBase = Number.isInteger(task.attemptBase) && task.attemptBase! > 0 ? task.attemptBase! : 0;
      if (configs.length === 0 || configs.some((c) => !c?.trialId)) throw new Error('a trial in the message has no trialId');
    } catch (err) {
      this.o.log.error('worker.bad_message', { seq: msg.seq, error: (err as Error).message });
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>` and would leave the message to be redelivered.
      msg.term();
      return;
    }
    const heartbeat = setInterval(() => msg.working(), this.o.heartbeatMs ?? 10_000);
    // Deliveries before this message (an inbox delivery that failed) count: the coordinator caps attempts.
    const attempt = attemptBase + msg.info.deliveryCount;
    const current = { msg, trialIds: configs.map((c) => c.trialId), attempt, abandoned: false, fromInbox };
    this.current = current;
    const usedFeatures = new Set<string>();
    const builtFeatures = new Map<string, number>();
    try {
      const d = await runUnit(configs, {
        reporter: this.o.reporter, workerId: this.o.workerId, backend: this.o.backend, log: this.o.log,
        attempt, maxDeliver, isDraining: () => this.draining, isAbandoned: () => current.abandoned,
        checkpoints: this.o.checkpoints,
        metrics: this.o.metrics,
        featureCache: {
          memo: this.o.featureMemo,
          stores: this.o.featureStores,
          onEvent: (e) => {
            if (e.type !== 'store_failed') usedFeatures.add(e.key);
            if (e.type === 'computed') builtFeatures.set(e.key, e.seconds);
            if (e.type === 'store_failed') this.o.log.warn('trial.feature_cache', { ...e });
            else this.o.log.info('trial.feature_cache', { ...e, inbox: fromInbox });
          },
        },
        runOptions: { weightsAccess: { nc: this.o.nc, cache: this.weightsCache }, frozenPrefix: this.o.frozenPrefix },
        storeModel: (cfg, attempt, outcome, log) => this.storeModel(cfg, attempt, outcome, log),
      });
      await this.held?.add(configs, usedFeatures, builtFeatures).catch((err) => this.o.log.warn('worker.advertise_failed', { error: (err as Error).message }));
      if (current.abandoned) return; // handed back already (drain grace period over)
      // An inbox delivers once: whatever became of the unit (each trial reported it), the message goes and the
      // coordinator sends what is left to the shared queue, counting this delivery as an attempt.
      if (fromInbox) msg.ack();
      else if (d.action === 'ack') msg.ack();
      else if (d.action === 'nak') msg.nak(d.immediately ? 0 : (this.o.nakDelayMs ?? 5000));
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>` and would redeliver the message; the reason travels in TrialFailed.
      else if (d.action === 'term') msg.term();
      // slotMs: this worker's time on the message from the pull that got it to its ack; per trial,
      // overheadMs = (slotMs − runnerMs) / trials is the control plane's share (bench:control reads these).
      const slotMs = performance.now() - freeAt;
      this.o.log.info('unit.done', {
        seq: msg.seq, inbox: fromInbox, attempt, action: d.action, trials: d.trials, slotMs: round3(slotMs), runnerMs: round3(d.runnerMs), overheadMs: round3((slotMs - d.runnerMs) / Math.max(1, d.trials)),
      });
    } finally {
      clearInterval(heartbeat);
      this.current = null;
    }
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

