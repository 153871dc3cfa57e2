import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { TRIAL_STREAM, WORKER_CONSUMER, configsOf, type Logger, type TrialConfig, type TrialTask } from '../../../coordinator/src/index.js';
import type { Reporter } from './reporter.js';
import { runUnit } from './run-unit.js';
import { storeTrialModel } from './store-model.js';
import { WeightsCache } from '../engine/weights/weights-cache.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';
import type { TrialOutcome } from '../engine/train-trial.js';
import type { Checkpointer } from '../engine/checkpoint/trial-checkpoint.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';

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
  private current: { msg: JsMsg; trialIds: string[]; attempt: number; abandoned: boolean } | null = null;

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
   * already stored, so the next worker loses at most the epoch in progress.
   * Returns whether there was a trial to hand back.
   */
  async abandon(reason: string): Promise<boolean> {
    const cur = this.current;
    if (!cur || cur.abandoned) return false;
    cur.abandoned = true;
    cur.msg.nak(0);
    // Best effort: the unit's running trials learn it from their next (refused) report anyway.
    await Promise.all(cur.trialIds.map((trialId) => this.o.reporter
      .trialFailed({ trialId, attempt: cur.attempt, error: reason, code: 'DRAINING', retrying: true, diverged: false })
      .catch(() => {})));
    for (const trialId of cur.trialIds) this.o.log.warn('trial.abandoned', { trialId, attempt: cur.attempt, reason });
    return true;
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

  private async loop(): Promise<void> {
    const { c, maxDeliver } = await this.consumer();
    this.o.log.info('worker.pulling', { maxDeliver });
    while (!this.draining) {
      // The slot is free from here: pull, reports and ack until the next pull are the trial's control-plane time.
      const freeAt = performance.now();
      let msg: JsMsg | null;
      try {
        msg = await c.next({ expires: 2000 });
      } catch (err) {
        this.o.log.warn('worker.pull_failed', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!msg) continue;
      if (this.draining) {
        // The pull was already waiting when the drain began: hand the trial straight back.
        msg.nak(0);
        break;
      }
      await this.handle(msg, maxDeliver, freeAt);
      this.trialsRun++;
      if (this.o.maxTrials && this.trialsRun >= this.o.maxTrials) break;
    }
    this.o.log.info('worker.stopped_pulling', { trialsRun: this.trialsRun });
  }

  private async handle(msg: JsMsg, maxDeliver: number, freeAt: number): Promise<void> {
    let configs: TrialConfig[];
    try {
      const task = msg.json<TrialTask>();
      if (task.v !== 1 && task.v !== 2) throw new Error(`unsupported trial message (v=${String((task as { v?: unknown }).v)})`);
      configs = configsOf(task);
      if (configs.length === 0 || configs.some((c) => !c?.trialId)) throw new Error('a trial in the message has no trialId');
    } catch (err) {
      this.o.log.error('worker.bad_message', { seq: msg.seq, error: (err as Error).message });
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>` and would leave the message to be redelivered.
      msg.term();
      return;
    }
    const heartbeat = setInterval(() => msg.working(), this.o.heartbeatMs ?? 10_000);
    const current = { msg, trialIds: configs.map((c) => c.trialId), attempt: msg.info.deliveryCount, abandoned: false };
    this.current = current;
    try {
      const d = await runUnit(configs, {
        reporter: this.o.reporter, workerId: this.o.workerId, backend: this.o.backend, log: this.o.log,
        attempt: msg.info.deliveryCount, maxDeliver, isDraining: () => this.draining, isAbandoned: () => current.abandoned,
        checkpoints: this.o.checkpoints,
        metrics: this.o.metrics,
        featureCache: {
          memo: this.o.featureMemo,
          stores: this.o.featureStores,
          onEvent: (e) => (e.type === 'store_failed' ? this.o.log.warn('trial.feature_cache', { ...e }) : this.o.log.info('trial.feature_cache', { ...e })),
        },
        runOptions: { weightsAccess: { nc: this.o.nc, cache: this.weightsCache } },
        storeModel: (cfg, attempt, outcome, log) => this.storeModel(cfg, attempt, outcome, log),
      });
      if (current.abandoned) return; // handed back already (drain grace period over)
      if (d.action === 'ack') msg.ack();
      else if (d.action === 'nak') msg.nak(d.immediately ? 0 : (this.o.nakDelayMs ?? 5000));
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>` and would redeliver the message; the reason travels in TrialFailed.
      else if (d.action === 'term') msg.term();
      // slotMs: this worker's time on the message from the pull that got it to its ack; per trial,
      // overheadMs = (slotMs − runnerMs) / trials is the control plane's share (bench:control reads these).
      const slotMs = performance.now() - freeAt;
      this.o.log.info('unit.done', {
        seq: msg.seq, action: d.action, trials: d.trials, slotMs: round3(slotMs), runnerMs: round3(d.runnerMs), overheadMs: round3((slotMs - d.runnerMs) / Math.max(1, d.trials)),
      });
    } finally {
      clearInterval(heartbeat);
      this.current = null;
    }
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

