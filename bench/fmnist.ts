/**
 * Measurement (not a test): a whole sweep on Fashion-MNIST through a local
 * cluster, as `npm run demo` runs one — NATS, the coordinator and one wasm
 * worker process per core — trained on 10,000 training images and scored on
 * the 10,000 official test images (`dataset.test: official`).
 *
 *   npm run bench:fmnist [-- --spec examples/fmnist-90.yaml] [--workers 2]
 *        [--backend wasm] [--budget-min 30] [--timeout-min 45]
 *
 * The best trial is the one the leaderboard ranks first by *validation*
 * accuracy (never by test accuracy); its test accuracy is the result. The
 * last line is JSON: { bestTrial: {...config, valAccuracy, testAccuracy},
 * testAccuracy, wallSeconds, trials, backend, goal: {testAccuracy: 0.9, met} };
 * `met` needs the accuracy and the wall time within --budget-min. After
 * --timeout-min the sweep is cancelled and the finished trials are reported.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Trial } from '../proto/generated/tlsweep/v1/tlsweep.js';
import { TlsweepClient } from '../services/sweeper/src/client.js';
import { watchSweep } from '../services/sweeper/src/commands/watch.js';
import { startLocalCluster } from '../services/sweeper/src/local-cluster.js';

const GOAL_TEST_ACCURACY = 0.9;

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const specFile = flag('spec', fileURLToPath(new URL('../examples/fmnist-90.yaml', import.meta.url)));
const workers = Number(flag('workers', '2'));
const backend = flag('backend', 'wasm');
const budgetSeconds = Number(flag('budget-min', '30')) * 60;
const timeoutMs = Number(flag('timeout-min', '45')) * 60_000;

const started = Date.now();
const elapsed = () => (Date.now() - started) / 1000;
const log = (line: string) => console.log(`[${elapsed().toFixed(0).padStart(5)}s] ${line}`);

const spec = readFileSync(specFile, 'utf8');
const featureCacheDir = mkdtempSync(join(tmpdir(), 'tlsweep-fmnist-features-'));
log(`starting a local cluster: ${workers} ${backend} workers (one per core), spec ${specFile}, empty feature cache ${featureCacheDir}`);
const cluster = await startLocalCluster({
  workers,
  logDir: '.tlsweep/logs/bench-fmnist',
  env: { TLSWEEP_BACKEND: backend },
  // Trials with the same cut, seed and augmentation reuse one worker's frozen-prefix
  // features; 10,000 training images (× passes) + 11,000 val/test need more than the 512 MB default.
  // A fresh disk tier every run: features a previous run left in ~/.cache would make the wall time a warm one.
  workerEnv: { TLSWEEP_FEATURE_MEMO_MB: flag('feature-memo-mb', '2048'), TLSWEEP_FEATURE_CACHE_DIR: featureCacheDir },
});
const client = new TlsweepClient(cluster.coordinator);
let exitCode = 1;
try {
  await client.ready();
  const sweep = await client.submit(spec);
  log(`submitted sweep ${sweep.sweepId} '${sweep.name}': ${sweep.counts!.total} trials; worker logs in ${cluster.logDir}`);
  const timer = setTimeout(() => {
    log(`timeout after ${timeoutMs / 60_000} min: cancelling the sweep`);
    void client.cancel(sweep.sweepId).catch(() => undefined);
  }, timeoutMs);
  let final;
  try {
    final = await watchSweep(client, sweep.sweepId, log);
  } finally {
    clearTimeout(timer);
  }
  const wallSeconds = elapsed();
  const board = await client.query({ sweepId: sweep.sweepId, status: 'completed', sortBy: 'val_accuracy', limit: 1000 });
  const best: Trial | undefined = board.rows[0];
  const trials = board.total;
  if (!best) {
    log(`no trial completed (sweep ${final.status}${final.reason ? `: ${final.reason}` : ''})`);
    console.log(JSON.stringify({ bestTrial: null, testAccuracy: null, wallSeconds, trials, backend, goal: { testAccuracy: GOAL_TEST_ACCURACY, met: false } }));
  } else {
    const full = await client.getTrial(best.trialId);
    const config = JSON.parse(full.configJson || '{}') as Record<string, unknown>;
    const bestTrial = {
      trialId: best.trialId,
      ...config,
      valAccuracy: best.valAccuracy,
      testAccuracy: best.testAccuracy,
      testImages: full.testMetrics?.count ?? null,
      seconds: best.seconds,
      epochs: best.epochs,
      backend: best.backend,
    };
    const met = best.testAccuracy >= GOAL_TEST_ACCURACY && wallSeconds <= budgetSeconds;
    log(`best by validation: ${best.trialId} val ${(best.valAccuracy * 100).toFixed(2)}% test ${(best.testAccuracy * 100).toFixed(2)}% ` +
      `on ${bestTrial.testImages} test images; sweep ${final.status} in ${wallSeconds.toFixed(0)}s`);
    console.log(JSON.stringify({
      bestTrial,
      testAccuracy: best.testAccuracy,
      wallSeconds: Math.round(wallSeconds),
      trials,
      backend: best.backend,
      goal: { testAccuracy: GOAL_TEST_ACCURACY, wallSeconds: budgetSeconds, met },
    }));
    exitCode = 0;
  }
} finally {
  client.close();
  await cluster.stop();
  rmSync(featureCacheDir, { recursive: true, force: true });
}
process.exit(exitCode);
