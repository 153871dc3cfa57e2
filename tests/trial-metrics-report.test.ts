/**
 * Stored metrics end to end, in one process: a real NATS, the coordinator,
 * an in-process worker (cpu, tiny_cnn) running an augmented sweep; the
 * worker's report reaches the trial record, GetTrial serves it, `tlsweep
 * trial` prints it, and a restarted coordinator still has it (JetStream KV).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { ClientError, TlsweepClient } from '../services/sweeper/src/client.js';
import { printTrial, toTrialView } from '../services/sweeper/src/commands/trial.js';
import { selectBackend } from '../services/worker/src/engine/backend.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { TrialConsumer } from '../services/worker/src/runner/trial-consumer.js';
import { waitFor } from './helpers/wait-for.js';

const SPEC = `
name: metrics
dataset: {kind: synthetic, classes: 6, perClass: 10, seed: 1}
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [0, 13]
learningRates: [0.01]
dropouts: [0.1]
headEpochs: 2
fineTuneEpochs: 1
batchSize: 16
headUnits: 8
augmentation: {rotation: 10, widthShift: 0.1, horizontalFlip: true, passes: 2}
`;

describe('trial metrics through report, record and CLI', () => {
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

  it('stores per-class metrics, confusion matrix and phase times, and serves them after a restart', async () => {
    const sweep = await client.submit(SPEC);
    const worker = new TrialConsumer({ nc, reporter, workerId: 'w-test', backend: 'cpu', log: silentLogger, maxTrials: 2, heartbeatMs: 5000 });
    await worker.run();
    await waitFor(async () => (await client.get(sweep.sweepId)).status === 'completed', 10_000);

    const rows = (await client.query({ sweepId: sweep.sweepId })).rows;
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const t = await client.getTrial(row.trialId);
      const m = t.testMetrics!;
      expect(m.classes).toHaveLength(6);
      expect(m.accuracy).toBeCloseTo(t.testAccuracy, 5);
      expect(m.top5Accuracy).toBeGreaterThanOrEqual(m.accuracy);
      expect(m.confusion).toHaveLength(36);
      expect(m.confusion.reduce((s, v) => s + v, 0)).toBe(m.count);
      expect(m.classes.reduce((s, c) => s + c.support, 0)).toBe(m.count);
      expect(t.phaseSeconds!.features).toBeGreaterThan(0);
      expect(t.phaseSeconds!.finetune > 0).toBe(t.unfreeze > 0);
      expect(JSON.parse(t.configJson).augmentation).toMatchObject({ rotation: [-10, 10], widthShift: [-0.1, 0.1], horizontalFlip: true, passes: 2 });
    }

    const lines: string[] = [];
    const view = await printTrial(client, rows[0].trialId, {}, (s) => lines.push(s));
    const text = lines.join("\n");
    expect(text).toContain('confusion matrix');
    expect(text).toContain('precision');
    expect(text).toMatch(/top-5 \d/);
    expect(text).toContain('augmentation: {"rotation":[-10,10]');
    expect(view.test!.confusion).toHaveLength(6);
    const json: string[] = [];
    await printTrial(client, rows[0].trialId, { json: true }, (s) => json.push(s));
    expect(JSON.parse(json[0])).toEqual(JSON.parse(JSON.stringify(view)));

    const err = (await client.getTrial('no-such-trial').catch((e) => e)) as ClientError;
    expect(err.code).toBe(grpc.status.NOT_FOUND);

    // A new coordinator rebuilds from KV: the metrics are durable.
    client.close();
    await coord.stop();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    expect(toTrialView(await client.getTrial(rows[0].trialId))).toEqual(view);
  }, 60_000);
});
