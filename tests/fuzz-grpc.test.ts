/**
 * Property-based bad input (fast-check): the sweep spec validator and every
 * rpc of the coordinator, through the real gRPC server. Never a crash, an
 * INTERNAL or UNKNOWN: always OK or a deliberate status, INVALID_ARGUMENT
 * naming the field, and a refused call leaves JetStream KV untouched.
 * Run counts are modest so the file takes seconds.
 */
import * as grpc from '@grpc/grpc-js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LeaderboardQuery, ReportEpochRequest, ReportServiceClient, SweepServiceClient, LeaderboardServiceClient,
  TrialFailedRequest, TrialFinishedRequest, TrialStartedRequest, ModelStoredRequest, WeightsPushChunk, type Decision,
} from '../proto/generated/tlsweep/v1/tlsweep.js';
import { InvalidArgumentError, parseSweepSpec, startCoordinator, validateSweepSpec, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

const VALID = { name: 'fuzz', dataset: { kind: 'synthetic' }, backbones: ['tiny_cnn'], unfreeze: [0], learningRates: [0.01], dropouts: [0.1], maxParallel: 1 };
const FIELDS = ['name', 'dataset', 'backbones', 'unfreeze', 'learningRates', 'dropouts', 'headEpochs', 'fineTuneEpochs', 'fineTuneLrFactor', 'batchSize', 'headUnits', 'imageSize', 'seed', 'search', 'maxTrials', 'scheduler', 'tpe', 'maxParallel', 'split', 'augmentation'];

/** Values a spec field might wrongly hold. */
const junk = fc.oneof(
  fc.constantFrom(null, true, '', 'tiny_cnn', 'grid', 'random', 'asha', -1, 0, 1, 1e9, 0.5, -0.5, NaN, Infinity, [], {}, [0], [-1], [1e9], ['x']),
  fc.string({ maxLength: 20 }),
  fc.double(),
  fc.integer(),
  fc.array(fc.oneof(fc.double(), fc.integer({ min: -5, max: 500 }), fc.string({ maxLength: 5 })), { maxLength: 4 }),
  fc.dictionary(fc.constantFrom('kind', 'min', 'max', 'log', 'classes', 'perClass', 'metric', 'gracePeriod', 'valFraction', 'rotation', 'passes'), fc.oneof(fc.double(), fc.string({ maxLength: 8 }), fc.boolean()), { maxKeys: 4 }),
);

/** A valid spec with some fields replaced, removed or added. */
const mutatedSpec = fc
  .record({
    set: fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), junk, { maxKeys: 3 }),
    drop: fc.subarray(Object.keys(VALID)),
  })
  .map(({ set, drop }) => {
    const o: Record<string, unknown> = { ...VALID, ...set };
    for (const k of drop) delete o[k];
    return o;
  });

/** Every violation names a field and says something. */
function expectNamedViolations(err: unknown): void {
  expect(err).toBeInstanceOf(InvalidArgumentError);
  const e = err as InvalidArgumentError;
  expect(e.violations.length).toBeGreaterThan(0);
  for (const v of e.violations) {
    expect(v.field.trim().length).toBeGreaterThan(0);
    expect(v.message.length).toBeGreaterThan(0);
  }
}

describe('sweep spec validator (property-based)', () => {
  it('accepts or refuses with named fields, never throws anything else', () => {
    fc.assert(
      fc.property(mutatedSpec, (spec) => {
        try {
          const s = validateSweepSpec(spec);
          expect(s.name.length).toBeGreaterThan(0);
        } catch (err) {
          expectNamedViolations(err);
        }
      }),
      { numRuns: 400, seed: 7 },
    );
  });

  it('parses any text (YAML, JSON, garbage) to a spec or a named error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json(), mutatedSpec.map((o) => stringify(o))), (text) => {
        try {
          parseSweepSpec(text);
        } catch (err) {
          expectNamedViolations(err);
        }
      }),
      { numRuns: 300, seed: 11 },
    );
  });
});

/** Statuses a call may end with; anything else (INTERNAL, UNKNOWN, …) is a bug. */
const DELIBERATE = new Set([grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED]);

describe('every gRPC request (property-based, real server)', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let jsm: JetStreamManager;
  let sweeps: SweepServiceClient;
  let board: LeaderboardServiceClient;
  let reports: ReportServiceClient;
  let sweepId: string;
  let trialId: string;
  let lease: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    jsm = await jetstreamManager(coord.nc);
    const address = `127.0.0.1:${coord.port}`;
    sweeps = new SweepServiceClient(address, grpc.credentials.createInsecure());
    board = new LeaderboardServiceClient(address, grpc.credentials.createInsecure());
    reports = new ReportServiceClient(address, grpc.credentials.createInsecure());
    const s = await coord.coordinator.submitSweep(JSON.stringify({ ...VALID, learningRates: [0.01, 0.001], maxParallel: 2 }));
    sweepId = s.sweepId;
    trialId = coord.coordinator.trialsOf(sweepId)[0]!.config.trialId;
    const d = await new Promise<Decision>((resolve, reject) =>
      reports.trialStarted(TrialStartedRequest.fromPartial({ trialId, attempt: 1, worker: 'w' }), (e, r) => (e ? reject(e) : resolve(r!))));
    lease = d.leaseToken;
  });
  afterAll(async () => {
    sweeps?.close();
    board?.close();
    reports?.close();
    await coord?.stop();
    await nats?.stop();
  });

  /** Last sequence of both KV streams and the epoch log: unchanged means nothing was written. */
  const kvMark = async () => {
    const [a, b, e] = await Promise.all([jsm.streams.info('KV_tlsweep-sweeps'), jsm.streams.info('KV_tlsweep-trials'), jsm.streams.info('TLSWEEP_EPOCHS')]);
    return `${a.state.last_seq}/${b.state.last_seq}/${e.state.last_seq}`;
  };

  /** Calls, then checks the status is deliberate, names a field when invalid, and that a refusal wrote nothing. */
  async function check(name: string, invoke: (cb: (err: grpc.ServiceError | null) => void) => void): Promise<void> {
    const before = await kvMark();
    const err = await new Promise<grpc.ServiceError | null>((resolve) => invoke((e) => resolve(e)));
    const code = err?.code ?? grpc.status.OK;
    if (!DELIBERATE.has(code)) throw new Error(`${name}: ${grpc.status[code]} ${err?.details}`);
    if (code === grpc.status.INVALID_ARGUMENT) expect(err!.details).toMatch(/[\w.[\]]+: /);
    if (code !== grpc.status.OK) expect(await kvMark()).toBe(before);
  }

  const id = (known: () => string) => fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }), fc.constant('s-\u0000../*>'), fc.constant(null).map(() => known()));
  const num = fc.oneof(fc.double(), fc.constantFrom(0, -1, NaN, Infinity, -Infinity, 1e308));
  const u32 = fc.oneof(fc.constantFrom(0, 1, 2, 4294967295), fc.integer({ min: 0, max: 4294967295 }));
  const runs = { numRuns: 25, seed: 3 };

  it('SweepService: SubmitSweep, GetSweep, ListSweeps, CancelSweep, WatchSweep', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), mutatedSpec.map((o) => JSON.stringify(o))), async (spec) => {
        await check('SubmitSweep', (cb) => sweeps.submitSweep({ spec }, cb));
      }),
      { numRuns: 40, seed: 5 },
    );
    await fc.assert(
      fc.asyncProperty(id(() => sweepId), async (sid) => {
        await check('GetSweep', (cb) => sweeps.getSweep({ sweepId: sid }, cb));
        await check('ListSweeps', (cb) => sweeps.listSweeps({}, cb));
        await check('WatchSweep', (cb) => {
          const call = sweeps.watchSweep({ sweepId: sid, includeSnapshot: true });
          call.on('data', () => call.cancel());
          call.on('error', (e: grpc.ServiceError) => cb(e.code === grpc.status.CANCELLED ? null : e));
          call.on('end', () => cb(null));
        });
        if (sid !== sweepId) await check('CancelSweep', (cb) => sweeps.cancelSweep({ sweepId: sid }, cb));
      }),
      runs,
    );
  });

  it('LeaderboardService: Query, GetTrial', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          sweepId: id(() => sweepId), backbone: fc.string({ maxLength: 12 }), status: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('running', 'queued')),
          sortBy: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('val_accuracy', 'seconds')), ascending: fc.boolean(), descending: fc.boolean(),
          limit: u32, pageToken: fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String)), groupBy: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('backbone', 'dropout')),
        }),
        id(() => trialId),
        async (q, tid) => {
          await check('Query', (cb) => board.query(LeaderboardQuery.fromPartial(q), cb));
          await check('GetTrial', (cb) => board.getTrial({ trialId: tid }, cb));
        },
      ),
      runs,
    );
  });

  it('ReportService: TrialStarted, ReportEpoch, TrialFinished, TrialFailed', async () => {
    const metrics = fc.record({ phase: fc.oneof(fc.constantFrom('head', 'finetune', ''), fc.string({ maxLength: 8 })), epoch: u32, loss: num, accuracy: num, valLoss: num, valAccuracy: num, seconds: num });
    const leaseArb = fc.oneof(fc.constant(''), fc.string({ maxLength: 50 }), fc.constant(null).map(() => lease));
    await fc.assert(
      fc.asyncProperty(id(() => trialId), u32, leaseArb, fc.option(metrics, { nil: undefined }), num, fc.string({ maxLength: 20 }), fc.boolean(), async (tid, attempt, leaseToken, m, x, text, flag) => {
        // A second sweep trial to start; the first stays leased to attempt 1 so valid leases reach the handlers.
        const other = tid === trialId ? coord.coordinator.trialsOf(sweepId)[1]!.config.trialId : tid;
        await check('TrialStarted', (cb) => reports.trialStarted(TrialStartedRequest.fromPartial({ trialId: other, attempt, worker: text, backend: text, pretrained: flag }), cb));
        await check('ReportEpoch', (cb) => reports.reportEpoch(ReportEpochRequest.fromPartial({ trialId: tid, attempt: flag ? 1 : attempt, leaseToken, metrics: m }), cb));
        const finished = TrialFinishedRequest.fromPartial({
          trialId: tid, attempt: 1, leaseToken: flag ? leaseToken : '', valAccuracy: x, valLoss: x, testAccuracy: x, epochs: attempt, seconds: x, stopped: flag, cutLayer: text, weightsSource: text,
        });
        // Only refusals here: a finished trial would end the property's target.
        if (!(leaseToken === lease && tid === trialId)) await check('TrialFinished', (cb) => reports.trialFinished(finished, cb));
        await check('TrialFailed', (cb) => reports.trialFailed(TrialFailedRequest.fromPartial({ trialId: tid, attempt: (attempt + 1) >>> 0, error: text, code: text, retrying: flag, leaseToken }), cb));
      }),
      { numRuns: 40, seed: 9 },
    );
  });

  it('ReportService.Report: every item gets a deliberate status naming its field; an all-refused batch writes nothing', async () => {
    const metrics = fc.record({ phase: fc.constantFrom('head', 'finetune', ''), epoch: u32, loss: num, accuracy: num, valLoss: num, valAccuracy: num, seconds: num });
    const leaseArb = fc.oneof(fc.constant(''), fc.string({ maxLength: 50 }), fc.constant(null).map(() => lease));
    const item = fc.oneof(
      fc.record({ trialId: id(() => trialId), attempt: u32, worker: fc.string({ maxLength: 8 }) }).map((r) => ({ started: TrialStartedRequest.fromPartial(r) })),
      fc.record({ trialId: id(() => trialId), attempt: u32, leaseToken: leaseArb, metrics: fc.option(metrics, { nil: undefined }) }).map((r) => ({ epoch: ReportEpochRequest.fromPartial(r) })),
      // Finished only with a forged lease: a real one would end the property's target.
      fc.record({ trialId: id(() => trialId), attempt: u32, leaseToken: fc.string({ maxLength: 20 }), valAccuracy: num }).map((r) => ({ finished: TrialFinishedRequest.fromPartial(r) })),
      fc.record({ trialId: id(() => trialId), attempt: u32, leaseToken: leaseArb, error: fc.string({ maxLength: 10 }), retrying: fc.constant(true) }).map((r) => ({ failed: TrialFailedRequest.fromPartial({ ...r, attempt: (r.attempt + 1) >>> 0 }) })),
      // Malformed: no report, or two at once.
      fc.constant({}),
      fc.constant(null).map(() => ({ started: TrialStartedRequest.fromPartial({ trialId, attempt: 1 }), failed: TrialFailedRequest.fromPartial({ trialId, attempt: 1 }) })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 8 }), async (items) => {
        const before = await kvMark();
        const res = await new Promise<{ err: grpc.ServiceError | null; results: Array<{ code: number; details: string }> }>((resolve) =>
          reports.report({ items } as never, (err, r) => resolve({ err, results: r?.results ?? [] })));
        expect(res.err).toBeNull();
        expect(res.results).toHaveLength(items.length);
        for (const r of res.results) {
          if (!DELIBERATE.has(r.code)) throw new Error(`Report item: ${grpc.status[r.code]} ${r.details}`);
          if (r.code === grpc.status.INVALID_ARGUMENT) expect(r.details).toMatch(/[\w.[\]]+: /);
        }
        if (res.results.every((r) => r.code !== grpc.status.OK)) expect(await kvMark()).toBe(before);
      }),
      { numRuns: 30, seed: 13 },
    );
  });

  it('SweepService weights and models: ListWeights, ExportModel, ModelStored, PushWeights', async () => {
    const leaseArb = fc.oneof(fc.constant(''), fc.string({ maxLength: 50 }), fc.constant(null).map(() => lease));
    await fc.assert(
      fc.asyncProperty(id(() => trialId), u32, leaseArb, fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 64 }), async (tid, attempt, leaseToken, text, bytes) => {
        await check('ListWeights', (cb) => sweeps.listWeights({}, cb));
        await check('ExportModel', (cb) => {
          const call = sweeps.exportModel({ trialId: tid });
          call.on('data', () => {});
          call.on('error', (e: grpc.ServiceError) => cb(e));
          call.on('end', () => cb(null));
        });
        await check('ModelStored', (cb) => sweeps.modelStored(ModelStoredRequest.fromPartial({ trialId: tid, attempt, modelRef: text, leaseToken }), cb));
        await check('PushWeights', (cb) => {
          const call = sweeps.pushWeights((err) => cb(err));
          call.write(WeightsPushChunk.fromPartial({ name: text, modelJson: text, data: Buffer.from(bytes) }));
          call.end();
        });
      }),
      { numRuns: 25, seed: 11 },
    );
  });
});
