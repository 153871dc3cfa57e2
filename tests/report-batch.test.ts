import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Coordinator, TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { startGrpcServer, type RunningGrpcServer } from '../services/coordinator/src/grpc/server.js';
import { MAX_REPORT_BATCH, reportHandlers } from '../services/coordinator/src/grpc/report-handlers.js';
import { toGrpcStatus } from '../services/coordinator/src/errors.js';
import { ReportServiceClient, ReportServiceService, TrialFinishedRequest, type ReportBatchResponse } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

/**
 * The batched `Report` rpc and the Reporter that uses it: each item gets the
 * status its own call would have had, reports of one trial apply in order,
 * concurrent reports leave in one call, and a coordinator without `Report`
 * still gets every report, one call each.
 */
const SPEC = (name: string, n: number) => `name: ${name}\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [${Array.from({ length: n }, (_, i) => 0.01 * (i + 1)).join(', ')}]\ndropouts: [0.1]\nheadEpochs: 3\nmaxParallel: ${n}\nfuse: false\n`;
const epoch = (n: number) => ({ phase: 'head' as const, epoch: n, loss: 1, accuracy: 0.5, valLoss: 1 - n / 10, valAccuracy: 0.5, seconds: 0.1, learningRate: 0.01, trainableLayers: 0 });

describe('batched reports', () => {
  let nats: RunningNatsServer;
  let nc: NatsConnection;
  let c: Coordinator;
  let server: RunningGrpcServer;
  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    c = await Coordinator.start({ nc });
    server = await startGrpcServer(c, { address: '127.0.0.1:0' });
  });
  afterAll(async () => {
    await server?.close(0);
    c?.close();
    await nc?.close();
    await nats?.stop();
  });

  /** Submits a sweep of `n` one-trial messages and takes them off the queue (not acked: they stay the trials' messages). */
  async function trials(name: string, n: number): Promise<string[]> {
    await c.submitSweep(SPEC(name, n));
    const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
    const ids: string[] = [];
    while (ids.length < n) ids.push((await consumer.next({ expires: 2000 }))!.json<TrialTaskV1>().config.trialId);
    return ids;
  }

  it('answers each item with its own status; refuses a malformed or oversized batch naming the field', async () => {
    const [a, b] = await trials('batch-items', 2);
    const client = new ReportServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const report = (items: object[]) => new Promise<ReportBatchResponse>((resolve, reject) => client.report({ items } as never, (e, r) => (e ? reject(e) : resolve(r!))));
    const started = (trialId: string) => ({ started: { trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '', resumedEpochs: 0 } });
    const r1 = await report([started(a), started(b), { epoch: { trialId: a, attempt: 1, leaseToken: 'forged', metrics: epoch(1) } }, {}, { ...started(a), epoch: { trialId: a, attempt: 1, leaseToken: '', metrics: epoch(1) } }]);
    expect(r1.results.map((r) => r.code)).toEqual([0, 0, grpc.status.PERMISSION_DENIED, grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT]);
    expect(r1.results[0].decision).toMatchObject({ action: 'CONTINUE' });
    expect(r1.results[2].details).toMatch(/lease_token/);
    expect(r1.results[3].details).toMatch(/items\[3\]: exactly one of started, epoch, finished, failed/);
    expect(r1.results[4].details).toMatch(/items\[4\]: .*got 2/);
    // The refused items wrote nothing.
    expect(c.getTrial(a).history).toHaveLength(0);

    // A trial's reports apply in item order within one batch; other trials' items go alongside.
    const leaseA = r1.results[0].decision!.leaseToken;
    const leaseB = r1.results[1].decision!.leaseToken;
    const r2 = await report([
      { epoch: { trialId: a, attempt: 1, leaseToken: leaseA, metrics: epoch(1) } },
      { epoch: { trialId: b, attempt: 1, leaseToken: leaseB, metrics: epoch(1) } },
      { epoch: { trialId: a, attempt: 1, leaseToken: leaseA, metrics: epoch(2) } },
      { failed: { trialId: b, attempt: 1, leaseToken: leaseB, error: 'boom', code: 'TEST', retrying: false, diverged: false } },
    ]);
    expect(r2.results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(r2.results[3].ack).toMatchObject({ accepted: true });
    expect(c.getTrial(a).history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(c.getTrial(b)).toMatchObject({ status: 'failed', error: expect.stringContaining('boom') });

    const tooMany = await report(Array.from({ length: MAX_REPORT_BATCH + 1 }, () => started(a))).catch((e: grpc.ServiceError) => e);
    expect((tooMany as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((tooMany as grpc.ServiceError).details).toMatch(new RegExp(`items: at most ${MAX_REPORT_BATCH}`));
    client.close();
  });

  /** A ReportService server over the real coordinator that counts calls per method; `withReport: false` is a coordinator from before `Report`. */
  async function countingServer(withReport: boolean) {
    const h = reportHandlers(c);
    const calls: Record<string, number> = {};
    const wrap = <Req, Res>(name: string, fn: (r: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> => (call, cb) => {
      calls[name] = (calls[name] ?? 0) + 1;
      fn(call.request).then((r) => cb(null, r), (e) => cb({ code: toGrpcStatus(e).code, details: toGrpcStatus(e).details }));
    };
    const s = new grpc.Server();
    s.addService(ReportServiceService, {
      trialStarted: wrap('TrialStarted', h.trialStarted),
      reportEpoch: wrap('ReportEpoch', h.reportEpoch),
      trialFinished: wrap('TrialFinished', h.trialFinished),
      trialFailed: wrap('TrialFailed', h.trialFailed),
      ...(withReport ? { report: wrap('Report', h.report) } : {}),
    } as never);
    const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    return { address: `127.0.0.1:${port}`, calls, close: () => s.forceShutdown() };
  }

  /** Eight trials reporting side by side, as a fused unit's do: started, 3 epochs, finished. */
  async function unitThrough(reporter: Reporter, ids: string[]) {
    const starts = await Promise.all(ids.map((trialId) => reporter.trialStarted({ trialId, attempt: 1, worker: 'w', backend: 'cpu', pretrained: false, weightsSource: '', resumedEpochs: 0 })));
    expect(starts.every((d) => d.action === 'CONTINUE' && d.leaseToken)).toBe(true);
    for (let e = 1; e <= 3; e++) {
      const ds = await Promise.all(ids.map((trialId) => reporter.reportEpoch({ trialId, attempt: 1, metrics: epoch(e) })));
      expect(ds.map((d) => d.action)).toEqual(ids.map(() => 'CONTINUE'));
    }
    const acks = await Promise.all(ids.map((trialId) => reporter.trialFinished(TrialFinishedRequest.fromPartial({
      trialId, attempt: 1, valAccuracy: 0.5, valLoss: 0.7, testAccuracy: 0.5, testLoss: 0.7, epochs: 3, seconds: 0.3, stopped: false, totalParams: 1, trainableParams: 1, cutLayer: 'x', pretrained: false, weightsSource: '', backend: 'cpu',
    }))));
    expect(acks.every((a) => a.accepted)).toBe(true);
    for (const id of ids) expect(c.getTrial(id)).toMatchObject({ status: 'completed', epochs: 3 });
  }

  it('the Reporter sends reports made together in one call', async () => {
    const ids = await trials('batch-reporter', 8);
    const s = await countingServer(true);
    const reporter = new Reporter({ address: s.address, maxBatchesInFlight: 1 });
    await unitThrough(reporter, ids);
    // 5 rounds of 8 reports: one call per round, none alone.
    expect(s.calls).toEqual({ Report: 5 });
    reporter.close();
    s.close();
  });

  it('against a coordinator without Report, every report goes alone and still lands', async () => {
    const ids = await trials('batch-fallback', 8);
    const s = await countingServer(false);
    const reporter = new Reporter({ address: s.address });
    await unitThrough(reporter, ids);
    expect(s.calls).toEqual({ TrialStarted: 8, ReportEpoch: 24, TrialFinished: 8 });
    reporter.close();
    s.close();
    await (await jetstreamManager(nc)).streams.purge(TRIAL_STREAM);
  });
});
