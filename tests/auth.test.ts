/**
 * gRPC security end to end: TLS with a throwaway CA (mTLS accepted and
 * refused), bearer tokens in three roles, the loopback-only insecure mode,
 * and per-attempt lease tokens on reports, including after a coordinator
 * restart. Configuration goes through loadConfig(env) as in a pod.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReportServiceClient, TrialFinishedRequest, TrialStartedRequest, TrialFailedRequest, EpochMetrics, type Decision, type Ack } from '../proto/generated/tlsweep/v1/tlsweep.js';
import {
  channelCredentials, clientOptions, loadConfig, startCoordinator, startGrpcServer,
  type ClientTls, type CoordinatorConfig, type RunningCoordinator,
} from '../services/coordinator/src/index.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { makeTestPki } from './helpers/test-pki.js';

const require = createRequire(import.meta.url);
const SPEC = 'name: auth\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01, 0.001]\ndropouts: [0.1]\nmaxParallel: 1';
// fromPartial: every field the message has (new ones included) gets its default, so the client can encode it.
const EPOCH = EpochMetrics.fromPartial({ epoch: 1, phase: 'head', loss: 1, accuracy: 0.5, valLoss: 1, valAccuracy: 0.5, seconds: 0.1, learningRate: 0.01 });
const TOKENS = { operator: 'op-secret-1', worker: 'wk-secret-1', reader: 'rd-secret-1' };

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;
const call = <Req, Res>(fn: Unary<Req, Res>, req: Req): Promise<Res> =>
  new Promise((resolve, reject) => fn(req, new grpc.Metadata(), (err, res) => (err ? reject(err) : resolve(res as Res))));
const codeOf = async (p: Promise<unknown>): Promise<grpc.status | 'OK'> =>
  p.then(() => 'OK' as const, (e: grpc.ServiceError | ClientError) => e.code);

describe('gRPC security', () => {
  const pki = makeTestPki();
  let nats: RunningNatsServer;
  let cfg: CoordinatorConfig;
  let coord: RunningCoordinator;
  let address: string;
  let tls: ClientTls;
  const clients: { close(): void }[] = [];
  const cli = (token?: string, t: ClientTls | null = tls) => {
    const c = new TlsweepClient(address, { token, tls: t });
    clients.push(c);
    return c;
  };
  const reportClient = (token?: string) => {
    const c = new ReportServiceClient(address, channelCredentials(tls), clientOptions(token));
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    const tokenFile = join(pki.dir, 'worker-tokens');
    writeFileSync(tokenFile, `${TOKENS.worker}\n\nwk-secret-2\n`);
    cfg = loadConfig({
      TLSWEEP_NATS_URL: nats.url,
      TLSWEEP_GRPC_ADDRESS: '127.0.0.1:0',
      TLSWEEP_HTTP_ADDRESS: 'off',
      TLSWEEP_TLS_CERT_FILE: pki.serverCertFile,
      TLSWEEP_TLS_KEY_FILE: pki.serverKeyFile,
      TLSWEEP_TLS_CA_FILE: pki.caFile,
      TLSWEEP_TLS_CLIENT_AUTH: 'require',
      TLSWEEP_OPERATOR_TOKENS: TOKENS.operator,
      TLSWEEP_WORKER_TOKENS_FILE: tokenFile,
      TLSWEEP_READER_TOKENS: `${TOKENS.reader}, rd-secret-2`,
    });
    coord = await startCoordinator(cfg);
    address = `127.0.0.1:${coord.port}`;
    tls = { ca: pki.read(pki.caFile), cert: pki.read(pki.clientCertFile), key: pki.read(pki.clientKeyFile) };
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await coord?.stop();
    await nats?.stop();
    pki.remove();
  });

  it('reads tokens from lists and files, one per line', () => {
    expect(cfg.tokens).toEqual({ operator: [TOKENS.operator], worker: [TOKENS.worker, 'wk-secret-2'], reader: [TOKENS.reader, 'rd-secret-2'] });
    expect(cfg.tls?.requireClientCert).toBe(true);
  });

  it('mTLS: a client certificate from the trusted CA gets in; none, another CA or plaintext do not', async () => {
    expect(await codeOf(cli(TOKENS.reader).list())).toBe('OK');
    const noCert = cli(TOKENS.reader, { ca: tls.ca });
    expect(await codeOf(noCert.list())).toBe(grpc.status.UNAVAILABLE);
    const otherCa = cli(TOKENS.reader, { ca: tls.ca, cert: pki.read(pki.otherClientCertFile), key: pki.read(pki.otherClientKeyFile) });
    expect(await codeOf(otherCa.list())).toBe(grpc.status.UNAVAILABLE);
    const plaintext = cli(TOKENS.reader, null);
    expect(await codeOf(plaintext.list())).toBe(grpc.status.UNAVAILABLE);
    // A client that does not trust the private CA refuses the server.
    const untrusting = cli(TOKENS.reader, { cert: tls.cert, key: tls.key });
    expect(await codeOf(untrusting.list())).toBe(grpc.status.UNAVAILABLE);
  });

  it('tokens: UNAUTHENTICATED when missing or unknown, PERMISSION_DENIED for the wrong role', async () => {
    expect(await codeOf(cli().list())).toBe(grpc.status.UNAUTHENTICATED);
    const unknown = (await cli('not-a-token').list().catch((e) => e)) as ClientError;
    expect(unknown.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(unknown.message).toContain('unknown bearer token');
    // A token one character off (same length) is as unknown as any other.
    expect(await codeOf(cli(TOKENS.operator.slice(0, -1) + 'X').list())).toBe(grpc.status.UNAUTHENTICATED);

    const denied = (await cli(TOKENS.reader).submit(SPEC).catch((e) => e)) as ClientError;
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.message).toContain('operator');
    expect(await codeOf(cli(TOKENS.worker).submit(SPEC))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(cli(TOKENS.worker).list())).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(cli(TOKENS.reader).cancel('s-x'))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(cli('rd-secret-2').query({}))).toBe('OK');
    // Operators may read too; readers and operators may not report.
    expect(await codeOf(cli(TOKENS.operator).query({}))).toBe('OK');
    const rep = reportClient(TOKENS.operator);
    expect(await codeOf(call(rep.trialStarted.bind(rep) as Unary<object, Decision>, TrialStartedRequest.fromPartial({ trialId: 'x', attempt: 1 })))).toBe(grpc.status.PERMISSION_DENIED);
    const anon = reportClient();
    expect(await codeOf(call(anon.trialStarted.bind(anon) as Unary<object, Decision>, TrialStartedRequest.fromPartial({ trialId: 'x', attempt: 1 })))).toBe(grpc.status.UNAUTHENTICATED);
    expect((await cli(TOKENS.reader).list()).length).toBe(0); // nothing was submitted by the refused calls
  });

  it('health needs no token (probes)', async () => {
    const healthProto = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(healthProto, { enums: String })) as any;
    const health = new pkg.grpc.health.v1.Health(address, channelCredentials(tls));
    clients.push(health);
    const res = await new Promise<any>((resolve, reject) => health.check({ service: '' }, (err: unknown, r: unknown) => (err ? reject(err) : resolve(r))));
    expect(res.status).toBe('SERVING');
  });

  it('lease tokens: reports need the attempt\'s lease; refused ones change nothing; a restarted coordinator still verifies', async () => {
    const op = cli(TOKENS.operator);
    const sweep = await op.submit(SPEC);
    const trialId = (await op.query({ sweepId: sweep.sweepId })).rows.find((r) => r.status === 'queued')!.trialId;
    const w = reportClient(TOKENS.worker);
    const started = call(w.trialStarted.bind(w) as Unary<object, Decision>, TrialStartedRequest.fromPartial({ trialId, attempt: 1, worker: 'w1', backend: 'cpu' }));
    const start = await started;
    expect(start.action).toBe('CONTINUE');
    expect(start.leaseToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const epoch = (leaseToken: string, attempt = 1, w2 = w) => call(w2.reportEpoch.bind(w2) as Unary<object, Decision>, { trialId, attempt, metrics: EPOCH, leaseToken });

    const before = await op.getTrial(trialId);
    const missing = (await epoch('').catch((e) => e)) as grpc.ServiceError;
    expect(missing.code, missing.details).toBe(grpc.status.PERMISSION_DENIED);
    expect(missing.details).toContain('lease_token');
    expect(await codeOf(epoch(start.leaseToken.slice(0, -2) + 'AA'))).toBe(grpc.status.PERMISSION_DENIED);
    // Another attempt's token is not this attempt's.
    expect(await codeOf(epoch(start.leaseToken, 2))).toBe(grpc.status.PERMISSION_DENIED);
    const fin = (leaseToken: string) => call(w.trialFinished.bind(w) as Unary<object, Ack>, TrialFinishedRequest.fromPartial({ trialId, attempt: 1, valAccuracy: 0.9, epochs: 1, leaseToken }));
    expect(await codeOf(fin('forged'))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(call(w.trialFailed.bind(w) as Unary<object, Ack>, TrialFailedRequest.fromPartial({ trialId, attempt: 1, error: 'x', leaseToken: '' })))).toBe(grpc.status.PERMISSION_DENIED);
    const after = await op.getTrial(trialId);
    expect(after).toEqual(before);
    expect(after.status).toBe('running');

    expect((await epoch(start.leaseToken)).action).toBe('CONTINUE');
    // A retried TrialStarted for the same attempt (its answer was lost) gets the same, working lease.
    const again = await call(w.trialStarted.bind(w) as Unary<object, Decision>, TrialStartedRequest.fromPartial({ trialId, attempt: 1, worker: 'w1', backend: 'cpu' }));
    expect(again.leaseToken).toBe(start.leaseToken);

    // Restart: the secret lives in KV, so the lease handed out before still works and forgeries still fail.
    await coord.stop();
    coord = await startCoordinator({ ...cfg, grpcAddress: address });
    const w2 = reportClient(TOKENS.worker);
    expect(await codeOf(epoch('forged-after-restart', 1, w2))).toBe(grpc.status.PERMISSION_DENIED);
    expect((await epoch(start.leaseToken, 1, w2)).action).toBe('CONTINUE');
    const done = await call(w2.trialFinished.bind(w2) as Unary<object, Ack>, TrialFinishedRequest.fromPartial({ trialId, attempt: 1, valAccuracy: 0.9, valLoss: 0.3, epochs: 1, leaseToken: start.leaseToken }));
    expect(done.accepted).toBe(true);
    expect((await cli(TOKENS.reader).getTrial(trialId)).status).toBe('completed');
  });

  it('refuses plaintext or token-less gRPC on a non-loopback address, and allows it with TLS and tokens', async () => {
    const serverTls = cfg.tls!;
    const c = coord.coordinator;
    await expect(startGrpcServer(c, { address: '0.0.0.0:0' })).rejects.toThrow(/not a loopback address.*TLS.*bearer tokens/);
    await expect(startGrpcServer(c, { address: '0.0.0.0:0', tls: serverTls })).rejects.toThrow(/bearer tokens/);
    await expect(startGrpcServer(c, { address: '0.0.0.0:0', tokens: cfg.tokens })).rejects.toThrow(/TLS/);
    const ok = await startGrpcServer(c, { address: '0.0.0.0:0', tls: serverTls, tokens: cfg.tokens });
    expect(ok.port).toBeGreaterThan(0);
    await ok.close(100);
    // Loopback stays open for local use and tests.
    const local = await startGrpcServer(c, { address: 'localhost:0' });
    await local.close(100);
  });

  it('config errors name the variable', () => {
    expect(() => loadConfig({ TLSWEEP_TLS_CERT_FILE: pki.serverCertFile })).toThrow(/TLSWEEP_TLS_KEY_FILE/);
    expect(() => loadConfig({ TLSWEEP_TLS_CERT_FILE: pki.serverCertFile, TLSWEEP_TLS_KEY_FILE: pki.serverKeyFile, TLSWEEP_TLS_CLIENT_AUTH: 'require' })).toThrow(/TLSWEEP_TLS_CA_FILE/);
    expect(() => loadConfig({ TLSWEEP_TLS_CLIENT_AUTH: 'maybe' })).toThrow(/TLSWEEP_TLS_CLIENT_AUTH/);
    expect(() => loadConfig({ TLSWEEP_NATS_USER: 'u' })).toThrow(/TLSWEEP_NATS_PASSWORD/);
  });
});
