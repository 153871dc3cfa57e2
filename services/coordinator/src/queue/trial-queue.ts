import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { configsOf, type TrialTask } from '../records.js';
import { TRIAL_STREAM, TRIAL_SUBJECT_PREFIX, WORKER_CONSUMER, trialSubject } from './names.js';

/** Queue settings. */
export interface TrialQueueOptions {
  /** How long a worker may hold a trial without a `working()` heartbeat before it is redelivered. @default 60_000 ms */
  ackWaitMs?: number;
  /**
   * Deliveries before a trial is given up. The coordinator enforces it, not
   * JetStream: the consumer redelivers without limit and the coordinator
   * fails a trial whose attempt would exceed this (TrialStarted answers STOP).
   * JetStream's own limit would leave an exhausted message in the WorkQueue
   * stream with only an advisory to say so, and an advisory sent while the
   * coordinator is down is lost: the trial would read `running` forever.
   * @default 5
   */
  maxDeliver?: number;
  /** Window in which a republished trial id is dropped as a duplicate. @default 600_000 ms */
  duplicateWindowMs?: number;
  /** Stream replicas. @default 1 */
  replicas?: number;
}

const ms = (n: number) => n * 1_000_000; // JetStream durations are nanoseconds

/**
 * The JetStream WorkQueue stream that trials travel on, and the one durable
 * pull consumer all workers share. Created (or updated) by the coordinator.
 */
export class TrialQueue {
  private constructor(private readonly js: JetStreamClient, private readonly jsm: JetStreamManager, readonly maxDeliver: number) {}

  static async open(nc: NatsConnection, opts: TrialQueueOptions = {}): Promise<TrialQueue> {
    const jsm = await jetstreamManager(nc);
    const streamCfg = {
      name: TRIAL_STREAM,
      subjects: [`${TRIAL_SUBJECT_PREFIX}.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: opts.replicas ?? 1,
      duplicate_window: ms(opts.duplicateWindowMs ?? 600_000),
    };
    try {
      await jsm.streams.info(TRIAL_STREAM);
      await jsm.streams.update(TRIAL_STREAM, streamCfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(streamCfg);
    }
    const maxDeliver = opts.maxDeliver ?? 5;
    const consumerCfg = {
      durable_name: WORKER_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      ack_wait: ms(opts.ackWaitMs ?? 60_000),
      // Unlimited: the coordinator caps attempts (see maxDeliver).
      max_deliver: -1,
      // One trial per pull; a worker trains one at a time.
      max_ack_pending: -1,
    };
    try {
      await jsm.consumers.info(TRIAL_STREAM, WORKER_CONSUMER);
      await jsm.consumers.update(TRIAL_STREAM, WORKER_CONSUMER, { ack_wait: consumerCfg.ack_wait, max_deliver: -1 });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(TRIAL_STREAM, consumerCfg);
    }
    return new TrialQueue(jetstream(nc), jsm, maxDeliver);
  }

  /**
   * Publishes a trial or work unit; its id is the message id, so a republish inside the window is dropped.
   * `msgId` overrides it (a requeued unit needs a new one). Returns the stream sequence.
   */
  async publish(task: TrialTask, msgId?: string): Promise<number> {
    const [first] = configsOf(task);
    if (!first) throw new Error('a work unit needs at least one trial');
    const msgID = msgId ?? (task.v === 1 ? task.config.trialId : task.unitId);
    const ack = await this.js.publish(trialSubject(first.sweepId), JSON.stringify(task), { msgID });
    return ack.seq;
  }

  /** Whether the stream still holds the message at `seq` (waiting or in a worker's hands). */
  async has(seq: number): Promise<boolean> {
    try {
      // nats.js 3 answers null for a missing message (older versions threw "no message found").
      return (await this.jsm.streams.getMessage(TRIAL_STREAM, { seq })) !== null;
    } catch (err) {
      if (/no message found|not found/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** Removes a queued trial (cancel). False when it was already taken or gone. */
  async remove(seq: number): Promise<boolean> {
    try {
      return await this.jsm.streams.deleteMessage(TRIAL_STREAM, seq, false);
    } catch {
      return false;
    }
  }

  /** Messages waiting in the queue (not yet acknowledged). */
  async depth(): Promise<number> {
    const info = await this.jsm.streams.info(TRIAL_STREAM);
    return info.state.messages;
  }

  /** The workers' consumer: trials not yet delivered (pending) and delivered but not acked (in flight). */
  async consumerLag(): Promise<{ pending: number; inFlight: number }> {
    const info = await this.jsm.consumers.info(TRIAL_STREAM, WORKER_CONSUMER);
    return { pending: info.num_pending, inFlight: info.num_ack_pending };
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: number | string; message?: string; api_error?: { code?: number } };
  return e?.name === 'StreamNotFoundError' || e?.name === 'ConsumerNotFoundError' || /not found/i.test(e?.message ?? '');
}
