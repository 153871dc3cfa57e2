import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { TRIAL_STREAM, WORKER_CONSUMER, testMetricsToPb, type Logger, type TrialTask } from '../../../coordinator/src/index.js';
import { toTrialError, TrialError } from '../errors.js';
import type { Reporter } from './reporter.js';
import { runTrial } from './run-trial.js';
import type { FeatureMemo } from '../engine/feature-memo.js';
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
  /** Stop after this many trials; 0 = never. @default 0 */
  maxTrials?: number;
  /** Frozen-prefix features shared by this process's trials. @default none (every trial computes its own) */
  featureMemo?: FeatureMemo;
  /** Prometheus metrics to update. @default none */
  metrics?: WorkerMetrics;
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

  constructor(private readonly o: TrialConsumerOptions) {}

  /** Starts the pull loop; resolves when it ends (drain or maxTrials). */
  run(): Promise<void> {
    this.done ??= this.loop();
    return this.done;
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
    let task: TrialTask;
    try {
      task = msg.json<TrialTask>();
      if (task.v !== 1 || !task.config?.trialId) throw new Error(`unsupported trial message (v=${String(task.v)})`);
    } catch (err) {
      this.o.log.error('worker.bad_message', { seq: msg.seq, error: (err as Error).message });
      msg.term(`unreadable trial message: ${(err as Error).message}`);
      return;
    }
    const cfg = task.config;
    const attempt = msg.info.deliveryCount;
    const log = this.o.log.child({ sweepId: cfg.sweepId, trialId: cfg.trialId, attempt });
    const { reporter } = this.o;
    const heartbeat = setInterval(() => msg.working(), this.o.heartbeatMs ?? 10_000);
    const metrics = this.o.metrics;
    let trainImages = 0;
    metrics?.trialStarted();
    try {
      const start = await reporter.trialStarted({ trialId: cfg.trialId, attempt, worker: this.o.workerId, backend: this.o.backend, pretrained: false, weightsSource: '' });
      if (start.action === 'STOP') {
        log.info('trial.skipped', { reason: start.reason });
        metrics?.trialEnded('skipped');
        msg.ack();
        return;
      }
      log.info('trial.running', { backbone: cfg.backbone, unfreeze: cfg.unfreeze, learningRate: cfg.learningRate, dropout: cfg.dropout, backend: this.o.backend });
      let stoppedByDrain = false;
      const plannedEpochs = cfg.headEpochs + (cfg.unfreeze > 0 ? cfg.fineTuneEpochs : 0);
      // Time the runner spends in our epoch hook (reports) is control-plane time, not the runner's own.
      let hookMs = 0;
      const runnerStart = performance.now();
      const outcome = await runTrial(cfg, {
        onEpoch: async (m) => {
          const hookStart = performance.now();
          const d = await reporter.reportEpoch({ trialId: cfg.trialId, attempt, metrics: m });
          log.info('trial.epoch', { ...m, decision: d.action });
          metrics?.epoch(m, trainImages);
          hookMs += performance.now() - hookStart;
          // A drain stops the trial between epochs; after the last one the result is kept.
          if (this.draining && m.epoch < plannedEpochs && d.action !== 'STOP') {
            stoppedByDrain = true;
            return 'STOP';
          }
          return d.action === 'STOP' ? 'STOP' : 'CONTINUE';
        },
        onPhase: (phase) => log.info('trial.phase', { phase }),
        onDataset: (sizes) => (trainImages = sizes.train),
      }, this.o.featureMemo);
      const runnerMs = performance.now() - runnerStart - hookMs;
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
        pretrained: outcome.pretrained,
        weightsSource: outcome.weightsSource,
        backend: outcome.backend,
        testMetrics: testMetricsToPb(outcome.testMetrics),
        phaseSeconds: outcome.phaseSeconds,
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
      // slotMs: this worker's time on the trial from the pull that got it to its ack; overheadMs = slotMs − runnerMs (bench:control reads these).
      const slotMs = performance.now() - freeAt;
      log.info('trial.done', {
        valAccuracy: outcome.valAccuracy, testAccuracy: outcome.testAccuracy, seconds: outcome.seconds, stopped: outcome.stopped, featureMemo: this.o.featureMemo?.stats(),
        slotMs: round3(slotMs), runnerMs: round3(runnerMs), overheadMs: round3(slotMs - runnerMs),
      });
    } catch (err) {
      const te = toTrialError(err);
      const lastTry = maxDeliver > 0 && attempt >= maxDeliver;
      const retrying = te.retryable && !lastTry;
      log.warn('trial.error', { code: te.code, error: te.message, retrying });
      metrics?.trialEnded(retrying || te.code === 'DRAINING' ? 'retried' : 'failed');
      await reporter
        .trialFailed({ trialId: cfg.trialId, attempt, error: te.message, code: te.code, retrying })
        .catch((e) => log.error('trial.fail_report_lost', { error: (e as Error).message }));
      if (te.code === 'DRAINING') msg.nak(0);
      else if (retrying) msg.nak(this.o.nakDelayMs ?? 5000);
      else msg.term(`${te.code}: ${te.message}`);
    } finally {
      clearInterval(heartbeat);
    }
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
