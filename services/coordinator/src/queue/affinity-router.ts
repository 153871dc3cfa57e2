import { createHash } from 'node:crypto';
import type { TrialTaskV1 } from '../records.js';
import { affinityKeyOf } from './affinity-key.js';
import type { AffinityQueue } from './affinity-queue.js';
import type { CacheHolders } from './cache-holders.js';
import type { TrialQueue } from './trial-queue.js';

/** Where a trial was published. */
export type Route = { kind: 'inbox'; worker: string; seq: number } | { kind: 'shared'; seq: number };

/**
 * Cache-affinity dispatch: a trial whose features a live worker advertises
 * goes to that worker's inbox, anything else to the shared queue. Among
 * several holders the trial id picks one, so a unit's trials spread over
 * the workers that hold it.
 */
export class AffinityRouter {
  constructor(private readonly shared: TrialQueue, private readonly inboxes: AffinityQueue, private readonly holders: CacheHolders) {}

  async route(task: TrialTaskV1): Promise<Route> {
    const holders = await this.holders.holdersOf(affinityKeyOf(task.config));
    if (holders.length === 0) return { kind: 'shared', seq: await this.shared.publish(task) };
    const pick = createHash('sha256').update(task.config.trialId).digest().readUInt32BE(0) % holders.length;
    const worker = holders[pick];
    return { kind: 'inbox', worker, seq: await this.inboxes.publish(worker, task) };
  }
}
