import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator, type RunningCoordinator } from '../services/coordinator/src/index.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';
import { spawnService, WORKER_MAIN, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import type { LeaderboardRow } from '../services/sweeper/src/format.js';
import { waitFor } from './helpers/wait-for.js';

/**
 * The whole system on real parts: a private nats-server with JetStream, the
 * coordinator on port 0, two worker processes training a tiny backbone on
 * synthetic images. The second dataset does not exist on the workers: its
 * trials must fail with a clear reason while the rest of the sweep finishes.
 */
const SPEC = `
name: cluster-test
dataset:
  - { kind: synthetic, classes: 3, perClass: 30, seed: 1 }
  - { kind: folder, path: /nonexistent/tlsweep-images }
backbones: [tiny_cnn]
unfreeze: [0, 6]
learningRates: [0.01, 0.003]
dropouts: [0.2]
headEpochs: 3
fineTuneEpochs: 2
batchSize: 16
headUnits: 16
seed: 5
maxParallel: 3
`;

describe('local cluster end to end', () => {
  let nats: RunningNatsServer;
  let coord: RunningCoordinator;
  let client: TlsweepClient;
  let logDir: string;
  const workers: ManagedProcess[] = [];
  const metricsUrls: string[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    logDir = mkdtempSync(join(tmpdir(), 'tlsweep-cluster-test-'));
    const env = { TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: `127.0.0.1:${coord.port}`, TLSWEEP_NAK_DELAY_MS: '200', TLSWEEP_METRICS_ADDRESS: '127.0.0.1:0' };
    for (const name of ['w1', 'w2']) {
      const { proc, ready } = await spawnService(name, WORKER_MAIN, { ...env, TLSWEEP_WORKER_ID: name }, createWriteStream(join(logDir, `${name}.log`)), 'worker.ready');
      workers.push(proc);
      metricsUrls.push(String(ready.metrics));
    }
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
  });

  afterAll(async () => {
    client?.close();
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await coord?.stop();
    await nats?.stop();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('runs a sweep to the end and the leaderboard is right', async () => {
    const sweep = await client.submit(SPEC);
    expect(sweep.counts!.total).toBe(8);
    const events: string[] = [];
    for await (const e of client.watch(sweep.sweepId)) events.push(e.type);
    expect(events).toContain('epoch');
    expect(events.at(-1)).toBe('sweep_finished');

    const final = await client.get(sweep.sweepId);
    const errors = (await client.query({ sweepId: sweep.sweepId, status: 'failed' })).rows.map((t) => `${t.trialId}: ${t.error}`).join('\n');
    expect(final.status).toBe('completed');
    expect(final.counts, errors).toMatchObject({ total: 8, completed: 4, failed: 4 });
    expect(final.reason).toBe('4 of 8 trials failed');

    const lb = await client.query({ sweepId: sweep.sweepId, limit: 100 });
    expect(lb.total).toBe(8);
    const done = lb.rows.filter((t) => t.status === 'completed');
    const failed = lb.rows.filter((t) => t.status === 'failed');
    // Completed trials first, by validation accuracy, best first.
    expect(lb.rows.slice(0, 4).map((t) => t.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    for (let i = 1; i < 4; i++) expect(done[i - 1].valAccuracy).toBeGreaterThanOrEqual(done[i].valAccuracy);
    for (const t of done) {
      expect(t.dataset).toBe('synthetic:3x30');
      expect(t.epochs).toBe(t.unfreeze > 0 ? 5 : 3);
      expect(t.history.map((h) => h.phase)).toEqual(t.unfreeze > 0 ? ['head', 'head', 'head', 'finetune', 'finetune'] : ['head', 'head', 'head']);
      expect(t.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(t.testAccuracy).toBeLessThanOrEqual(1);
      expect(['w1', 'w2']).toContain(t.worker);
      expect(t.backend).toMatch(/^(tensorflow|wasm|cpu)$/);
      expect(t.pretrained).toBe(false);
    }
    // The leaderboard's numbers are the trials' own: final validation accuracy is the last reported epoch's.
    for (const t of done) expect(t.valAccuracy).toBeCloseTo(t.history.at(-1)!.valAccuracy, 6);
    for (const t of failed) {
      expect(t.dataset).toBe('folder:/nonexistent/tlsweep-images');
      expect(t.error).toMatch(/DATASET/);
      expect(t.error).toContain('/nonexistent/tlsweep-images');
      // Unrecoverable: terminated on the first delivery, not retried.
      expect(t.attempt).toBe(1);
    }
    // Prometheus: the workers' counters add up to the leaderboard; the coordinator counts trials by state.
    const scrapes = await Promise.all(metricsUrls.map(async (u) => (await fetch(u)).text()));
    // Sum of a metric's samples over both workers whose labels include `label` (label order is prom-client's).
    const sum = (name: string, label: string) => scrapes.reduce((n, text) => {
      for (const m of text.matchAll(/^(\w+)\{([^}]*)\} (\S+)$/gm)) if (m[1] === name && m[2].split(',').includes(label)) n += Number(m[3]);
      return n;
    }, 0);
    expect(sum('tlsweep_worker_trials_total', 'outcome="completed"')).toBe(4);
    expect(sum('tlsweep_worker_trials_total', 'outcome="failed"')).toBe(4);
    expect(sum('tlsweep_worker_epoch_duration_seconds_count', 'phase="finetune"')).toBe(4);
    expect(sum('tlsweep_worker_images_per_second', 'phase="head"')).toBeGreaterThan(0);
    expect(scrapes.join('\n')).toMatch(/^tlsweep_worker_feature_cache_misses\{/m);
    const coordMetrics = await (await fetch(`${coord.dashboard!.url}metrics`)).text();
    expect(coordMetrics).toMatch(/^tlsweep_trials\{state="completed"\} 4$/m);
    expect(coordMetrics).toMatch(/^tlsweep_trials\{state="failed"\} 4$/m);

    // Group-by: count, best, mean and std per unfreeze depth.
    const grouped = await client.query({ sweepId: sweep.sweepId, groupBy: 'unfreeze', status: 'completed' });
    expect(grouped.groups.map((g) => g.key).sort()).toEqual(['0', '6']);
    for (const g of grouped.groups) expect(g.count).toBe(2);

    // The CLI prints the same leaderboard as JSON rows.
    // Async: the coordinator runs in this process and must keep answering while the CLI runs.
    const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'services/sweeper/src/main.ts', 'leaderboard', '--sweep', sweep.sweepId, '--json', '--coordinator', `127.0.0.1:${coord.port}`], { encoding: 'utf8' });
    const rows = JSON.parse(cli.stdout) as LeaderboardRow[];
    expect(rows).toHaveLength(8);
    for (const k of ['trialId', 'sweepId', 'backbone', 'unfreeze', 'learningRate', 'dropout', 'status', 'valAccuracy', 'testAccuracy', 'epochs', 'seconds']) expect(rows[0]).toHaveProperty(k);
    expect(rows[0].trialId).toBe(lb.rows[0].trialId);
  });

  it('a worker drained with SIGTERM hands its trial back and another worker finishes it', async () => {
    const sweep = await client.submit(`
name: drain-test
dataset: { kind: synthetic, classes: 3, perClass: 30, seed: 2 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.2]
headEpochs: 60
batchSize: 8
headUnits: 8
maxParallel: 1
`);
    let interrupted = '';
    for await (const e of client.watch(sweep.sweepId)) {
      // Drain w1 as soon as it is a few epochs into the trial; w2 must take it over.
      if (!interrupted && e.type === 'epoch' && e.epoch!.epoch === 3) {
        const holder = workers.find((w) => w.name === e.trial!.worker)!;
        interrupted = e.trial!.worker;
        holder.child.kill('SIGTERM');
      }
    }
    expect(interrupted).not.toBe('');
    const [t] = (await client.query({ sweepId: sweep.sweepId })).rows;
    expect(t.status).toBe('completed');
    expect(t.attempt).toBe(2);
    expect(t.worker).not.toBe(interrupted);
    expect(t.epochs).toBe(60);
    // The drained worker exits cleanly on its own.
    const drained = workers.find((w) => w.name === interrupted)!;
    expect(await drained.exited).toBe(0);
  });

  it('a coordinator restarted mid-sweep carries on: workers retry their reports, every trial completes once', async () => {
    const sweep = await client.submit(`
name: restart-test
dataset: { kind: synthetic, classes: 3, perClass: 20, seed: 3 }
backbones: [tiny_cnn]
unfreeze: [0]
learningRates: [0.01, 0.02, 0.03, 0.04]
dropouts: [0.1]
headEpochs: 25
batchSize: 8
headUnits: 8
maxParallel: 2
`);
    // Wait until trials are running, then take the coordinator down and bring it back on the same port.
    const watch = client.watch(sweep.sweepId);
    for await (const e of watch) if (e.type === 'epoch' && e.epoch!.epoch >= 3) break;
    await watch.return(undefined);
    const port = coord.port;
    await coord.stop();
    await new Promise((r) => setTimeout(r, 1500)); // workers' reports fail and back off meanwhile
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: `127.0.0.1:${port}`, ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client.close();
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    await waitFor(async () => (await client.get(sweep.sweepId)).finishedAtMs > 0, 60_000, 'sweep finished after restart');
    const final = await client.get(sweep.sweepId);
    expect(final.status).toBe('completed');
    expect(final.counts).toMatchObject({ total: 4, completed: 4 });
    const rows = (await client.query({ sweepId: sweep.sweepId })).rows;
    for (const t of rows) {
      expect(t.epochs).toBe(25);
      expect(t.history.map((h) => h.epoch)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    }
  });

  it('a restarted coordinator rebuilds the finished sweep from JetStream', async () => {
    const before = await client.list();
    await coord.stop();
    coord = await startCoordinator({ natsUrl: nats.url, grpcAddress: '127.0.0.1:0', ackWaitMs: 30_000, maxDeliver: 3, replicas: 1 });
    client.close();
    client = new TlsweepClient(`127.0.0.1:${coord.port}`);
    await client.ready();
    const after = await waitFor(async () => {
      const l = await client.list();
      return l.length === before.length ? l : null;
    }, 5000, 'sweeps rebuilt');
    expect(after.map((s) => [s.sweepId, s.status, s.counts])).toEqual(before.map((s) => [s.sweepId, s.status, s.counts]));
  });
});
