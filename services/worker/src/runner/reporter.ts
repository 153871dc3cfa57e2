import * as grpc from '@grpc/grpc-js';
import {
  ReportServiceClient,
  SweepServiceClient,
  type ModelStoredRequest,
  type Ack,
  type Decision,
  type ReportEpochRequest,
  type ReportBatchResponse,
  type ReportItem,
  type TrialFailedRequest,
  type TrialFinishedRequest,
  type TrialStartedRequest,
} from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import { channelCredentials, type ClientTls } from '../../../coordinator/src/grpc/client-credentials.js';
import { TrialError } from '../errors.js';

export interface ReporterOptions {
  /** Coordinator gRPC address host:port. */
  address: string;
  /** Keep retrying an unreachable coordinator this long. @default 120000 ms */
  retryMs?: number;
  /** Per-call deadline. @default 10000 ms */
  callTimeoutMs?: number;
  /** Worker bearer token (TLSWEEP_TOKEN). @default none */
  token?: string;
  /** TLS to the coordinator (CA to trust, client cert for mTLS). @default plaintext */
  tls?: ClientTls | null;
  /**
   * Send reports made while earlier ones are in flight together, in one
   * `Report` call (a fused unit's trials report each epoch at once). Off, or
   * against a coordinator without `Report`, every report is its own call.
   * @default true
   */
  batch?: boolean;
  /** Batched calls in flight at once; reports made meanwhile wait for the next batch. @default 2 */
  maxBatchesInFlight?: number;
}

/** The coordinator's limit on items per Report call (MAX_REPORT_BATCH there). */
const MAX_BATCH = 512;

/** A report waiting for the next batch. */
interface Queued {
  name: string;
  item: ReportItem;
  /** The same report as its own call: used when batching is unavailable or the item alone needs a retry. */
  alone: () => Promise<unknown>;
  resolve(v: unknown): void;
  reject(err: unknown): void;
}

// Reports are idempotent, so anything that may be the transport's fault is retried: a coordinator
// killed mid-call surfaces as UNAVAILABLE, but also as INTERNAL ("Received RST_STREAM"), UNKNOWN or CANCELLED.
const RETRYABLE = new Set([
  grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED,
  grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.CANCELLED,
]);

/** A report minus its lease token: the Reporter adds the one TrialStarted returned. */
type Leased<T> = Omit<T, 'leaseToken'>;

/**
 * The worker's side of ReportService. Calls are retried with capped
 * exponential backoff while the coordinator is down or restarting: a report
 * is never dropped silently; after `retryMs` it fails with code REPORT.
 * It keeps the lease token of each (trial, attempt) it started and sends it
 * with that attempt's reports.
 */
export class Reporter {
  private readonly client: ReportServiceClient;
  /** ModelStored lives on SweepService. */
  private readonly sweeps: SweepServiceClient;
  private readonly retryMs: number;
  private readonly callTimeoutMs: number;
  private readonly token: string;
  /** `trialId#attempt` → lease token, from TrialStarted until the attempt ends. */
  private readonly leases = new Map<string, string>();
  /** true: use `Report`; false: the coordinator lacks it (UNIMPLEMENTED) or batching is off. */
  private batching: boolean;
  private readonly maxInFlight: number;
  private queue: Queued[] = [];
  private inFlight = 0;
  private flushScheduled = false;

  constructor(opts: ReporterOptions) {
    const creds = channelCredentials(opts.tls ?? null);
    this.client = new ReportServiceClient(opts.address, creds);
    this.sweeps = new SweepServiceClient(opts.address, creds);
    this.retryMs = opts.retryMs ?? 120_000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.token = opts.token ?? '';
    this.batching = opts.batch ?? true;
    this.maxInFlight = Math.max(1, opts.maxBatchesInFlight ?? 2);
  }

  async trialStarted(r: TrialStartedRequest): Promise<Decision> {
    const d = await this.send<Decision>('TrialStarted', { started: r }, () => this.call<Decision>('TrialStarted', (md, cb, o) => this.client.trialStarted(r, md, o, cb)));
    if (d.leaseToken) this.leases.set(leaseKey(r.trialId, r.attempt), d.leaseToken);
    return d;
  }
  reportEpoch(r: Leased<ReportEpochRequest>): Promise<Decision> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    return this.send('ReportEpoch', { epoch: req }, () => this.call<Decision>('ReportEpoch', (md, cb, o) => this.client.reportEpoch(req, md, o, cb)));
  }
  async trialFinished(r: Leased<TrialFinishedRequest>): Promise<Ack> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    const ack = await this.send<Ack>('TrialFinished', { finished: req }, () => this.call<Ack>('TrialFinished', (md, cb, o) => this.client.trialFinished(req, md, o, cb)));
    // A kept model is announced with the same lease: keep it until modelStored.
    if (!ack.keepModel) this.leases.delete(leaseKey(r.trialId, r.attempt));
    return ack;
  }
  async trialFailed(r: Leased<TrialFailedRequest>): Promise<Ack> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    try {
      return await this.send<Ack>('TrialFailed', { failed: req }, () => this.call<Ack>('TrialFailed', (md, cb, o) => this.client.trialFailed(req, md, o, cb)));
    } finally {
      this.leases.delete(leaseKey(r.trialId, r.attempt));
    }
  }

  async modelStored(r: Leased<ModelStoredRequest>): Promise<Ack> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    try {
      return await this.call('ModelStored', (md, cb, o) => this.sweeps.modelStored(req, md, o, cb));
    } finally {
      this.leases.delete(leaseKey(r.trialId, r.attempt));
    }
  }

  close(): void {
    this.client.close();
    this.sweeps.close();
  }

  private leaseOf(r: { trialId: string; attempt: number }): string {
    return this.leases.get(leaseKey(r.trialId, r.attempt)) ?? '';
  }

  /** Queues a report for the next batch (or sends it alone when batching is off or unavailable). */
  private send<T>(name: string, item: ReportItem, alone: () => Promise<T>): Promise<T> {
    if (!this.batching) return alone();
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ name, item, alone, resolve: resolve as (v: unknown) => void, reject });
      // Reports made in the same turn of the event loop (a fused unit's trials) leave together.
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.sendBatch(batch).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async sendBatch(batch: Queued[]): Promise<void> {
    if (!this.batching) {
      // Batching turned out to be unavailable while this batch waited.
      for (const q of batch) q.alone().then(q.resolve, q.reject);
      return;
    }
    let res: ReportBatchResponse;
    try {
      const req = { items: batch.map((q) => q.item) };
      res = await this.call<ReportBatchResponse>('Report', (md, cb, o) => this.client.report(req, md, o, cb));
    } catch (err) {
      if (((err as Error).cause as grpc.ServiceError | undefined)?.code === grpc.status.UNIMPLEMENTED) {
        // A coordinator from before `Report`: every report goes alone from now on.
        this.batching = false;
        for (const q of batch) q.alone().then(q.resolve, q.reject);
        return;
      }
      for (const q of batch) q.reject(renamed(err, q.name));
      return;
    }
    for (const [i, q] of batch.entries()) {
      const r = res.results[i];
      if (!r) {
        q.reject(new TrialError('REPORT', `${q.name} failed: the coordinator answered ${res.results.length} of ${batch.length} batched reports`, { retryable: true }));
      } else if (r.code === grpc.status.OK) {
        q.resolve(r.decision ?? r.ack);
      } else if (RETRYABLE.has(r.code) && !isLeaseRefusal(r.code, r.details)) {
        // This item alone hit a passing fault (its store write timed out, say): retried on its own, with backoff.
        q.alone().then(q.resolve, q.reject);
      } else {
        q.reject(reportError(q.name, { code: r.code, details: r.details, message: r.details }));
      }
    }
  }

  private async call<T>(name: string, invoke: (md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: T) => void, opts: Partial<grpc.CallOptions>) => void): Promise<T> {
    const giveUpAt = Date.now() + this.retryMs;
    let delay = 200;
    for (;;) {
      try {
        const md = new grpc.Metadata();
        if (this.token) md.set('authorization', `Bearer ${this.token}`);
        return await new Promise<T>((resolve, reject) =>
          invoke(md, (err, res) => (err ? reject(err) : resolve(res as T)), { deadline: Date.now() + this.callTimeoutMs }),
        );
      } catch (err) {
        const e = err as grpc.ServiceError;
        // A report this client cannot even encode will not encode on a retry either.
        const local = /^Request message serialization failure/.test(e.details ?? '');
        if (local || isLeaseRefusal(e.code, e.details) || !RETRYABLE.has(e.code) || Date.now() + delay > giveUpAt) throw reportError(name, e, err);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}

/**
 * A refused lease (e.g. the coordinator's lease secret changed) is not this trial's fault:
 * the trial goes back to the queue, where its next attempt gets a fresh lease.
 */
function isLeaseRefusal(code: number, details: string | undefined): boolean {
  return code === grpc.status.PERMISSION_DENIED && /lease_token/.test(details ?? '');
}

function reportError(name: string, e: { code: number; details?: string; message?: string }, cause: unknown = e): TrialError {
  const retryable = isLeaseRefusal(e.code, e.details) || RETRYABLE.has(e.code);
  return new TrialError('REPORT', `${name} failed: ${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`, { retryable, cause });
}

/** A failed batch, told as the failure of one of its reports. */
function renamed(err: unknown, name: string): unknown {
  if (!(err instanceof TrialError)) return err;
  return new TrialError(err.code, err.message.replace(/^Report failed/, `${name} failed`), { retryable: err.retryable, cause: err.cause });
}

const leaseKey = (trialId: string, attempt: number) => `${trialId}#${attempt}`;
