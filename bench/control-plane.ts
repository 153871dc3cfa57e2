/**
 * Measurement (not a test): the control plane alone. A private nats-server,
 * a coordinator process and 2 worker processes (real `tsx` processes, each
 * with its own NATS connection and gRPC channel) run a sweep of trials on
 * the `noop` backbone, which trains nothing and reports synthetic epochs
 * (see services/worker/src/runner/noop-runner.ts); then a load phase
 * measures report ingestion with many concurrent reporters; then
 * leaderboard queries run against all stored trials.
 *
 *   npm run bench:control -- [--trials 10000] [--stored 100000] [--workers 2]
 *        [--epochs 3] [--parallel 16] [--ingest-trials 64] [--ingest-epochs 200]
 *        [--queries 2000] [--quick] [--keep-logs] [--no-fuse]
 *
 * --quick: 1,000 trials, 10,000 stored, smaller load and query phases.
 * --no-fuse: the sweep phase runs every trial as a work unit of its own
 * (the per-trial overhead is then one trial's round trips, not a unit's share).
 * Progress goes to stdout; the last line is JSON.
 *
 * Definitions (also printed in the JSON):
 * - per-trial overhead: for each trial, the worker's slot time (from the
 *   pull that got the trial to its ack, as trial-consumer.ts logs it as
 *   slotMs) minus the runner's own time (runTrial's wall time less the time
 *   spent in the epoch hook, i.e. in ReportEpoch calls). So it is the time a
 *   worker spends on the control plane per trial: pull, TrialStarted, E
 *   ReportEpoch, TrialFinished (which includes the coordinator queueing the
 *   next trial), ack.
 * - reports ingested per second: reports (TrialStarted, ReportEpoch,
 *   TrialFinished), each answered only after it is stored in JetStream (the
 *   trial's KV record, or for an epoch the epoch log), divided by wall time.
 *   The worker's Reporter sends reports made while another call is in
 *   flight together in one batched `Report` call. Reported twice: during the
 *   sweep (2 workers) and in the load phase (ingest-trials reporters at
 *   once, the coordinator's capacity).
 * - leaderboard query latency: a LeaderboardService.Query gRPC round trip
 *   (50 rows) from this process, over a mix of query shapes, after one
 *   warm-up query per shape (whose time is reported as coldMs).
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { EpochMetrics, TrialFinishedRequest, type LeaderboardQuery } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { TRIAL_STREAM, WORKER_CONSUMER, type TrialTaskV1 } from '../services/coordinator/src/index.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { COORDINATOR_MAIN, WORKER_MAIN, spawnService, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { startNatsServer } from '../services/sweeper/src/nats-server.js';
import { Reporter } from '../services/worker/src/runner/reporter.js';
import { noopSweepSpec, seedStoredTrials } from './control-plane-seed.js';

const quick = process.argv.includes('--quick');
function arg(name: string, full: number, small: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : quick ? small : full;
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name}: must be a non-negative integer; got ${process.argv[i + 1]}`);
  return v;
}
const TRIALS = arg('trials', 10_000, 1000);
const STORED = arg('stored', 100_000, 10_000);
const WORKERS = arg('workers', 2, 2);
const EPOCHS = arg('epochs', 3, 3);
const PARALLEL = arg('parallel', 16, 16);
const INGEST_TRIALS = arg('ingest-trials', 64, 32);
const INGEST_EPOCHS = arg('ingest-epochs', 200, 50);
const QUERIES = arg('queries', 2000, 300);
const keepLogs = process.argv.includes('--keep-logs');
const FUSE = !process.argv.includes('--no-fuse');

const say = (s: string) => console.log(`[bench:control] ${s}`);
const logDir = mkdtempSync(join(tmpdir(), 'tlsweep-bench-control-'));
const nats = await startNatsServer();
const procs: ManagedProcess[] = [];
const killAll = () => procs.forEach((p) => p.child.exitCode === null && p.child.kill('SIGKILL'));
process.once('exit', killAll);

try {
  say(`nats-server at ${nats.url}, store ${nats.storeDir}, logs ${logDir}`);
  const nc = await connect({ servers: nats.url });

  // 1. Stored trials, so the queries run at the stored size (the sweep and load phases add theirs).
  const seedCount = Math.max(0, STORED - TRIALS - INGEST_TRIALS);
  let t0 = performance.now();
  let lastSay = 0;
  await seedStoredTrials(nc, seedCount, EPOCHS, (n) => {
    if (performance.now() - lastSay > 2000) (say(`seeded ${n}/${seedCount} stored trials`), (lastSay = performance.now()));
  });
  const seedS = (performance.now() - t0) / 1000;
  say(`seeded ${seedCount} stored trials in ${seedS.toFixed(1)} s`);

  // 2. Coordinator process: rebuilds the stored trials from KV.
  t0 = performance.now();
  const coordLog = createWriteStream(join(logDir, 'coordinator.log'));
  const { proc: coord, ready } = await spawnService('coordinator', COORDINATOR_MAIN, {
    TLSWEEP_NATS_URL: nats.url, TLSWEEP_GRPC_ADDRESS: '127.0.0.1:0', TLSWEEP_HTTP_ADDRESS: 'off', TLSWEEP_ALLOW_NOOP_BACKBONE: '1',
  }, coordLog, 'coordinator.ready', { timeoutMs: 300_000, onSpawn: (p) => procs.push(p) });
  const rebuildS = (performance.now() - t0) / 1000;
  const address = `127.0.0.1:${Number(ready.port)}`;
  say(`coordinator at ${address}, ready in ${rebuildS.toFixed(1)} s (rebuilt ${seedCount} trials)`);
  const client = new TlsweepClient(address);
  await client.ready();

  // 3. Worker processes; their unit.done log lines carry each queue message's timings (a message is a work unit of one or more trials).
  const done: Array<{ overheadMs: number; slotMs: number; runnerMs: number }> = [];
  const workers: ManagedProcess[] = [];
  await Promise.all(Array.from({ length: WORKERS }, async (_, k) => {
    const name = `worker-${k + 1}`;
    const { proc } = await spawnService(name, WORKER_MAIN, {
      TLSWEEP_NATS_URL: nats.url, TLSWEEP_COORDINATOR: address, TLSWEEP_WORKER_ID: name, TLSWEEP_BACKEND: 'cpu', TLSWEEP_FEATURE_MEMO_MB: '0',
    }, createWriteStream(join(logDir, `${name}.log`)), 'worker.ready', { timeoutMs: 120_000, onSpawn: (p) => procs.push(p) });
    onLogLines(proc, (rec) => {
      if (rec.msg !== 'unit.done' || rec.action !== 'ack') return;
      // Per trial: the unit's slot and runner time shared equally by its trials.
      const n = Math.max(1, Number(rec.trials));
      for (let i = 0; i < n; i++) done.push({ overheadMs: Number(rec.overheadMs), slotMs: Number(rec.slotMs) / n, runnerMs: Number(rec.runnerMs) / n });
    });
    workers.push(proc);
  }));
  say(`${WORKERS} worker processes ready`);

  // 4. The sweep.
  t0 = performance.now();
  const sweep = await client.submit(noopSweepSpec({ name: 'bench-control', trials: TRIALS, epochs: EPOCHS, parallel: PARALLEL, fuse: FUSE }));
  const submitMs = performance.now() - t0;
  say(`submitted sweep ${sweep.sweepId}: ${TRIALS} trials × ${EPOCHS} epochs, maxParallel ${PARALLEL} (submit took ${submitMs.toFixed(0)} ms)`);
  for (;;) {
    const s = await client.get(sweep.sweepId);
    const elapsed = (performance.now() - t0) / 1000;
    const finished = (s.counts?.completed ?? 0) + (s.counts?.stopped ?? 0) + (s.counts?.failed ?? 0);
    if (s.finishedAtMs > 0) break;
    say(`sweep: ${finished}/${TRIALS} finished after ${elapsed.toFixed(1)} s (${(finished / elapsed).toFixed(0)} trials/s)`);
    await new Promise((r) => setTimeout(r, 2000));
  }
  const sweepS = (performance.now() - t0) / 1000;
  const final = await client.get(sweep.sweepId);
  if (final.status !== 'completed' || final.counts?.completed !== TRIALS) throw new Error(`sweep ended ${final.status} with counts ${JSON.stringify(final.counts)}`);
  // unit.done lines may trail the ack by a moment.
  for (let i = 0; i < 50 && done.length < TRIALS; i++) await new Promise((r) => setTimeout(r, 100));
  const sweepReports = TRIALS * (EPOCHS + 2);
  say(`sweep done in ${sweepS.toFixed(1)} s: ${(TRIALS / sweepS).toFixed(0)} trials/s, ${(sweepReports / sweepS).toFixed(0)} reports/s; ${done.length} trial timings`);
  await Promise.all(workers.map((w) => terminate(w)));

  // 5. Load phase: many reporters at once against the coordinator.
  const ingest = await ingestPhase(nc, client, address);
  say(`ingest: ${ingest.reports} reports from ${INGEST_TRIALS} concurrent trials in ${ingest.seconds.toFixed(2)} s = ${ingest.perSec.toFixed(0)} reports/s`);

  // 6. Leaderboard queries over everything stored.
  const q = await queryPhase(client, sweep.sweepId);
  say(`queries at ${q.total} trials: p50 ${q.p50.toFixed(2)} ms, p99 ${q.p99.toFixed(2)} ms; group_by p50 ${q.groupP50.toFixed(2)} ms`);

  client.close();
  await terminate(coord);
  await nc.close();

  const overhead = done.map((d) => d.overheadMs);
  const result = {
    bench: 'control',
    machine: 'shared' as string,
    trials: TRIALS,
    epochs: EPOCHS,
    workers: WORKERS,
    workerMode: 'processes',
    maxParallel: PARALLEL,
    // Fused: the planner packs up to maxParallel / 2 noop trials per work unit, and the worker's
    // Reporter sends a unit's concurrent reports in one batched Report call.
    fused: FUSE,
    storedTrials: q.total,
    perTrialOverheadMs: {
      median: round(percentile(overhead, 0.5)),
      p99: round(percentile(overhead, 0.99)),
      mean: round(mean(overhead)),
      runnerMeanMs: round(mean(done.map((d) => d.runnerMs))),
      // Cross-check from wall time alone: worker-seconds per trial minus the runner's time.
      fromWallMs: round((sweepS * 1000 * WORKERS) / TRIALS - mean(done.map((d) => d.runnerMs))),
      definition: "per trial: worker slot time (pull → ack, slotMs in the worker's unit.done log) minus the runner's own time (runTrial wall time less time in ReportEpoch calls), shared equally by the trials of a work unit",
    },
    sweepSeconds: round(sweepS),
    trialsPerSec: round(TRIALS / sweepS),
    sweepReportsPerSec: round(sweepReports / sweepS),
    reportsPerSec: round(ingest.perSec),
    ingest: { concurrentTrials: INGEST_TRIALS, epochs: INGEST_EPOCHS, reports: ingest.reports, seconds: round(ingest.seconds), definition: 'TrialStarted + ReportEpoch + TrialFinished reports answered (each after it is stored in JetStream: KV record or epoch log) per wall second; the Reporter batches concurrent reports into Report calls' },
    leaderboardQueryMs: { p50: round(q.p50), p99: round(q.p99), max: round(q.max), coldMs: q.coldMs.map(round), queries: q.count, definition: 'LeaderboardService.Query gRPC round trip, 50 rows, mixed shapes, after one warm-up per shape' },
    groupByQueryMs: { p50: round(q.groupP50), p99: round(q.groupP99) },
    coordinatorRebuildSeconds: round(rebuildS),
    goals: {
      overheadMedianMs5: percentile(overhead, 0.5) <= 5,
      reportsPerSec5000: ingest.perSec >= 5000,
      queryP99Ms10: q.p99 <= 10,
    },
  };
  console.log(JSON.stringify(result));
} finally {
  killAll();
  process.off('exit', killAll);
  await nats.stop();
  if (!keepLogs) rmSync(logDir, { recursive: true, force: true });
}


/**
 * INGEST_TRIALS trials taken straight from the queue by this process, each
 * reporting like a worker (TrialStarted, INGEST_EPOCHS × ReportEpoch one after
 * another, TrialFinished), all trials at once over 4 gRPC channels.
 */
async function ingestPhase(nc: import('@nats-io/transport-node').NatsConnection, client: TlsweepClient, address: string) {
  // One trial per message: this phase plays the workers itself and reads v1 messages.
  const s = await client.submit(noopSweepSpec({ name: 'bench-control-ingest', trials: INGEST_TRIALS, epochs: INGEST_EPOCHS, parallel: INGEST_TRIALS, fuse: false }));
  const consumer = await jetstream(nc).consumers.get(TRIAL_STREAM, WORKER_CONSUMER);
  const msgs = [];
  while (msgs.length < INGEST_TRIALS) {
    const m = await consumer.next({ expires: 5000 });
    if (!m) throw new Error(`ingest: only ${msgs.length} of ${INGEST_TRIALS} trials were queued`);
    msgs.push(m);
  }
  const reporters = Array.from({ length: 4 }, () => new Reporter({ address }));
  const t0 = performance.now();
  let reports = 0;
  await Promise.all(msgs.map(async (m, k) => {
    const cfg = m.json<TrialTaskV1>().config;
    const r = reporters[k % reporters.length];
    const attempt = m.info.deliveryCount;
    await r.trialStarted({ trialId: cfg.trialId, attempt, worker: 'ingest', backend: 'noop', pretrained: false, weightsSource: '', resumedEpochs: 0 });
    for (let e = 1; e <= INGEST_EPOCHS; e++) {
      const a = Math.round(((k + e) % 1000) / 1000 * 1000) / 1000;
      const d = await r.reportEpoch({ trialId: cfg.trialId, attempt, metrics: EpochMetrics.fromPartial({ phase: 'head', epoch: e, loss: 1 - a, accuracy: a, valLoss: 1 - a, valAccuracy: a, seconds: 0 }) });
      if (d.action !== 'CONTINUE') throw new Error(`ingest: ${cfg.trialId} told to ${d.action}: ${d.reason}`);
    }
    const fin = await r.trialFinished(TrialFinishedRequest.fromPartial({
      trialId: cfg.trialId, attempt, valAccuracy: 0.5, valLoss: 0.5, testAccuracy: 0.5, testLoss: 0.5, epochs: INGEST_EPOCHS, seconds: 0, stopped: false,
      totalParams: 0, trainableParams: 0, cutLayer: '', pretrained: false, weightsSource: 'noop', backend: 'noop',
    }));
    if (!fin.accepted) throw new Error(`ingest: ${cfg.trialId} refused: ${fin.reason}`);
    m.ack();
    reports += INGEST_EPOCHS + 2;
  }));
  const seconds = (performance.now() - t0) / 1000;
  reporters.forEach((r) => r.close());
  const fin = await client.get(s.sweepId);
  if (fin.counts?.completed !== INGEST_TRIALS) throw new Error(`ingest sweep counts ${JSON.stringify(fin.counts)}`);
  return { reports, seconds, perSec: reports / seconds };
}

/** Round-robin over query shapes; one warm-up per shape first. */
async function queryPhase(client: TlsweepClient, sweepId: string) {
  const shapes: Array<Partial<LeaderboardQuery>> = [
    { sortBy: 'val_accuracy' },
    { sortBy: 'val_loss' },
    { sweepId, sortBy: 'val_accuracy' },
    { status: 'completed', sortBy: 'test_accuracy' },
    { sortBy: 'val_accuracy', pageToken: '100' },
    { backbone: 'noop', sortBy: 'seconds', descending: true },
    { sweepId, status: 'completed', sortBy: 'learning_rate', ascending: true },
  ];
  const coldMs: number[] = [];
  let total = 0;
  for (const s of shapes) {
    const t = performance.now();
    const r = await client.query(s);
    coldMs.push(performance.now() - t);
    if (!s.sweepId && !s.status) total = Math.max(total, r.total);
  }
  const times: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    const t = performance.now();
    const r = await client.query(shapes[i % shapes.length]);
    times.push(performance.now() - t);
    if (r.rows.length === 0) throw new Error(`query ${JSON.stringify(shapes[i % shapes.length])} returned no rows`);
  }
  const group: number[] = [];
  for (let i = 0; i < Math.max(10, QUERIES / 20); i++) {
    const t = performance.now();
    await client.query({ groupBy: 'status', sortBy: 'val_accuracy' });
    group.push(performance.now() - t);
  }
  return { total, count: times.length, p50: percentile(times, 0.5), p99: percentile(times, 0.99), max: Math.max(...times), coldMs, groupP50: percentile(group, 0.5), groupP99: percentile(group, 0.99) };
}

function onLogLines(p: ManagedProcess, fn: (rec: Record<string, unknown>) => void): void {
  let buf = '';
  p.child.stderr!.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.includes('"unit.done"')) continue;
      try {
        fn(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
}

async function terminate(p: ManagedProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.exited;
  clearTimeout(t);
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}
function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}
function round(x: number): number {
  return Math.round(x * 100) / 100;
}
