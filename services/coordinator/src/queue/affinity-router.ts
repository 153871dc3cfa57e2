import { createHash } from 'node:crypto';
import { configsOf, type TrialTask } from '../records.js';
import { affinityKeyOf } from './affinity-key.js';
import type { AffinityQueue } from './affinity-queue.js';
import type { CacheHolders } from './cache-holders.js';
import type { TrialQueue } from './trial-queue.js';

/** Where a trial was published. */
export type Route = { kind: 'inbox'; worker: string; seq: number } | { kind: 'shared'; seq: number };

/**
 * Cache-affinity dispatch: a trial whose features an idle live worker
 * advertises goes to that worker's inbox, anything else to the shared
 * queue. Only idle holders count: a unit queued behind a busy holder would
 * sit out the affinity wait while other workers may be free, and any worker
 * can still load the features from the shared Object Store tier. Among
 * several idle holders the trial id picks one, so units spread over them.
 */
export class AffinityRouter {
  constructor(private readonly shared: TrialQueue, private readonly inboxes: AffinityQueue, private readonly holders: CacheHolders) {}

  /** Publishes `task` (a trial or a unit, whose trials share one key) to an idle holder's inbox (`busy` tells which are not) or the shared queue. */
  async route(task: TrialTask, msgId?: string, busy: (worker: string) => boolean = () => false): Promise<Route> {
    const [first] = configsOf(task);
    if (!first) throw new Error('a work unit needs at least one trial');
    const holders = (await this.holders.holdersOf(affinityKeyOf(first))).filter((w) => !busy(w));
    if (holders.length === 0) return { kind: 'shared', seq: await this.shared.publish(task, msgId) };
    const id = task.v === 1 ? task.config.trialId : task.unitId;
    const worker = holders[createHash('sha256').update(id).digest().readUInt32BE(0) % holders.length];
    // Created here, not by the worker: the worker login may not create consumers.
    await this.inboxes.inbox(worker);
    return { kind: 'inbox', worker, seq: await this.inboxes.publish(worker, task, msgId) };
  }
}
