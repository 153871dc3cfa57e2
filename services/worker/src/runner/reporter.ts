import * as grpc from '@grpc/grpc-js';
import {
  ReportServiceClient,
  type Ack,
  type Decision,
  type ReportEpochRequest,
  type TrialFailedRequest,
  type TrialFinishedRequest,
  type TrialStartedRequest,
} from '../../../../proto/generated/tlsweep/v1/tlsweep.js';
import { TrialError } from '../errors.js';

export interface ReporterOptions {
  /** Coordinator gRPC address host:port. */
  address: string;
  /** Keep retrying an unreachable coordinator this long. @default 120000 ms */
  retryMs?: number;
  /** Per-call deadline. @default 10000 ms */
  callTimeoutMs?: number;
}

// Reports are idempotent, so anything that may be the transport's fault is retried: a coordinator
// killed mid-call surfaces as UNAVAILABLE, but also as INTERNAL ("Received RST_STREAM"), UNKNOWN or CANCELLED.
const RETRYABLE = new Set([
  grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED,
  grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.CANCELLED,
]);

/**
 * The worker's side of ReportService. Calls are retried with capped
 * exponential backoff while the coordinator is down or restarting: a report
 * is never dropped silently; after `retryMs` it fails with code REPORT.
 */
export class Reporter {
  private readonly client: ReportServiceClient;
  private readonly retryMs: number;
  private readonly callTimeoutMs: number;

  constructor(opts: ReporterOptions) {
    this.client = new ReportServiceClient(opts.address, grpc.credentials.createInsecure());
    this.retryMs = opts.retryMs ?? 120_000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
  }

  trialStarted(r: TrialStartedRequest): Promise<Decision> {
    return this.call('TrialStarted', (cb, o) => this.client.trialStarted(r, new grpc.Metadata(), o, cb));
  }
  reportEpoch(r: ReportEpochRequest): Promise<Decision> {
    return this.call('ReportEpoch', (cb, o) => this.client.reportEpoch(r, new grpc.Metadata(), o, cb));
  }
  trialFinished(r: TrialFinishedRequest): Promise<Ack> {
    return this.call('TrialFinished', (cb, o) => this.client.trialFinished(r, new grpc.Metadata(), o, cb));
  }
  trialFailed(r: TrialFailedRequest): Promise<Ack> {
    return this.call('TrialFailed', (cb, o) => this.client.trialFailed(r, new grpc.Metadata(), o, cb));
  }

  close(): void {
    this.client.close();
  }

  private async call<T>(name: string, invoke: (cb: (err: grpc.ServiceError | null, res?: T) => void, opts: Partial<grpc.CallOptions>) => void): Promise<T> {
    const giveUpAt = Date.now() + this.retryMs;
    let delay = 200;
    for (;;) {
      try {
        return await new Promise<T>((resolve, reject) =>
          invoke((err, res) => (err ? reject(err) : resolve(res as T)), { deadline: Date.now() + this.callTimeoutMs }),
        );
      } catch (err) {
        const e = err as grpc.ServiceError;
        if (!RETRYABLE.has(e.code) || Date.now() + delay > giveUpAt) {
          throw new TrialError('REPORT', `${name} failed: ${e.details || e.message}`, { retryable: RETRYABLE.has(e.code), cause: err });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}
