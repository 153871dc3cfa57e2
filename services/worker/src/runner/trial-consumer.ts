import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { TRIAL_STREAM, WORKER_CONSUMER, testMetricsToPb, type Logger, type TrialTask } from '../../../coordinator/src/index.js';
import { toTrialError, TrialError } from '../errors.js';
import type { Reporter } from './reporter.js';
import { runTrial } from './run-trial.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
import { unfreezeLabel, unfreezesAnything } from '../engine/recipe-options.js';
import type { FeatureStore } from '../engine/feature-cache/feature-store.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Checkpointer, TrialCheckpoint } from '../engine/checkpoint/trial-checkpoint.js';
import type { EpochReport } from '../engine/train-trial.js';
import { checkDivergence } from './divergence.js';

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
  /** Stop after this many trials; 0 = never. @default 0 */
  maxTrials?: number;
  /** Frozen-prefix features shared by this process's trials. @default none (every trial computes its own) */
  featureMemo?: FeatureMemo;
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
  /** The trial in hand, so a drain whose grace period runs out can hand it back at once. */
  private current: { msg: JsMsg; trialId: string; attempt: number; abandoned: boolean } | null = null;

  constructor(private readonly o: TrialConsumerOptions) {}

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
    await this.o.reporter
      .trialFailed({ trialId: cur.trialId, attempt: cur.attempt, error: reason, code: 'DRAINING', retrying: true, diverged: false })
      .catch(() => {});
    this.o.log.warn('trial.abandoned', { trialId: cur.trialId, attempt: cur.attempt, reason });
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
      await this.handle(msg, maxDeliver);
      this.trialsRun++;
      if (this.o.maxTrials && this.trialsRun >= this.o.maxTrials) break;
    }
    this.o.log.info('worker.stopped_pulling', { trialsRun: this.trialsRun });
  }

  private async handle(msg: JsMsg, maxDeliver: number): Promise<void> {
    let task: TrialTask;
    try {
      task = msg.json<TrialTask>();
      if (task.v !== 1 || !task.config?.trialId) throw new Error(`unsupported trial message (v=${String(task.v)})`);
    } catch (err) {
      this.o.log.error('worker.bad_message', { seq: msg.seq, error: (err as Error).message });
      // No reason argument: nats-server 2.9 does not parse `+TERM <reason>` and would leave the message to be redelivered.
      msg.term();
      return;
    }
    const cfg = task.config;
    const attempt = msg.info.deliveryCount;
    const log = this.o.log.child({ sweepId: cfg.sweepId, trialId: cfg.trialId, attempt });
    const { reporter } = this.o;
    const heartbeat = setInterval(() => msg.working(), this.o.heartbeatMs ?? 10_000);
    const metrics = this.o.metrics;
    let trainImages = 0;
    let skippedImages = 0;
    metrics?.trialStarted();
    this.current = { msg, trialId: cfg.trialId, attempt, abandoned: false };
    try {
      // An earlier attempt's checkpoint: this attempt continues after its last epoch.
      const resumeFrom: TrialCheckpoint | null = await (this.o.checkpoints?.load(cfg.trialId) ?? Promise.resolve(null)).catch((err: Error) => {
        log.warn('trial.checkpoint_unreadable', { error: err.message });
        return null;
      });
      const resumedEpochs = resumeFrom?.epochsDone ?? 0;
      const start = await reporter.trialStarted({ trialId: cfg.trialId, attempt, worker: this.o.workerId, backend: this.o.backend, pretrained: false, weightsSource: '', resumedEpochs });
      if (resumedEpochs > 0) log.info('trial.resuming', { resumedEpochs, phase: resumeFrom!.phase });
      if (start.action === 'STOP') {
        log.info('trial.skipped', { reason: start.reason });
        metrics?.trialEnded('skipped');
        msg.ack();
        return;
      }
      log.info('trial.running', { backbone: cfg.backbone, unfreeze: unfreezeLabel(cfg.unfreeze), learningRate: cfg.learningRate, dropout: cfg.dropout, backend: this.o.backend });
      let stoppedByDrain = false;
      const plannedEpochs = cfg.headEpochs + (unfreezesAnything(cfg.unfreeze) ? cfg.fineTuneEpochs : 0);
      let firstEpoch: EpochReport | undefined = resumeFrom?.history[0];
      // Once the coordinator says another attempt owns the trial (our lease lapsed), this one must not
      // overwrite the owner's checkpoint with its own, older progress.
      let owner = true;
      const outcome = await runTrial(cfg, {
        onEpoch: async (m) => {
          if (this.current?.abandoned) throw new TrialError('DRAINING', `worker ${this.o.workerId} handed the trial back`, { retryable: true });
          const d = await reporter.reportEpoch({
            trialId: cfg.trialId,
            attempt,
            metrics: { ...m, learningRate: m.learningRate ?? NaN, trainableLayers: m.trainableLayers ?? 0 },
          });
          log.info('trial.epoch', { ...m, decision: d.action });
          if (d.action === 'STOP' && /does not own/.test(d.reason)) owner = false;
          metrics?.epoch(m, trainImages);
          firstEpoch ??= m;
          // Reported first, so the record shows the epoch that diverged.
          checkDivergence(m, firstEpoch);
          // A drain stops the trial between epochs; after the last one the result is kept.
          if (this.draining && m.epoch < plannedEpochs && d.action !== 'STOP') {
            stoppedByDrain = true;
            return 'STOP';
          }
          return d.action === 'STOP' ? 'STOP' : 'CONTINUE';
        },
        onPhase: (phase) => log.info('trial.phase', { phase }),
        onDataset: (sizes) => {
          trainImages = sizes.train;
          skippedImages = sizes.skipped;
        },
      }, {
        memo: this.o.featureMemo,
        stores: this.o.featureStores,
        onEvent: (e) => (e.type === 'store_failed' ? log.warn('trial.feature_cache', { ...e }) : log.info('trial.feature_cache', { ...e })),
      }, this.o.checkpoints ? {
        trialId: cfg.trialId,
        store: {
          load: (id) => this.o.checkpoints!.load(id),
          save: (id, cp) => (owner ? this.o.checkpoints!.save(id, cp) : Promise.resolve()),
          delete: (id) => this.o.checkpoints!.delete(id),
        },
        resumeFrom,
        onSaveError: (err) => log.warn('trial.checkpoint_failed', { error: (err as Error).message }),
      } : undefined);
      if (stoppedByDrain) throw new TrialError('DRAINING', `worker ${this.o.workerId} is draining`, { retryable: true });
      const fin = await reporter.trialFinished({
        trialId: cfg.trialId,
        attempt,
        valAccuracy: outcome.valAccuracy,
        valLoss: outcome.valLoss,
        testAccuracy: outcome.testAccuracy,
        testLoss: outcome.testLoss,
        epochs: outcome.epochs,
        seconds: outcome.seconds,
        stopped: outcome.stopped,
        totalParams: outcome.totalParams,
        trainableParams: outcome.trainableParams,
        cutLayer: outcome.cutLayer,
        unfreezeLayers: outcome.unfreezeLayers,
        earlyStops: outcome.earlyStops,
        pretrained: outcome.pretrained,
        weightsSource: outcome.weightsSource,
        backend: outcome.backend,
        testMetrics: testMetricsToPb(outcome.testMetrics),
        phaseSeconds: outcome.phaseSeconds,
        skippedImages,
      });
      if (!fin.accepted) {
        // Another delivery owns the trial (our lease lapsed) or it is already done: acking would
        // delete the message the owner still needs, so leave it to the owner or to redelivery.
        log.warn('trial.result_refused', { reason: fin.reason });
        metrics?.trialEnded('refused');
        return;
      }
      msg.ack();
      metrics?.trialEnded(outcome.stopped ? 'stopped' : 'completed');
      log.info('trial.done', { resumedEpochs: outcome.resumedEpochs, skippedImages, valAccuracy: outcome.valAccuracy, testAccuracy: outcome.testAccuracy, seconds: outcome.seconds, stopped: outcome.stopped, featureMemo: this.o.featureMemo?.stats() });
    } catch (err) {
      if (this.current?.abandoned) return; // handed back already (drain grace period over)
      let te = toTrialError(err);
      if (te.code === 'OUT_OF_MEMORY') {
        te = new TrialError('OUT_OF_MEMORY', `${te.message} (batch size ${cfg.batchSize}, image size ${cfg.imageSize ?? 'backbone default'}, ${this.o.backend} backend). Hint: lower batchSize or imageSize, unfreeze fewer layers, or run on a worker with more memory`, { retryable: false, cause: te });
      }
      const lastTry = maxDeliver > 0 && attempt >= maxDeliver;
      // A report that could not be delivered says nothing about the trial: never end it for that (term
      // would make it final, since nats-server 2.9 acts on a bare +TERM); let the queue redeliver it.
      const retrying = (te.retryable || te.code === 'REPORT') && !lastTry;
      log.warn('trial.error', { code: te.code, error: te.message, retrying });
      metrics?.trialEnded(retrying || te.code === 'DRAINING' ? 'retried' : 'failed');
      await reporter
        .trialFailed({ trialId: cfg.trialId, attempt, error: te.message, code: te.code, retrying, diverged: te.code === 'DIVERGED' })
        .catch((e) => log.error('trial.fail_report_lost', { error: (e as Error).message }));
      if (te.code === 'DRAINING') msg.nak(0);
      else if (retrying) msg.nak(this.o.nakDelayMs ?? 5000);
      // The reason travels in TrialFailed (and the MSG_TERMINATED advisory names the message): see above for why term() takes none.
      else msg.term();
    } finally {
      clearInterval(heartbeat);
      this.current = null;
    }
  }
}
