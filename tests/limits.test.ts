/**
 * Limits, configured as in a pod (loadConfig(env)): gRPC message size,
 * trials per sweep, sweeps running at once, submissions per minute per
 * client. Each refusal has the right status, says which limit, and stores
 * nothing.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SweepServiceClient, type SubmitSweepResponse } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { clientOptions, loadConfig, RateLimiter, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

const spec = (name: string, lrs = '[0.01]') => `name: ${name}\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: ${lrs}\ndropouts: [0.1]\nmaxParallel: 1`;
const fail = (p: Promise<unknown>) => p.then(() => null, (e: ClientError) => e);

describe('RateLimiter', () => {
  it('allows a burst of perMinute, then one per 60/perMinute seconds, per key', () => {
    let now = 0;
    const rl = new RateLimiter(6, () => now);
    for (let i = 0; i < 6; i++) expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(10_000);
    expect(rl.take('b')).toBe(0);
    now = 9_999;
    expect(rl.take('a')).toBeGreaterThan(0);
    now = 10_000;
    expect(rl.take('a')).toBe(0);
    expect(rl.take('a')).toBe(10_000);
  });
});

describe('coordinator limits', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let a: TlsweepClient;
  let b: TlsweepClient;
  let d: TlsweepClient;
  let raw: SweepServiceClient;
  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator(loadConfig({
      TLSWEEP_NATS_URL: nats.url,
      TLSWEEP_GRPC_ADDRESS: '127.0.0.1:0',
      TLSWEEP_HTTP_ADDRESS: 'off',
      TLSWEEP_OPERATOR_TOKENS: 'op-a,op-b,op-c,op-d',
      TLSWEEP_GRPC_MAX_MESSAGE_BYTES: '4096',
      TLSWEEP_MAX_TRIALS_PER_SWEEP: '3',
      TLSWEEP_MAX_RUNNING_SWEEPS: '1',
      TLSWEEP_SUBMIT_RATE: '4',
    }));
    const address = `127.0.0.1:${coord.port}`;
    a = new TlsweepClient(address, { token: 'op-a' });
    b = new TlsweepClient(address, { token: 'op-b' });
    d = new TlsweepClient(address, { token: 'op-d' });
    raw = new SweepServiceClient(address, grpc.credentials.createInsecure(), clientOptions('op-c'));
  });
  afterAll(async () => {
    a?.close();
    b?.close();
    d?.close();
    raw?.close();
    await coord?.stop();
    await nats?.stop();
  });

  it('refuses a message over TLSWEEP_GRPC_MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED', async () => {
    const big = `${spec('big')}\n# ${'x'.repeat(5000)}`;
    const e = await fail(b.submit(big));
    expect(e?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e?.message).toMatch(/larger than max|message/i);
    expect(await b.list()).toHaveLength(0);
  });

  it('refuses more trials than TLSWEEP_MAX_TRIALS_PER_SWEEP, naming the field', async () => {
    const grid = await fail(b.submit(spec('grid', '[0.1, 0.01, 0.001, 0.0001]')));
    expect(grid?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(grid?.message).toContain('backbones: the sweep has 4 trials');
    expect(grid?.message).toContain('TLSWEEP_MAX_TRIALS_PER_SWEEP');
    const random = await fail(b.submit(`${spec('rnd', '{min: 0.0001, max: 0.1, log: true}')}\nsearch: random\nmaxTrials: 5`));
    expect(random?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(random?.message).toContain('maxTrials');
    expect(await b.list()).toHaveLength(0);
  });

  it('refuses a sweep beyond TLSWEEP_MAX_RUNNING_SWEEPS until one ends', async () => {
    const first = await d.submit(spec('first'));
    const e = await fail(d.submit(spec('second')));
    expect(e?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e?.message).toContain('TLSWEEP_MAX_RUNNING_SWEEPS=1');
    expect((await d.list()).map((s) => s.name)).toEqual(['first']);
    await d.cancel(first.sweepId);
    const third = await d.submit(spec('third'));
    expect(third.status).toBe('running');
    await d.cancel(third.sweepId);
  });

  it('limits submissions per client (token) per minute, with the wait in the message and in retry-after-ms', async () => {
    // Client a has its own bucket of 4: refused specs count too (the limit guards the work of parsing them).
    for (let i = 0; i < 4; i++) expect((await fail(a.submit('not: [a spec')))?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const limited = await fail(a.submit(spec('limited')));
    expect(limited?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(limited?.message).toMatch(/at most 4 SubmitSweep calls a minute per client; retry after \d+ s/);
    // Reads are not limited, and another token has its own bucket.
    expect((await a.list()).map((s) => s.name).sort()).toEqual(['first', 'third']);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.submitSweep({ spec: 'x: [' }, (e: grpc.ServiceError | null, _r?: SubmitSweepResponse) => resolve(e)));
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    for (let i = 0; i < 3; i++) await new Promise((r) => raw.submitSweep({ spec: 'x: [' }, r));
    const over = await new Promise<grpc.ServiceError | null>((resolve) => raw.submitSweep({ spec: 'x: [' }, (e: grpc.ServiceError | null) => resolve(e)));
    expect(over?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const wait = Number(over?.metadata.get('retry-after-ms')[0]);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(15_000);
  });
});
