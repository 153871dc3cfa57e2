import * as grpc from '@grpc/grpc-js';
import {
  ReportServiceClient,
  SweepServiceClient,
  type ModelStoredRequest,
  type Ack,
  type Decision,
  type ReportEpochRequest,
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

  constructor(opts: ReporterOptions) {
    const creds = channelCredentials(opts.tls ?? null);
    this.client = new ReportServiceClient(opts.address, creds);
    this.sweeps = new SweepServiceClient(opts.address, creds);
    this.retryMs = opts.retryMs ?? 120_000;
    this.callTimeoutMs = opts.callTimeoutMs ?? 10_000;
    this.token = opts.token ?? '';
  }

  async trialStarted(r: TrialStartedRequest): Promise<Decision> {
    const d = await this.call<Decision>('TrialStarted', (md, cb, o) => this.client.trialStarted(r, md, o, cb));
    if (d.leaseToken) this.leases.set(leaseKey(r.trialId, r.attempt), d.leaseToken);
    return d;
  }
  reportEpoch(r: Leased<ReportEpochRequest>): Promise<Decision> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    return this.call('ReportEpoch', (md, cb, o) => this.client.reportEpoch(req, md, o, cb));
  }
  async trialFinished(r: Leased<TrialFinishedRequest>): Promise<Ack> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    const ack = await this.call<Ack>('TrialFinished', (md, cb, o) => this.client.trialFinished(req, md, o, cb));
    // A kept model is announced with the same lease: keep it until modelStored.
    if (!ack.keepModel) this.leases.delete(leaseKey(r.trialId, r.attempt));
    return ack;
  }
  async trialFailed(r: Leased<TrialFailedRequest>): Promise<Ack> {
    const req = { ...r, leaseToken: this.leaseOf(r) };
    try {
      return await this.call<Ack>('TrialFailed', (md, cb, o) => this.client.trialFailed(req, md, o, cb));
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
        // A refused lease (e.g. the coordinator's lease secret changed) is not this trial's fault:
        // hand the trial back to the queue, where its next attempt gets a fresh lease.
        const leaseRefused = e.code === grpc.status.PERMISSION_DENIED && /lease_token/.test(e.details ?? '');
        if (leaseRefused || !RETRYABLE.has(e.code) || Date.now() + delay > giveUpAt) {
          throw new TrialError('REPORT', `${name} failed: ${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`, { retryable: leaseRefused || RETRYABLE.has(e.code), cause: err });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}

const leaseKey = (trialId: string, attempt: number) => `${trialId}#${attempt}`;
