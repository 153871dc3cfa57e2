import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type Consumer, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { TrialTaskV1 } from '../records.js';
import { workerToken } from './cache-holders.js';

/**
 * Per-worker trial inboxes for cache-affinity dispatch. A stream of its own
 * because NATS 2.9 has no multi-filter consumers and refuses a filtered
 * consumer next to the unfiltered shared one on a WorkQueue stream: the
 * shared queue (TLSWEEP_TRIALS, consumer tlsweep-workers) stays untouched.
 */
export const AFFINITY_STREAM = 'TLSWEEP_AFFINITY';
export const AFFINITY_SUBJECT_PREFIX = 'tlsweep.affinity';
export const inboxSubject = (workerId: string) => `${AFFINITY_SUBJECT_PREFIX}.${workerToken(workerId)}`;
export const inboxConsumer = (workerId: string) => `tlsweep-inbox-${workerToken(workerId)}`;

export interface AffinityQueueOptions {
  /** Window in which a republished trial id is dropped as a duplicate. @default 600_000 ms */
  duplicateWindowMs?: number;
  /** An inbox nobody pulled from for this long is deleted by the server. @default 3_600_000 ms */
  inboxInactiveMs?: number;
  /** @default 1 */
  replicas?: number;
}

const ms = (n: number) => n * 1_000_000;

export class AffinityQueue {
  private constructor(private readonly js: JetStreamClient, private readonly jsm: JetStreamManager, private readonly opts: AffinityQueueOptions) {}

  /** Creates (or opens) the inbox stream. */
  static async open(nc: NatsConnection, opts: AffinityQueueOptions = {}): Promise<AffinityQueue> {
    const jsm = await jetstreamManager(nc);
    const cfg = {
      name: AFFINITY_STREAM,
      subjects: [`${AFFINITY_SUBJECT_PREFIX}.*`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: opts.replicas ?? 1,
      duplicate_window: ms(opts.duplicateWindowMs ?? 600_000),
    };
    try {
      await jsm.streams.info(AFFINITY_STREAM);
    } catch {
      await jsm.streams.add(cfg);
    }
    return new AffinityQueue(jetstream(nc), jsm, opts);
  }

  /** Publishes a trial to one worker's inbox (trial id = message id). Returns the stream sequence. */
  async publish(workerId: string, task: TrialTaskV1): Promise<number> {
    const ack = await this.js.publish(inboxSubject(workerId), JSON.stringify(task), { msgID: task.config.trialId });
    return ack.seq;
  }

  /** Removes an inbox message (fallback to the shared queue, cancel). False when already taken. */
  async remove(seq: number): Promise<boolean> {
    try {
      return await this.jsm.streams.deleteMessage(AFFINITY_STREAM, seq, false);
    } catch {
      return false;
    }
  }

  /** The worker's own durable pull consumer on its inbox, created on first use. */
  async inbox(workerId: string): Promise<Consumer> {
    const name = inboxConsumer(workerId);
    try {
      await this.jsm.consumers.info(AFFINITY_STREAM, name);
    } catch {
      await this.jsm.consumers.add(AFFINITY_STREAM, {
        durable_name: name,
        filter_subject: inboxSubject(workerId),
        ack_policy: AckPolicy.Explicit,
        // The coordinator owns retries (it re-publishes to the shared queue); an inbox delivers once.
        max_deliver: 1,
        inactive_threshold: ms(this.opts.inboxInactiveMs ?? 3_600_000),
      });
    }
    return this.js.consumers.get(AFFINITY_STREAM, name);
  }
}
