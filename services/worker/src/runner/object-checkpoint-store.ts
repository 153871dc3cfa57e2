import type { NatsConnection } from '@nats-io/transport-node';
import { StorageType } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { decodeCheckpoint, encodeCheckpoint } from '../engine/checkpoint/checkpoint-codec.js';
import type { Checkpointer, TrialCheckpoint } from '../engine/checkpoint/trial-checkpoint.js';

/** Bucket workers write trial checkpoints to (and the coordinator deletes them from). */
export const CHECKPOINT_BUCKET = 'tlsweep-checkpoints';

export interface ObjectCheckpointStoreOptions {
  /** @default 'tlsweep-checkpoints' */
  bucket?: string;
  /** Bucket replicas when created. @default 1 */
  replicas?: number;
  /** Checkpoints expire this long after their last write (a safety net for ones never deleted). @default 7 days */
  ttlMs?: number;
  /** Hears unreadable checkpoints (they are deleted and the trial starts afresh). @default ignore */
  onWarning?: (event: string, fields: Record<string, unknown>) => void;
}

/**
 * Trial checkpoints in the NATS Object Store: one object per trial (named
 * by trial id), overwritten after every epoch, deleted once the trial is
 * terminal. Reads check the Object Store's digest and the codec's own; an
 * unreadable checkpoint is deleted and reads as none.
 */
export class ObjectCheckpointStore implements Checkpointer {
  /** Writes in progress (see idle()). */
  private readonly writing = new Set<Promise<void>>();

  private constructor(private readonly os: ObjectStore, private readonly opts: ObjectCheckpointStoreOptions) {}

  static async open(nc: NatsConnection, opts: ObjectCheckpointStoreOptions = {}): Promise<ObjectCheckpointStore> {
    const os = await new Objm(nc).create(opts.bucket ?? CHECKPOINT_BUCKET, {
      storage: StorageType.File,
      ttl: (opts.ttlMs ?? 7 * 24 * 3600_000) * 1_000_000,
      replicas: opts.replicas ?? 1,
      description: 'tlsweep per-trial epoch checkpoints (see README: Failure handling)',
    });
    return new ObjectCheckpointStore(os, opts);
  }

  async load(trialId: string): Promise<TrialCheckpoint | null> {
    let bytes: Uint8Array | null;
    try {
      bytes = await this.os.getBlob(trialId);
    } catch (err) {
      if (!/corrupt|digest|missing|not found/i.test((err as Error).message)) throw err;
      return this.drop(trialId, (err as Error).message);
    }
    if (!bytes) return null;
    try {
      return decodeCheckpoint(bytes);
    } catch (err) {
      return this.drop(trialId, (err as Error).message);
    }
  }

  async save(trialId: string, checkpoint: TrialCheckpoint): Promise<void> {
    const write = this.os.putBlob({ name: trialId }, encodeCheckpoint(checkpoint)).then(() => undefined);
    this.writing.add(write);
    try {
      await write;
    } finally {
      this.writing.delete(write);
    }
  }

  /**
   * Trials write their checkpoints in the background (CheckpointSession); a worker handing its trial
   * back at the end of a drain waits here first, so the retry resumes from the epoch that just ended.
   */
  async idle(maxMs: number): Promise<void> {
    if (this.writing.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.writing]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs))),
    ]);
    clearTimeout(timer);
  }

  async delete(trialId: string): Promise<void> {
    await this.os.delete(trialId).catch((err: Error) => {
      if (!/not found/i.test(err.message)) throw err;
    });
  }

  /** Names of the checkpoints stored now (tests, the chaos figures). */
  async names(): Promise<string[]> {
    return (await this.os.list()).filter((i) => !i.deleted).map((i) => i.name);
  }

  private async drop(trialId: string, reason: string): Promise<null> {
    this.opts.onWarning?.('checkpoint.unreadable', { trialId, reason });
    await this.delete(trialId).catch(() => {});
    return null;
  }
}
