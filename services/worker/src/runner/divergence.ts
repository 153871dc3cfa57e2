import type { EpochReport } from '../engine/train-trial.js';
import { TrialError } from '../errors.js';

/** When a training loss counts as exploded. */
export interface DivergenceOptions {
  /** A loss above this many times the trial's first epoch loss has exploded. @default 100 */
  factor?: number;
  /** …and above this absolute value (small first losses would make the factor too strict). @default 1000 */
  floor?: number;
  /**
   * A cross-entropy loss at or above this has saturated: tfjs clips
   * probabilities to [1e-7, 1 − 1e-7], so a blown-up network does not give
   * NaN but a loss stuck near −ln(1e-7) ≈ 16.1 times the share of examples
   * predicted at the floor. The default, half that maximum, is far above
   * chance level (ln K: 6.9 for 1000 classes). @default 8.06
   */
  saturatedLoss?: number;
}

/** Half of −ln(1e-7): half the examples' true class at tfjs' probability floor. */
export const SATURATED_LOSS = -0.5 * Math.log(1e-7);

/**
 * Checks one epoch of a trial: a NaN or infinite training loss, one that
 * grew past max(floor, factor × first epoch's loss), or a saturated one
 * (see `saturatedLoss`) means the recipe diverged. Retrying cannot help (training is seeded), so the trial ends as
 * `diverged` and the worker moves on.
 *
 * @throws TrialError DIVERGED (not retryable)
 */
export function checkDivergence(epoch: EpochReport, first: EpochReport | undefined, opts: DivergenceOptions = {}): void {
  const factor = opts.factor ?? 100;
  const floor = opts.floor ?? 1000;
  if (!Number.isFinite(epoch.loss)) {
    throw new TrialError('DIVERGED', `training loss became ${epoch.loss} at epoch ${epoch.epoch} (learning rate ${epoch.learningRate ?? '?'})`, { retryable: false });
  }
  const saturated = opts.saturatedLoss ?? SATURATED_LOSS;
  if (epoch.loss >= saturated) {
    throw new TrialError('DIVERGED', `training loss saturated at ${epoch.loss.toPrecision(4)} in epoch ${epoch.epoch} (>= ${saturated.toPrecision(3)}: the outputs hit tfjs' probability floor; learning rate ${epoch.learningRate ?? '?'})`, { retryable: false });
  }
  const limit = Math.max(floor, factor * (first && Number.isFinite(first.loss) ? first.loss : 0));
  if (epoch.loss > limit) {
    throw new TrialError('DIVERGED', `training loss exploded to ${epoch.loss.toPrecision(4)} at epoch ${epoch.epoch} (first epoch ${first?.loss.toPrecision(4) ?? '?'}, limit ${limit.toPrecision(4)})`, { retryable: false });
  }
}
