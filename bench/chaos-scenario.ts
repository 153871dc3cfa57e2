/**
 * The chaos scenario shared by `tests/chaos.test.ts` (40 trials, in CI) and
 * `npm run bench:chaos` (400 trials): a real nats-server, a coordinator
 * process and worker processes training tiny_cnn on synthetic images, while
 * the scenario SIGKILLs workers mid-trial (starting a replacement each
 * time), SIGKILLs and restarts the coordinator on the same port and
 * restarts nats-server on the same store. It then reads every trial back
 * and counts what the faults cost.
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Trial } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { COORDINATOR_MAIN, spawnService, WORKER_MAIN, type ManagedProcess } from '../services/sweeper/src/local-cluster.js';
import { startNatsServer, type RunningNatsServer } from '../services/sweeper/src/nats-server.js';

export interface ChaosOptions {
  /** Trials in the sweep (random search over learning rate and dropout). @default 40 */
  trials?: number;
  /** Worker processes running at once. @default 3 */
  workers?: number;
  /** Workers SIGKILLed mid-trial (each replaced by a fresh one). @default 3 */
  workerKills?: number;
  /** Coordinator SIGKILLs (restarted on the same port). @default 2 */
  coordinatorRestarts?: number;
  /** nats-server restarts on the same store. @default 1 */
  natsRestarts?: number;
  /** Trial lease without heartbeat: how soon a killed worker's trial is redelivered. @default 3000 ms */
  ackWaitMs?: number;
  /** Epochs per phase (every trial fine-tunes: unfreeze 4). @default 4, 2 */
  headEpochs?: number;
  fineTuneEpochs?: number;
  /** Images per class of the 3-class synthetic dataset (bigger = slower epochs). @default 40 */
  perClass?: number;
  /** Give up after this long. @default 600000 ms */
  timeoutMs?: number;
  /** Progress lines. @default ignore */
  log?: (line: string) => void;
}

/** What the faults cost; `resultsLost` must be 0. */
export interface ChaosFigures {
  trials: number;
  faultsInjected: { workerKills: number; coordinatorRestarts: number; natsRestarts: number; total: number };
  /** Trials delivered more than once (killed workers' trials, ones in flight across restarts). */
  trialsRedelivered: number;
  /** Trials that resumed from an epoch checkpoint. */
  trialsResumed: number;
  /** Epochs later attempts took from checkpoints instead of training again. */
  epochsSavedByCheckpoints: number;
  /** Epochs trained again (done by an attempt that died after its last checkpoint). */
  epochsRetrained: number;
  /** Trials not finished with a result, plus trials missing from the leaderboard. */
  resultsLost: number;
  /** Epoch numbers stored twice in some trial's history (must be 0). */
  duplicatedEpochs: number;
  leaderboardRows: number;
  sweepStatus: string;
  seconds: number;
}

/** A trial the scenario interrupted: the worker killed while it held the trial, after this many reported epochs. */
export interface KilledTrial {
  trialId: string;
  worker: string;
  epochsReported: number;
}

export interface ChaosResult {
  figures: ChaosFigures;
  trials: Trial[];
  killed: KilledTrial[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the scenario; everything it started is stopped and its temp folders removed, also on failure. */
export async function runChaosScenario(opts: ChaosOptions = {}): Promise<ChaosResult> {
  const o = {
    trials: 40, workers: 3, workerKills: 3, coordinatorRestarts: 2, natsRestarts: 1, ackWaitMs: 3000,
    headEpochs: 4, fineTuneEpochs: 2, perClass: 40, timeoutMs: 600_000, log: () => {}, ...opts,
  };
  const started = performance.now();
  const deadline = Date.now() + o.timeoutMs;
  const dir = mkdtempSync(join(tmpdir(), 'tlsweep-chaos-'));
  const procs = new Set<ManagedProcess>();
  let nats: RunningNatsServer | null = null;
  let client = null as TlsweepClient | null;
  let coordinator: ManagedProcess | null = null;
  let port = 0;
  let workerSeq = 0;
  const workers = new Map<string, ManagedProcess>();

  const spawn = async (name: string, main: string, env: NodeJS.ProcessEnv, ready: string) => {
    const { proc, ready: rec } = await spawnService(name, main, env, createWriteStream(join(dir, `${name}.log`), { flags: 'a' }), ready, {
      timeoutMs: 120_000,
      onSpawn: (p) => {
        procs.add(p);
        void p.exited.then(() => procs.delete(p));
      },
    });
    return { proc, rec };
  };
  const startCoordinator = async () => {
    const { proc, rec } = await spawn('coordinator', COORDINATOR_MAIN, {
      TLSWEEP_NATS_URL: nats!.url, TLSWEEP_GRPC_ADDRESS: `127.0.0.1:${port}`, TLSWEEP_HTTP_ADDRESS: 'off',
      TLSWEEP_ACK_WAIT_MS: String(o.ackWaitMs), TLSWEEP_MAX_DELIVER: '20',
    }, 'coordinator.ready');
    coordinator = proc;
    port = Number(rec.port);
    client?.close();
    client = new TlsweepClient(`127.0.0.1:${port}`);
    await client.ready(30_000);
  };
  const startWorker = async () => {
    const name = `w${++workerSeq}`;
    const { proc } = await spawn(name, WORKER_MAIN, {
      TLSWEEP_NATS_URL: nats!.url, TLSWEEP_COORDINATOR: `127.0.0.1:${port}`, TLSWEEP_WORKER_ID: name,
      TLSWEEP_HEARTBEAT_MS: String(Math.max(200, Math.floor(o.ackWaitMs / 4))), TLSWEEP_NAK_DELAY_MS: '200',
      TLSWEEP_REPORT_RETRY_MS: '120000', TLSWEEP_FEATURE_CACHE_DIR: join(dir, `cache-${name}`), TLSWEEP_FEATURE_STORE_MB: '0',
      TLSWEEP_DRAIN_GRACE_MS: '5000',
    }, 'worker.ready');
    workers.set(name, proc);
  };
  /** Retries a call across coordinator restarts. */
  const call = async <T>(fn: (c: TlsweepClient) => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await fn(client!);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  };
  const planned = o.headEpochs + o.fineTuneEpochs;

  try {
    nats = await startNatsServer({ storeDir: join(dir, 'nats') });
    await startCoordinator();
    await Promise.all(Array.from({ length: o.workers }, () => startWorker()));
    const sweep = await call((c) => c.submit(`
name: chaos
dataset: { kind: synthetic, classes: 3, perClass: ${o.perClass}, seed: 7 }
backbones: [tiny_cnn]
imageSize: 16
unfreeze: [4]
learningRates: { min: 0.001, max: 0.03, log: true }
dropouts: { min: 0.0, max: 0.5 }
search: random
maxTrials: ${o.trials}
headEpochs: ${o.headEpochs}
fineTuneEpochs: ${o.fineTuneEpochs}
batchSize: 16
headUnits: 16
seed: 11
maxParallel: ${o.workers * 2}
# Fused units of up to 3 trials (maxParallel / 2): a killed worker takes a whole unit down, and every
# member resumes fused from its own epoch checkpoint (see README: Failure handling).
fuse: { maxTrials: 3 }
`));
    o.log(`sweep ${sweep.sweepId}: ${o.trials} trials, ${o.workers} workers`);

    // The faults, spread over the sweep: a kill, a coordinator restart, a kill, nats, a restart, a kill ...
    const plan: Array<'worker' | 'coordinator' | 'nats'> = [];
    const queues = { worker: o.workerKills, coordinator: o.coordinatorRestarts, nats: o.natsRestarts };
    while (queues.worker + queues.coordinator + queues.nats > 0) {
      for (const k of ['worker', 'coordinator', 'worker', 'nats'] as const) if (queues[k] > 0) (queues[k]--, plan.push(k));
    }
    const done = { workerKills: 0, coordinatorRestarts: 0, natsRestarts: 0 };
    const killed: KilledTrial[] = [];
    const finishedCount = async () => {
      const s = await call((c) => c.get(sweep.sweepId));
      const c = s.counts!;
      return { finished: s.finishedAtMs > 0, terminal: c.completed + c.failed + c.stopped + c.cancelled + c.diverged };
    };
    for (const [i, fault] of plan.entries()) {
      // Fault i happens once about (i + 1) / (faults + 1) of the trials are done.
      const due = Math.floor(((i + 1) * o.trials) / (plan.length + 2));
      while ((await finishedCount()).terminal < due) await sleep(100);
      if (fault === 'worker') {
        // A worker holding a trial with a checkpoint behind it (>= 2 epochs reported) and epochs ahead.
        for (;;) {
          const running = (await call((c) => c.query({ sweepId: sweep.sweepId, status: 'running', limit: 100 }))).rows;
          // A trial not interrupted before, so every kill shows up as its own redelivered trial.
          const victim = running.find((t) => t.epochs >= 2 && t.epochs < planned - 1 && workers.has(t.worker) && !killed.some((k) => k.trialId === t.trialId));
          if (victim) {
            workers.get(victim.worker)!.child.kill('SIGKILL');
            workers.delete(victim.worker);
            killed.push({ trialId: victim.trialId, worker: victim.worker, epochsReported: victim.epochs });
            o.log(`SIGKILL worker ${victim.worker} holding ${victim.trialId} after ${victim.epochs} epochs`);
            break;
          }
          if (Date.now() > deadline) throw new Error('no running trial to interrupt before the deadline');
          await sleep(30);
        }
        done.workerKills++;
        await startWorker();
      } else if (fault === 'coordinator') {
        coordinator!.child.kill('SIGKILL');
        await coordinator!.exited;
        o.log('SIGKILL coordinator; restarting on the same port');
        await startCoordinator();
        done.coordinatorRestarts++;
      } else {
        o.log('restarting nats-server on the same store');
        await nats.restart();
        done.natsRestarts++;
      }
    }
    while (!(await finishedCount()).finished) {
      if (Date.now() > deadline) throw new Error(`the chaos sweep did not finish within ${o.timeoutMs} ms; logs in ${dir}`);
      await sleep(200);
    }
    const final = await call((c) => c.get(sweep.sweepId));
    const trials: Trial[] = [];
    for (let pageToken = ''; ;) {
      const page = await call((c) => c.query({ sweepId: sweep.sweepId, limit: 1000, pageToken }));
      trials.push(...page.rows);
      if (!page.nextPageToken) break;
      pageToken = page.nextPageToken;
    }
    const duplicatedEpochs = trials.reduce((n, t) => n + t.history.length - new Set(t.history.map((e) => e.epoch)).size, 0);
    const withResult = trials.filter((t) => t.status === 'completed' || t.status === 'stopped');
    const figures: ChaosFigures = {
      trials: o.trials,
      faultsInjected: { ...done, total: done.workerKills + done.coordinatorRestarts + done.natsRestarts },
      trialsRedelivered: trials.filter((t) => t.attempt > 1).length,
      trialsResumed: trials.filter((t) => t.resumedEpochs > 0).length,
      epochsSavedByCheckpoints: trials.reduce((n, t) => n + t.resumedEpochs, 0),
      epochsRetrained: trials.reduce((n, t) => n + t.retrainedEpochs, 0),
      resultsLost: o.trials - withResult.length,
      duplicatedEpochs,
      leaderboardRows: trials.length,
      sweepStatus: final.status,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    };
    return { figures, trials, killed };
  } finally {
    client?.close();
    // SIGKILL: nothing of the cluster needs to shut down cleanly any more.
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all([...procs].map((p) => p.exited));
    await nats?.stop();
    if (!process.env.TLSWEEP_KEEP_CHAOS_LOGS) rmSync(dir, { recursive: true, force: true });
  }
}
