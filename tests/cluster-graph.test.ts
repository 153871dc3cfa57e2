/**
 * Graph (TF Hub-style) backbones end to end on real parts: a private
 * nats-server, the coordinator on port 0, one worker process. The GraphModel
 * is the one nsfwjs@4.3.0 ships (`mobilenet_v2_mid`: a TF Hub MobileNetV2
 * feature vector with a 5-class head), written out as a model folder; one
 * backbone reads it from the folder, another from the Object Store after
 * `tlsweep weights push`. Both take an internal node as their features (the
 * graph's own output is the NSFW softmax).
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { spawnService, WORKER_MAIN, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { pushWeights } from '../services/sweeper/src/commands/weights.js';
import { printLeaderboard } from '../services/sweeper/src/commands/leaderboard.js';
import { MID_FEATURE_MAP, MID_FEATURE_VECTOR, writeNsfwjsGraphModel } from './helpers/nsfwjs-graph-model.js';

describe('a sweep over graph backbones', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let root: string;
  let dir: string;
  let worker: ManagedProcess | undefined;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'tlsweep-cluster-graph-'));
    dir = await writeNsfwjsGraphModel(join(root, 'mobilenet_v2_mid'));
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    const env = { TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: `127.0.0.1:${coord.port}`, TLSWEEP_WORKER_ID: 'gw', TLSWEEP_NAK_DELAY_MS: '200' };
    ({ proc: worker } = await spawnService('gw', WORKER_MAIN, env, createWriteStream(join(root, 'worker.log')), 'worker.ready'));
  });

  afterAll(async () => {
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    client?.close();
    await coord?.stop();
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('trains head-only trials on a graph from a folder and from the Object Store; the leaderboard names both', async () => {
    const lines: string[] = [];
    const ref = await pushWeights(client, 'mnv2-mid', dir, (s) => lines.push(s));
    expect(ref).toBe('objstore:mnv2-mid');
    expect(lines.at(-1)).toContain('use it in a spec as `backbones: [graph:objstore:mnv2-mid]`');

    const sweep = await client.submit(`
name: graph-sweep
dataset: { kind: synthetic, classes: 3, perClass: 12, seed: 1 }
backbones:
  - { graph: "${dir}", output: ${MID_FEATURE_VECTOR} }
  - { graph: "objstore:mnv2-mid", name: mid-map, output: ${MID_FEATURE_MAP}, preprocessing: none }
unfreeze: [0]
learningRates: [0.01, 0.003]
dropouts: [0.2]
headEpochs: 3
batchSize: 12
headUnits: 16
maxParallel: 4
`);
    expect(sweep.counts!.total).toBe(4);
    for await (const e of client.watch(sweep.sweepId)) if (e.type === 'sweep_finished') break;
    const final = await client.get(sweep.sweepId);
    const rows = (await client.query({ sweepId: sweep.sweepId, limit: 10 })).rows;
    expect(final.status, rows.map((t) => `${t.trialId}: ${t.error}`).join('\n')).toBe('completed');
    expect(rows.map((t) => t.backbone).sort()).toEqual(['graph:mid-map', 'graph:mid-map', 'graph:mobilenet_v2_mid', 'graph:mobilenet_v2_mid']);
    for (const t of rows) {
      expect(t.status).toBe('completed');
      expect(t.epochs).toBe(3);
      expect(t.history.map((h) => h.phase)).toEqual(['head', 'head', 'head']);
      expect(t.valAccuracy).toBeGreaterThanOrEqual(0);
      expect(t.valAccuracy).toBeLessThanOrEqual(1);
      expect(t.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(t.pretrained).toBe(true);
      expect(t.weightsSource).toMatch(t.backbone === 'graph:mid-map' ? /^objstore:mnv2-mid \(sha256:[0-9a-f]{12}\)$/ : new RegExp(`^${dir} \\(sha256:[0-9a-f]{12}\\)$`));
      // Only the head trained; the graph's 4.3 M weights count in the total.
      expect(t.trainableParams).toBe(1792 * 16 + 16 + 16 * 3 + 3);
      expect(t.totalParams).toBeGreaterThan(4_000_000);
      // No layers-format export of a GraphModel: nothing is kept.
      expect(t.modelRef).toBe('');
    }
    // The folder and the pushed copy are the same graph.
    const digests = new Set(rows.map((t) => t.weightsSource.match(/sha256:(\w+)/)![1]));
    expect(digests.size).toBe(1);
    // Each backbone's two learning rates ran as one fused work unit.
    for (const b of ['graph:mobilenet_v2_mid', 'graph:mid-map']) {
      const units = new Set(rows.filter((t) => t.backbone === b).map((t) => coord.coordinator.getTrial(t.trialId).unitId));
      expect(units.size, b).toBe(1);
    }

    const out: string[] = [];
    await printLeaderboard(client, { sweep: sweep.sweepId }, (s) => out.push(s));
    const text = out.join('\n');
    expect(text).toContain('graph:mobilenet_v2_mid');
    expect(text).toMatch(/weights of graph:mid-map: objstore:mnv2-mid \(sha256:/);

    // The dashboard has no feature maps for a GraphModel and says why, naming the field.
    const res = await fetch(`${coord.dashboard!.url}api/layers?sweep=${sweep.sweepId}&backbone=${encodeURIComponent('graph:mid-map')}`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/backbone.*'graph:mid-map' is a GraphModel/);
  });

  it('refuses a spec that would fine-tune a graph backbone, naming the field', async () => {
    const err = await client.submit(`
name: graph-unfreeze
dataset: { kind: synthetic }
backbones: [tiny_cnn, "graph:${dir}"]
unfreeze: [0, 5]
learningRates: [0.01]
dropouts: [0.2]
`).then(() => new Error('accepted'), (e: unknown) => e as Error & { code?: number });
    expect(err).toBeInstanceOf(Error);
    // gRPC INVALID_ARGUMENT
    expect((err as { code?: number }).code).toBe(3);
    expect(err.message).toMatch(/unfreeze\[1\]: must be 0 with graph backbone graph:mobilenet_v2_mid: a GraphModel is frozen/);
  });

  it('a graph that is not there fails its trial for good, naming the path', async () => {
    const missing = join(root, 'no-such-model');
    const sweep = await client.submit(`
name: graph-missing
dataset: { kind: synthetic, classes: 2, perClass: 6 }
backbones: ["graph:${missing}"]
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.2]
headEpochs: 1
`);
    for await (const e of client.watch(sweep.sweepId)) if (e.type === 'sweep_finished') break;
    const [t] = (await client.query({ sweepId: sweep.sweepId })).rows;
    expect(t.status).toBe('failed');
    expect(t.error).toContain(`graph backbone graph:no-such-model (${missing}): cannot read ${missing}/model.json`);
    expect(t.error).toMatch(/WEIGHTS/);
    // Unrecoverable: not retried.
    expect(t.attempt).toBe(1);
  });
});
