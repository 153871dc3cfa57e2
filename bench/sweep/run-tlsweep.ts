import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Trial } from '../../proto/generated/tlsweep/v1/tlsweep.js';
import { TlsweepClient } from '../../services/sweeper/src/client.js';
import { watchSweep } from '../../services/sweeper/src/commands/watch.js';
import { startLocalCluster } from '../../services/sweeper/src/local-cluster.js';
import type { BenchTrial, ContenderRun } from './trial-result.js';

export interface TlsweepRunOptions {
  /** 'naive' or 'tlsweep': names logs and progress lines. */
  label: string;
  spec: Record<string, unknown>;
  workers: number;
  /** Every process (TLSWEEP_BACKEND etc.). */
  env: NodeJS.ProcessEnv;
  /** Workers only: the run's sharing knobs. */
  workerEnv: Record<string, string>;
  /** Holds this run's logs and its workers' HOME (so caches under ~ start empty). */
  workDir: string;
  log: (line: string) => void;
}

export interface TlsweepRun extends ContenderRun {
  sweepId: string;
  status: string;
  clusterStartSeconds: number;
  logDir: string;
}

function benchTrial(t: Trial): BenchTrial {
  return {
    unfreeze: t.unfreeze,
    learningRate: t.learningRate,
    dropout: t.dropout,
    status: t.status,
    valAccuracy: t.valAccuracy,
    valLoss: t.valLoss,
    testAccuracy: t.testAccuracy,
    epochs: t.epochs,
    seconds: t.seconds,
    trainableParams: t.trainableParams,
    ...(t.phaseSeconds ? { phaseSeconds: { ...t.phaseSeconds } } : {}),
  };
}

/**
 * One sweep through the real system, as `npm run demo` runs it: a fresh local
 * cluster (private nats-server with a temp store, so the NATS Object Store
 * starts empty; coordinator; `workers` worker processes), the spec submitted
 * and followed over gRPC, the trials read back from the leaderboard, the
 * cluster stopped. Wall time runs from submit to the sweep's end: starting
 * the cluster is not part of a sweep.
 */
export async function runTlsweepSweep(o: TlsweepRunOptions): Promise<TlsweepRun> {
  const logDir = join(o.workDir, 'logs');
  const home = join(o.workDir, 'home');
  mkdirSync(home, { recursive: true });
  const t0 = performance.now();
  // A fresh HOME / XDG_CACHE_HOME per run: a worker cache that defaults to ~/.cache cannot carry results from one run to the next.
  const cluster = await startLocalCluster({
    workers: o.workers,
    env: o.env,
    workerEnv: { HOME: home, XDG_CACHE_HOME: join(home, '.cache'), ...o.workerEnv },
    logDir,
  });
  const client = new TlsweepClient(cluster.coordinator);
  try {
    await client.ready(30_000);
    const clusterStartSeconds = (performance.now() - t0) / 1000;
    const started = performance.now();
    const sweep = await client.submit(JSON.stringify(o.spec));
    o.log(`[${o.label}] sweep ${sweep.sweepId}: ${sweep.counts!.total} trials on ${o.workers} workers (cluster up in ${clusterStartSeconds.toFixed(1)}s, logs ${logDir})`);
    const done = await watchSweep(client, sweep.sweepId, (line) => {
      // Trial ends and the sweep's end; per-epoch lines would drown the three runs' summaries.
      if (/^[✔✖]|^sweep /.test(line)) o.log(`[${o.label}] ${line}`);
    });
    const wallSeconds = (performance.now() - started) / 1000;
    const rows = (await client.query({ sweepId: sweep.sweepId, limit: 1000 })).rows;
    return { sweepId: sweep.sweepId, status: done.status, wallSeconds, clusterStartSeconds, logDir, trials: rows.map(benchTrial) };
  } finally {
    client.close();
    await cluster.stop();
  }
}
