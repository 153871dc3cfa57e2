import type { SchedulerSpec } from '../spec/sweep-spec.js';
import { AshaScheduler } from './asha.js';
import { MedianStoppingScheduler } from './median-stopping.js';
import { FifoScheduler, type Scheduler } from './scheduler.js';

/** A fresh scheduler for one sweep, as its spec asks (a stored spec without one is fifo). */
export function createScheduler(spec: SchedulerSpec | undefined): Scheduler {
  switch (spec?.kind ?? 'fifo') {
    case 'asha':
      return new AshaScheduler({ metric: spec!.metric, gracePeriod: spec!.gracePeriod, reductionFactor: spec!.reductionFactor, maxT: spec!.maxT });
    case 'median':
      return new MedianStoppingScheduler({ metric: spec!.metric, gracePeriod: spec!.gracePeriod, minSamples: spec!.minSamples });
    default:
      return new FifoScheduler();
  }
}
