import * as tf from '@tensorflow/tfjs';
import type { EarlyStoppingOptions } from './recipe-options.js';

/** What early stopping did in one phase. Epochs are 1-based over both phases. */
export interface EarlyStopReport {
  phase: 'head' | 'finetune';
  /** Epoch with the best val_loss (0 when no epoch had a finite one). */
  bestEpoch: number;
  /** Epoch after which the phase stopped; 0 when it ran all its epochs (or the scheduler stopped it). */
  stoppedEpoch: number;
  /** Whether the best epoch's weights were put back at the end of the phase. */
  restored: boolean;
}

/** EarlyStopping's progress in a phase, as a checkpoint keeps it. */
export interface EarlyStoppingState {
  best: number;
  bestEpoch: number;
  lastEpoch: number;
  wait: number;
  seen: number;
  stoppedEpoch: number;
  /** The best epoch's weights by LayerVariable originalName; null without restoreBestWeights (or before a finite val_loss). */
  bestWeights: Array<[string, tf.Tensor]> | null;
}

/**
 * Keras `EarlyStopping(monitor='val_loss', mode='min')` for one phase of one
 * model, written here because tfjs' callback cannot restore weights. An epoch
 * improves when val_loss + minDelta < best (Keras: by more than minDelta); after `patience` epochs without
 * improvement (never after the first epoch) the phase stops. With
 * `restoreBestWeights` the best epoch's weights (every weight of the model,
 * BatchNorm moving statistics included, as Keras' get_weights) are kept and
 * put back by {@link finish} at the end of the phase, whether it stopped
 * early or ran out of epochs (Keras 2 restores only when it stops; restoring
 * always makes the reported result the best epoch's).
 */
export class EarlyStopping {
  private best = Number.POSITIVE_INFINITY;
  private bestEpoch = 0;
  private lastEpoch = 0;
  private wait = 0;
  private seen = 0;
  private stoppedEpoch = 0;
  // Paired with their variables: model.weights lists trainable ones first, an order gradual unfreezing changes.
  private bestWeights: Array<[tf.LayerVariable, tf.Tensor]> | null = null;

  constructor(
    private readonly phase: EarlyStopReport['phase'],
    private readonly model: tf.LayersModel,
    private readonly opts: EarlyStoppingOptions,
  ) {}

  /** Everything needed to continue this phase elsewhere (checkpoints); `bestWeights` by LayerVariable originalName, still owned here. */
  state(): EarlyStoppingState {
    return {
      best: this.best, bestEpoch: this.bestEpoch, lastEpoch: this.lastEpoch, wait: this.wait, seen: this.seen, stoppedEpoch: this.stoppedEpoch,
      bestWeights: this.bestWeights ? this.bestWeights.map(([v, t]) => [v.originalName, t]) : null,
    };
  }

  /** Continues from a {@link state} taken by another instance on the same model (weights matched by originalName, copied). */
  restore(s: EarlyStoppingState): void {
    Object.assign(this, { best: s.best, bestEpoch: s.bestEpoch, lastEpoch: s.lastEpoch, wait: s.wait, seen: s.seen, stoppedEpoch: s.stoppedEpoch });
    this.dispose();
    if (!s.bestWeights) return;
    const saved = new Map(s.bestWeights);
    this.bestWeights = this.model.weights.map((w) => {
      const t = saved.get(w.originalName);
      if (!t) throw new Error(`early-stopping state lacks the best weights of '${w.originalName}'`);
      return [w, tf.keep(t.clone())];
    });
  }

  /** After each epoch of the phase; true means stop the phase now. */
  onEpochEnd(epoch: number, valLoss: number): boolean {
    this.seen += 1;
    this.lastEpoch = epoch;
    this.wait += 1;
    if (valLoss + this.opts.minDelta < this.best) {
      this.best = valLoss;
      this.bestEpoch = epoch;
      this.wait = 0;
      if (this.opts.restoreBestWeights) this.keepWeights();
      return false;
    }
    if (this.wait >= this.opts.patience && this.seen > 1) {
      this.stoppedEpoch = epoch;
      return true;
    }
    return false;
  }

  /** Ends the phase: restores the best weights when asked, frees the copies, reports. */
  finish(): EarlyStopReport {
    const restored = this.bestWeights !== null && this.bestEpoch !== this.lastEpoch;
    if (restored) {
      // LayerVariable.write takes its own reference to the tensor; ours are freed below.
      for (const [variable, value] of this.bestWeights!) variable.write(value);
    }
    this.dispose();
    return { phase: this.phase, bestEpoch: this.bestEpoch, stoppedEpoch: this.stoppedEpoch, restored };
  }

  /** Frees the kept weights (finish does it; call this when the phase fails). */
  dispose(): void {
    if (this.bestWeights) tf.dispose(this.bestWeights.map(([, t]) => t));
    this.bestWeights = null;
  }

  private keepWeights(): void {
    this.dispose();
    this.bestWeights = this.model.weights.map((w) => [w, tf.keep(w.read().clone())]);
  }
}
