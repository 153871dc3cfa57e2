/**
 * Work units and fused trials end to end, in one process: a real NATS, the
 * coordinator (gRPC), an in-process worker (cpu, tiny_cnn). The same sweep
 * with fusion on (2 units: one per depth, 4 fusable trials each) and with
 * `fuse: false` (8 messages) gives the same leaderboard within tolerance.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { selectBackend } from '../services/worker/src/engine/backend.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { TrialConsumer } from '../services/worker/src/runner/trial-consumer.js';
import { waitFor } from './helpers/wait-for.js';

const spec = (fuse: string, maxParallel = 8) => `
name: fused
dataset: {kind: synthetic, classes: 3, perClass: 12, seed: 2}
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0, 6]
learningRates: [0.01, 0.003]
dropouts: [0.1, 0.4]
headEpochs: 2
fineTuneEpochs: 1
batchSize: 8
headUnits: 8
maxParallel: ${maxParallel}
fuse: ${fuse}
`;

describe('a sweep with fused work units gives the same leaderboard as one trial per message', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let nc: NatsConnection;
  let reporter: Reporter;
  beforeAll(async () => {
    await selectBackend('cpu');
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    nc = await connect({ servers: nats.url });
    reporter = new Reporter({ address: `127.0.0.1:${coord.port}`, retryMs: 5000 });
  });
  afterAll(async () => {
    reporter?.close();
    await nc?.close();
    client?.close();
    await coord?.stop();
    await nats?.stop();
  });

  async function run(fuse: string, messages: number, maxParallel?: number) {
    const sweep = await client.submit(spec(fuse, maxParallel));
    const worker = new TrialConsumer({ nc, reporter, workerId: `w-${fuse}`, backend: 'cpu', log: silentLogger, maxTrials: messages, heartbeatMs: 5000 });
    await worker.run();
    await waitFor(async () => (await client.get(sweep.sweepId)).status === 'completed', 10_000);
    const rows = (await client.query({ sweepId: sweep.sweepId })).rows;
    return { sweepId: sweep.sweepId, rows: new Map(rows.map((r) => [`${r.unfreeze}|${r.learningRate}|${r.dropout}`, r])) };
  }

  let single: Awaited<ReturnType<typeof run>> | undefined;
  const singleRun = async () => (single ??= await run('false', 8));

  it.each([
    ['2 units fused', '{maxTrials: 8}', 2, undefined],
    // Head-only trials ride on the depth-6 unit: phase 1 trains once per (lr, dropout) for both depths.
    // 16 slots: the unit of 8 fits in half of maxParallel.
    ['1 unit with shared phase 1 (shareHeads)', '{maxTrials: 8, shareHeads: true}', 1, 16],
  ])('%s vs 8 single trials: same trials, same accuracies and losses (1e-4), every trial reported its own epochs', async (_label, fuseSpec, messages, maxParallel) => {
    const fused = await run(fuseSpec as string, messages as number, maxParallel as number | undefined);
    const single = await singleRun();
    expect(fused.rows.size).toBe(8);
    expect([...fused.rows.keys()].sort()).toEqual([...single.rows.keys()].sort());
    for (const [key, f] of fused.rows) {
      const s = single.rows.get(key)!;
      expect(f.status).toBe('completed');
      expect(f.epochs, key).toBe(s.epochs);
      for (const m of ['valAccuracy', 'valLoss', 'testAccuracy', 'testLoss'] as const) {
        expect(Math.abs(f[m] - s[m]), `${key} ${m}: ${f[m]} vs ${s[m]}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(s[m])));
      }
      const t = await client.getTrial(f.trialId);
      expect(t.history.map((e) => e.epoch)).toEqual(Array.from({ length: f.epochs }, (_, i) => i + 1));
    }
  }, 120_000);
});
