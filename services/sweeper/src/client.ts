import * as grpc from '@grpc/grpc-js';
import {
  LeaderboardServiceClient,
  SweepServiceClient,
  type LeaderboardQuery,
  type LeaderboardResponse,
  type ModelChunk,
  type Sweep,
  type Trial,
  type TrialEvent,
  type WeightsInfo,
} from '../../../proto/generated/tlsweep/v1/tlsweep.js';
import { channelCredentials, clientOptions, type ClientTls } from '../../coordinator/src/grpc/client-credentials.js';

/** How the CLI authenticates to the coordinator. */
export interface ClientAuth {
  /** Bearer token (operator to submit/cancel, reader to read). @default none */
  token?: string;
  /** TLS to the coordinator. @default plaintext */
  tls?: ClientTls | null;
}

/** A gRPC failure as the CLI shows it: the status name and the server's message. */
export class ClientError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
    this.name = 'ClientError';
  }
}

function promisify<T>(fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    fn((err, res) => (err ? reject(new ClientError(err.code, `${grpc.status[err.code]}: ${err.details || err.message}`)) : resolve(res as T))),
  );
}

/** Typed, promise-based client of the coordinator's user-facing services. */
export class TlsweepClient {
  private readonly sweeps: SweepServiceClient;
  private readonly leaderboard: LeaderboardServiceClient;

  constructor(readonly address: string, auth: ClientAuth = {}) {
    const creds = channelCredentials(auth.tls ?? null);
    // An exported model's first message carries its whole model.json, which can pass gRPC's 4 MiB default.
    this.sweeps = new SweepServiceClient(address, creds, { ...clientOptions(auth.token), 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    this.leaderboard = new LeaderboardServiceClient(address, creds, clientOptions(auth.token));
  }

  /** Waits until the channel is connected, or fails with a hint. */
  async ready(timeoutMs = 5000): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.sweeps.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new ClientError(grpc.status.UNAVAILABLE, `cannot reach the coordinator at ${this.address} within ${timeoutMs / 1000}s`)) : resolve(),
      ),
    );
  }

  submit(spec: string): Promise<Sweep> {
    return promisify<{ sweep?: Sweep }>((cb) => this.sweeps.submitSweep({ spec }, cb)).then((r) => r.sweep!);
  }
  get(sweepId: string): Promise<Sweep> {
    return promisify((cb) => this.sweeps.getSweep({ sweepId }, cb));
  }
  list(): Promise<Sweep[]> {
    return promisify<{ sweeps: Sweep[] }>((cb) => this.sweeps.listSweeps({}, cb)).then((r) => r.sweeps);
  }
  cancel(sweepId: string): Promise<Sweep> {
    return promisify((cb) => this.sweeps.cancelSweep({ sweepId }, cb));
  }
  query(q: Partial<LeaderboardQuery>): Promise<LeaderboardResponse> {
    const full: LeaderboardQuery = { sweepId: '', backbone: '', status: '', sortBy: '', ascending: false, descending: false, limit: 0, pageToken: '', groupBy: '', ...q };
    return promisify((cb) => this.leaderboard.query(full, cb));
  }

  /** One trial with everything stored about it. */
  getTrial(trialId: string): Promise<Trial> {
    return promisify((cb) => this.leaderboard.getTrial({ trialId }, cb));
  }

  /** Streams a sweep's events until it finishes (or the stream breaks). */
  async *watch(sweepId: string, includeSnapshot = true): AsyncGenerator<TrialEvent> {
    const call = this.sweeps.watchSweep({ sweepId, includeSnapshot });
    try {
      for await (const e of call as AsyncIterable<TrialEvent>) yield e;
    } catch (err) {
      const e = err as grpc.ServiceError;
      throw new ClientError(e.code, `${grpc.status[e.code]}: ${e.details || e.message}`);
    } finally {
      call.cancel();
    }
  }

  /**
   * Streams weights to the coordinator, which stores them in the Object
   * Store: model.json first, then the weight bytes in manifest order.
   */
  async pushWeights(name: string, modelJson: string, data: AsyncIterable<Uint8Array>): Promise<WeightsInfo> {
    let settle!: { resolve: (w: WeightsInfo) => void; reject: (e: Error) => void };
    const done = new Promise<WeightsInfo>((resolve, reject) => (settle = { resolve, reject }));
    const call = this.sweeps.pushWeights((err, res) =>
      err ? settle.reject(new ClientError(err.code, `${grpc.status[err.code]}: ${err.details || err.message}`)) : settle.resolve(res!),
    );
    // The server may answer (an error) while we still write; the answer is awaited below.
    done.catch(() => {});
    const write = async (m: { name: string; modelJson: string; data: Buffer }) => {
      if (!call.write(m)) await new Promise<void>((r) => call.once('drain', () => r()));
    };
    try {
      await write({ name, modelJson, data: Buffer.alloc(0) });
      for await (const chunk of data) await write({ name: '', modelJson: '', data: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) });
      call.end();
    } catch (err) {
      call.cancel();
      // A write that failed because the server refused the push: its status says why.
      throw (await done.then(() => null, (e: Error) => e)) ?? err;
    }
    return done;
  }
  listWeights(): Promise<WeightsInfo[]> {
    return promisify<{ weights: WeightsInfo[] }>((cb) => this.sweeps.listWeights({}, cb)).then((r) => r.weights);
  }

  /** A trial's stored model: the first chunk has model_json and tlsweep_json, the rest weights.bin. */
  async *exportModel(trialId: string): AsyncGenerator<ModelChunk> {
    const call = this.sweeps.exportModel({ trialId });
    try {
      for await (const c of call as AsyncIterable<ModelChunk>) yield c;
    } catch (err) {
      const e = err as grpc.ServiceError;
      throw new ClientError(e.code, `${grpc.status[e.code]}: ${e.details || e.message}`);
    } finally {
      call.cancel();
    }
  }

  close(): void {
    this.sweeps.close();
    this.leaderboard.close();
  }
}
