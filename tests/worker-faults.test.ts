import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { spawnService, WORKER_MAIN, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { waitFor } from './helpers/wait-for.js';

/**
 * Real worker processes meeting faults. SIGTERM with a short TLSWEEP_DRAIN_GRACE_MS while an epoch is far from
 * done: the worker hands the trial back at once (nak(0), not by its 60 s
 * lease lapsing) and exits; the next worker resumes it from the checkpoint
 * of its last finished epoch.
 */
describe('worker faults', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let dir: string;
  const procs: ManagedProcess[] = [];
  const env = () => ({ TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: `127.0.0.1:${coord.port}`, TLSWEEP_DRAIN_GRACE_MS: '300', TLSWEEP_FEATURE_CACHE_DIR: join(dir, 'cache'), TLSWEEP_FEATURE_STORE_MB: '0' });
  const worker = async (name: string) => {
    const { proc } = await spawnService(name, WORKER_MAIN, { ...env(), TLSWEEP_WORKER_ID: name }, createWriteStream(join(dir, `${name}.log`)), 'worker.ready');
    procs.push(proc);
    return proc;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tlsweep-drain-'));
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', httpAddress: null, ackWaitMs: 60_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
  });
  afterAll(async () => {
    client?.close();
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await coord?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hands the trial back when the grace period runs out, exits, and the trial resumes elsewhere', async () => {
    const w1 = await worker('w1');
    // Long epochs (many tiny batches: ~1 s each on wasm, well over the 300 ms grace), so SIGTERM lands well inside one.
    const sweep = await client.submit(`
name: drain-grace
dataset: { kind: synthetic, classes: 3, perClass: 600, seed: 4 }
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.1]
headEpochs: 4
batchSize: 2
headUnits: 8
`);
    const trialId = await waitFor(async () => (await client.query({ sweepId: sweep.sweepId })).rows.find((t) => t.epochs >= 2)?.trialId, 120_000, 'two epochs done');
    const t0 = Date.now();
    w1.child.kill('SIGTERM');
    expect(await w1.exited).toBe(0);
    const exitMs = Date.now() - t0;
    expect(readFileSync(join(dir, 'w1.log'), 'utf8')).toMatch(/"msg":"trial\.abandoned"/);
    await worker('w2');
    await waitFor(async () => (await client.get(sweep.sweepId)).finishedAtMs > 0, 120_000, 'sweep finished');
    const t = await client.getTrial(trialId);
    if (process.env.DEBUG_DRAIN) for (const w of ['w1', 'w2']) console.log(w, readFileSync(join(dir, `${w}.log`), 'utf8'));
    console.log(`[drain-grace] exited ${exitMs} ms after SIGTERM; resumed ${t.resumedEpochs}, retrained ${t.retrainedEpochs}`);
    expect(t.status).toBe('completed');
    expect(t.attempt).toBe(2);
    expect(t.worker).toBe('w2');
    expect(t.resumedEpochs).toBeGreaterThanOrEqual(2);
    expect(t.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    expect(exitMs).toBeLessThan(300 + 5000);
  }, 300_000);

  it('a diverging trial ends diverged, is not retried, and the worker goes on with the next trial', async () => {
    if (!procs.some((p) => p.child.exitCode === null && p.child.signalCode === null)) await worker('w3');
    const sweep = await client.submit(`
name: diverge
dataset: { kind: synthetic, classes: 3, perClass: 16, seed: 5 }
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0]
learningRates: [10, 0.01]
dropouts: [0.0]
optimizer: adam
headEpochs: 3
batchSize: 8
headUnits: 16
maxParallel: 1
`);
    await waitFor(async () => (await client.get(sweep.sweepId)).finishedAtMs > 0, 120_000, 'sweep finished');
    const rows = (await client.query({ sweepId: sweep.sweepId })).rows;
    const bad = rows.find((t) => t.learningRate === 10)!;
    const good = rows.find((t) => t.learningRate === 0.01)!;
    expect(bad.status, JSON.stringify(bad.history.map((e) => e.loss))).toBe('diverged');
    expect(bad.error).toMatch(/^DIVERGED: training loss (saturated|became|exploded)/);
    expect(bad.attempt).toBe(1);
    expect(good.status).toBe('completed');
    expect(good.worker).toBe(bad.worker); // the same worker process took the next trial
    const s = await client.get(sweep.sweepId);
    expect(s.counts).toMatchObject({ diverged: 1, completed: 1 });
    expect(s.reason).toBe('1 of 2 trials diverged');
  }, 180_000);
});
