import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type Consumer, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { configsOf, type TrialTask } from '../records.js';
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
  /** How long a worker may hold an inbox trial without a `working()` heartbeat. @default 60_000 ms */
  ackWaitMs?: number;
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

  /** Publishes a trial or unit to one worker's inbox (trial or unit id = message id unless `msgId`). Returns the stream sequence. */
  async publish(workerId: string, task: TrialTask, msgId?: string): Promise<number> {
    if (configsOf(task).length === 0) throw new Error('a work unit needs at least one trial');
    const msgID = msgId ?? (task.v === 1 ? task.config.trialId : task.unitId);
    const ack = await this.js.publish(inboxSubject(workerId), JSON.stringify(task), { msgID });
    return ack.seq;
  }

  /**
   * Whether the worker's inbox consumer may have handed out the message at
   * `seq` (it delivers in stream order, so its last delivered sequence says).
   * True when that cannot be told (consumer gone): the caller then counts a
   * delivery it may not need to, never misses one.
   */
  async mayHaveDelivered(workerId: string, seq: number): Promise<boolean> {
    try {
      const info = await this.jsm.consumers.info(AFFINITY_STREAM, inboxConsumer(workerId));
      return info.delivered.stream_seq >= seq;
    } catch {
      return true;
    }
  }

  /** Messages waiting in all inboxes (metrics). */
  async depth(): Promise<number> {
    return (await this.jsm.streams.info(AFFINITY_STREAM)).state.messages;
  }

  /** Whether the inbox stream still holds the message at `seq` (waiting, or in its worker's hands until acked). */
  async has(seq: number): Promise<boolean> {
    try {
      return (await this.jsm.streams.getMessage(AFFINITY_STREAM, { seq })) !== null;
    } catch (err) {
      if (/no message found|not found/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** Removes an inbox message (fallback to the shared queue, cancel). False when already taken. */
  async remove(seq: number): Promise<boolean> {
    try {
      return await this.jsm.streams.deleteMessage(AFFINITY_STREAM, seq, false);
    } catch {
      return false;
    }
  }

  /**
   * The worker's own durable pull consumer on its inbox, created on first use
   * (by the coordinator before it routes there: a worker login may not create consumers).
   */
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
        ack_wait: ms(this.opts.ackWaitMs ?? 60_000),
        inactive_threshold: ms(this.opts.inboxInactiveMs ?? 3_600_000),
      });
    }
    return this.js.consumers.get(AFFINITY_STREAM, name);
  }
}

/**
 * A worker's inbox consumer once the coordinator has created it; null before
 * (nothing was routed to this worker yet). Needs only CONSUMER.INFO, which
 * the worker login has.
 */
export async function openInbox(nc: NatsConnection, workerId: string): Promise<Consumer | null> {
  try {
    const c = await jetstream(nc).consumers.get(AFFINITY_STREAM, inboxConsumer(workerId));
    await c.info();
    return c;
  } catch {
    return null;
  }
}
