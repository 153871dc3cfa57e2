import type { LrSchedule } from './recipe-options.js';

/**
 * Learning rate of epoch `epoch` (0-based) of a phase of `epochs` epochs that
 * starts at `base`. Stepped per epoch, set before the epoch as Keras'
 * LearningRateScheduler callback does; cosine is Keras CosineDecay(alpha=0)
 * with one decay step per epoch, so the first epoch runs at `base`.
 */
export function learningRateAt(schedule: LrSchedule, base: number, epoch: number, epochs: number): number {
  if (schedule === 'constant') return base;
  if (schedule === 'cosine') return base * 0.5 * (1 + Math.cos((Math.PI * Math.min(epoch, epochs)) / Math.max(epochs, 1)));
  return base * schedule.step.factor ** Math.floor(epoch / schedule.step.everyEpochs);
}
