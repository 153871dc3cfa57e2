import { fusableGroups, testMetricsToPb, type Logger, type TrialConfig } from '../../../coordinator/src/index.js';
import type { EpochReport, TrialOutcome } from '../engine/train-trial.js';
import type { Checkpointer, TrialCheckpoint, TrialCheckpointing } from '../engine/checkpoint/trial-checkpoint.js';
import { checkDivergence } from './divergence.js';
import { unfreezeLabel, unfreezesAnything } from '../engine/recipe-options.js';
import { toTrialError, TrialError } from '../errors.js';
import type { WorkerMetrics } from '../metrics/worker-metrics.js';
import type { Reporter } from './reporter.js';
import { NOOP_BACKBONE, runNoopTrial } from './noop-runner.js';
import { canFuse, runFusedTrials, runTrial, type RunTrialHooks, type RunTrialOptions, type WorkerFeatureCache } from './run-trial.js';

export interface UnitContext {
  reporter: Reporter;
  workerId: string;
  backend: string;
  log: Logger;
  /** The unit message's delivery count: every trial of the unit reports it as its attempt. */
  attempt: number;
  maxDeliver: number;
  isDraining(): boolean;
  /** True once a drain's grace period handed the message back: the trials stop at their next epoch. @default never */
  isAbandoned?(): boolean;
  /** Epoch checkpoints: saved after every epoch of every trial (alone or fused), resumed on redelivery. @default none */
  checkpoints?: Checkpointer;
  /** This worker's feature-cache tiers. @default none */
  featureCache?: WorkerFeatureCache;
  /** Weights access for `objstore:` refs. @default none */
  runOptions?: RunTrialOptions;
  metrics?: WorkerMetrics;
  /** Uploads a finished trial's model when the coordinator asks to keep it (after its result is stored). @default models are not kept */
  storeModel?(config: TrialConfig, attempt: number, outcome: TrialOutcome, log: Logger): Promise<void>;
}

/** How one trial of a unit ended, as far as the queue message is concerned. */
type TrialEnd = 'done' | 'refused' | 'retry' | 'draining' | 'final';

/** What to do with the unit's message. */
export type UnitDisposition = { action: 'ack' } | { action: 'nak'; immediately: boolean } | { action: 'term'; reason: string } | { action: 'leave' };

/**
 * Runs a work unit: its fusable groups one after another, each trial
 * reporting for itself (started, epochs, finished or failed, with the unit's
 * delivery count as its attempt). A trial the coordinator answers STOP at
 * start (already terminal after an earlier delivery, cancelled sweep, stale
 * attempt) is skipped; the others of a redelivered unit run again.
 */
export async function runUnit(configs: readonly TrialConfig[], ctx: UnitContext): Promise<UnitDisposition & UnitTiming> {
  const ends: TrialEnd[] = [];
  let lastError = '';
  // The runners' own time: training wall time less the time their epoch hooks spent reporting (control-plane time).
  let runnerMs = 0;
  const done = (d: UnitDisposition) => ({ ...d, runnerMs, trials: configs.length });
  // A unit mixes head-only and fine-tune trials only when the planner shared their phase 1 (fuse.shareHeads): they fuse.
  for (const group of fusableGroups(configs, { shareHeads: true })) {
    if (ctx.isDraining()) {
      // Not started: they simply go back with the message.
      ends.push(...group.map((): TrialEnd => 'draining'));
      continue;
    }
    // The group's TrialStarted calls go out together (and finish below): a unit's control-plane
    // time is then a few round trips, not a few per trial.
    const runs = group.map((config) => new TrialRun(config, ctx));
    const starts = await Promise.all(runs.map((run) => run.start()));
    const running: TrialRun[] = [];
    for (const [i, end] of starts.entries()) {
      if (end) ends.push(end);
      else running.push(runs[i]);
    }
    if (running.length === 0) continue;
    const trainStart = performance.now();
    try {
      // Checkpoints are per trial, fused or not: trials resuming from theirs fuse with the rest (each from its own epoch).
      const sideBySide = isNoopGroup(running);
      const outcomes = canFuse(running.map((r) => r.config), ctx.runOptions)
        ? await runFusedTrials(running.map((r) => r.config), running.map((r) => r.hooks()), ctx.featureCache, { ...ctx.runOptions, checkpoints: running.map((r) => r.checkpointing()) })
        : sideBySide ? await Promise.all(running.map((r) => runNoopTrial(r.config, r.hooks())))
        : await sequentially(running, ctx);
      // Side by side, hook times overlap: each trial's own time less its own hook time.
      runnerMs += sideBySide
        ? outcomes.reduce((ms, o, i) => ms + Math.max(0, o.seconds * 1000 - running[i].hookMs), 0)
        : performance.now() - trainStart - running.reduce((ms, r) => ms + r.hookMs, 0);
      ends.push(...(await Promise.all(running.map((r, i) => r.finish(outcomes[i])))));
    } catch (err) {
      runnerMs += performance.now() - trainStart - running.reduce((ms, r) => ms + r.hookMs, 0);
      lastError = (err as Error).message;
      for (const r of running) ends.push(await r.fail(err));
    }
  }
  if (ends.includes('draining')) return done({ action: 'nak', immediately: true });
  if (ends.includes('retry')) return done({ action: 'nak', immediately: false });
  if (ends.includes('refused')) return done({ action: 'leave' });
  if (ends.length > 0 && ends.every((e) => e === 'final')) return done({ action: 'term', reason: lastError || 'every trial failed' });
  return done({ action: 'ack' });
}

/** Where a unit's time went, for the control-plane benchmark. */
export interface UnitTiming {
  /** The runners' own milliseconds (training, less time spent in report calls). */
  runnerMs: number;
  trials: number;
}

/**
 * `noop` trials (control-plane benchmark) train nothing, so a group of them
 * runs as a fused group would: side by side, each reporting its own epochs
 * and leaving alone on STOP.
 */
function isNoopGroup(runs: TrialRun[]): boolean {
  return runs.length > 1 && runs.every((r) => r.config.backbone === NOOP_BACKBONE);
}

/** Trials of a group that cannot fuse run one by one; a failure stops the rest of the group (they fail with it). */
async function sequentially(runs: TrialRun[], ctx: UnitContext): Promise<TrialOutcome[]> {
  const outcomes: TrialOutcome[] = [];
  for (const r of runs) outcomes.push(await runTrial(r.config, r.hooks(), ctx.featureCache, { ...ctx.runOptions, checkpoint: r.checkpointing() }));
  return outcomes;
}

/** One trial's reports within a unit. */
class TrialRun {
  private stoppedByDrain = false;
  /** Milliseconds the runner spent in this trial's epoch hook (reporting). */
  hookMs = 0;
  /** An earlier attempt's checkpoint: this attempt continues after its last epoch. */
  resumeFrom: TrialCheckpoint | null = null;
  private skippedImages = 0;
  private firstEpoch: EpochReport | undefined;
  /** False once the coordinator says another attempt owns the trial: then this one must not overwrite its checkpoint. */
  private owner = true;
  private trainImages = 0;
  private readonly log: Logger;

  constructor(readonly config: TrialConfig, private readonly ctx: UnitContext) {
    this.log = ctx.log.child({ sweepId: config.sweepId, trialId: config.trialId, attempt: ctx.attempt });
  }

  /** TrialStarted; returns how the trial ended when it does not run (skipped, or the report failed). */
  async start(): Promise<TrialEnd | null> {
    const { config: cfg, ctx } = this;
    ctx.metrics?.trialStarted();
    try {
      this.resumeFrom = await (ctx.checkpoints?.load(cfg.trialId) ?? Promise.resolve(null)).catch((err: Error) => {
        this.log.warn('trial.checkpoint_unreadable', { error: err.message });
        return null;
      });
      this.firstEpoch = this.resumeFrom?.history[0];
      const resumedEpochs = this.resumeFrom?.epochsDone ?? 0;
      const start = await ctx.reporter.trialStarted({ trialId: cfg.trialId, attempt: ctx.attempt, worker: ctx.workerId, backend: ctx.backend, pretrained: false, weightsSource: '', resumedEpochs });
      if (resumedEpochs > 0) this.log.info('trial.resuming', { resumedEpochs, phase: this.resumeFrom!.phase });
      if (start.action === 'STOP') {
        this.log.info('trial.skipped', { reason: start.reason });
        ctx.metrics?.trialEnded('skipped');
        return 'done';
      }
    } catch (err) {
      return this.fail(err);
    }
    this.log.info('trial.running', { backbone: cfg.backbone, unfreeze: unfreezeLabel(cfg.unfreeze), learningRate: cfg.learningRate, dropout: cfg.dropout, backend: ctx.backend });
    return null;
  }

  /** Checkpointing for this trial, alone or as a fused group's member; saves only while this attempt owns the trial. */
  checkpointing(): TrialCheckpointing | undefined {
    const store = this.ctx.checkpoints;
    if (!store) return undefined;
    return {
      trialId: this.config.trialId,
      store: {
        load: (id) => store.load(id),
        save: (id, cp) => (this.owner ? store.save(id, cp) : Promise.resolve()),
        delete: (id) => store.delete(id),
      },
      resumeFrom: this.resumeFrom,
      onSaveError: (err) => this.log.warn('trial.checkpoint_failed', { error: err instanceof Error ? err.message : String(err) }),
    };
  }

  hooks(): RunTrialHooks {
    const { config: cfg, ctx } = this;
    const plannedEpochs = cfg.headEpochs + (unfreezesAnything(cfg.unfreeze) ? cfg.fineTuneEpochs : 0);
    return {
      onEpoch: async (m) => {
        if (ctx.isAbandoned?.()) throw new TrialError('DRAINING', `worker ${ctx.workerId} handed the trial back`, { retryable: true });
        const hookStart = performance.now();
        const d = await ctx.reporter.reportEpoch({ trialId: cfg.trialId, attempt: ctx.attempt, metrics: { ...m, learningRate: m.learningRate ?? NaN, trainableLayers: m.trainableLayers ?? 0 } });
        this.log.info('trial.epoch', { ...m, decision: d.action, ...(d.reason ? { reason: d.reason } : {}) });
        if (d.action === 'STOP' && /does not own/.test(d.reason)) this.owner = false;
        this.firstEpoch ??= m;
        // Reported first, so the record shows the epoch that diverged.
        checkDivergence(m, this.firstEpoch);
        ctx.metrics?.epoch(m, this.trainImages);
        this.hookMs += performance.now() - hookStart;
        // A drain stops the trial between epochs; after the last one the result is kept.
        if (ctx.isDraining() && m.epoch < plannedEpochs && d.action !== 'STOP') {
          this.stoppedByDrain = true;
          return 'STOP';
        }
        return d.action === 'STOP' ? 'STOP' : 'CONTINUE';
      },
      onPhase: (phase) => this.log.info('trial.phase', { phase }),
      onDataset: (sizes) => {
        this.trainImages = sizes.train;
        this.skippedImages = sizes.skipped;
      },
    };
  }

  async finish(outcome: TrialOutcome): Promise<TrialEnd> {
    const { config: cfg, ctx } = this;
    // Handed back (drain grace period over): the next attempt owns the trial now; this one reports nothing more.
    if (ctx.isAbandoned?.()) return 'draining';
    if (this.stoppedByDrain) return this.fail(new TrialError('DRAINING', `worker ${ctx.workerId} is draining`, { retryable: true }));
    try {
      const fin = await ctx.reporter.trialFinished({
        trialId: cfg.trialId, attempt: ctx.attempt,
        valAccuracy: outcome.valAccuracy, valLoss: outcome.valLoss, testAccuracy: outcome.testAccuracy, testLoss: outcome.testLoss,
        epochs: outcome.epochs, seconds: outcome.seconds, stopped: outcome.stopped,
        totalParams: outcome.totalParams, trainableParams: outcome.trainableParams, cutLayer: outcome.cutLayer,
        unfreezeLayers: outcome.unfreezeLayers, earlyStops: outcome.earlyStops,
        pretrained: outcome.pretrained, weightsSource: outcome.weightsSource, backend: outcome.backend,
        testMetrics: testMetricsToPb(outcome.testMetrics), phaseSeconds: outcome.phaseSeconds,
        hasModel: outcome.model !== undefined,
        skippedImages: this.skippedImages,
      });
      if (!fin.accepted) {
        // Another delivery owns the trial (our lease lapsed) or it is already done: acking would
        // delete the message the owner still needs, so leave it to the owner or to redelivery.
        this.log.warn('trial.result_refused', { reason: fin.reason });
        ctx.metrics?.trialEnded('refused');
        return 'refused';
      }
      ctx.metrics?.trialEnded(outcome.stopped ? 'stopped' : 'completed');
      this.log.info('trial.done', { resumedEpochs: outcome.resumedEpochs, skippedImages: this.skippedImages, valAccuracy: outcome.valAccuracy, testAccuracy: outcome.testAccuracy, seconds: outcome.seconds, stopped: outcome.stopped, featureMemo: ctx.featureCache?.memo?.stats() });
      // The result is stored: whatever happens to the model upload, the trial is done.
      if (fin.keepModel && outcome.model) await ctx.storeModel?.(cfg, ctx.attempt, outcome, this.log);
    } catch (err) {
      return this.fail(err);
    }
    return 'done';
  }

  async fail(err: unknown): Promise<TrialEnd> {
    const { config: cfg, ctx } = this;
    if (ctx.isAbandoned?.()) return 'draining';
    let te = toTrialError(err);
    if (te.code === 'OUT_OF_MEMORY') {
      te = new TrialError('OUT_OF_MEMORY', `${te.message} (batch size ${cfg.batchSize}, image size ${cfg.imageSize ?? 'backbone default'}, ${ctx.backend} backend). Hint: lower batchSize or imageSize, unfreeze fewer layers, or run on a worker with more memory`, { retryable: false, cause: te });
    }
    const lastTry = ctx.maxDeliver > 0 && ctx.attempt >= ctx.maxDeliver;
    // A drain is never the trial's fault, and a report that could not be delivered says nothing about the
    // trial: neither may end it (term would make it final), so both go back to the queue.
    const retrying = te.code === 'DRAINING' || ((te.retryable || te.code === 'REPORT') && !lastTry);
    this.log.warn('trial.error', { code: te.code, error: te.message, retrying });
    ctx.metrics?.trialEnded(retrying ? 'retried' : 'failed');
    const reported = await ctx.reporter
      .trialFailed({ trialId: cfg.trialId, attempt: ctx.attempt, error: te.message, code: te.code, retrying, diverged: te.code === 'DIVERGED' })
      .then(() => true, (e) => {
        this.log.error('trial.fail_report_lost', { error: (e as Error).message });
        return false;
      });
    if (te.code === 'DRAINING') return 'draining';
    // The coordinator never heard of the failure: ending the message would leave the trial running forever.
    if (!reported) return 'retry';
    return retrying ? 'retry' : 'final';
  }
}
