/**
 * `npm run bench:sweep` — measurement, not a test. One run, same machine,
 * same data (a stratified Fashion-MNIST subset), same grid (MobileNetV2 ×
 * unfreeze depths × learning rates × dropouts), same epochs, three ways:
 *
 *   1. naive   — tlsweep with every sharing knob off (sharing-knobs.ts):
 *                each trial alone, no early stopping;
 *   2. tlsweep — every knob on (feature reuse, ASHA, …);
 *   3. torch   — the user's alternative: PyTorch + Optuna GridSampler, each
 *                trial alone, same pretrained weights, data and splits.
 *
 * (1) and (2) run through the real system: a fresh local cluster (private
 * nats-server, coordinator, one worker per core) each, the spec submitted and
 * read back over gRPC. The last stdout line is JSON: wall seconds and best
 * test accuracy of each, the ratios, the goals and the configuration.
 * Full trial lists go to `<work>/results.json`. See SWEEP_BENCH_USAGE for flags.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { exportMobileNetV2Weights } from './export-mobilenet-v2-weights.js';
import { selectBackend, type BackendName } from '../services/worker/src/engine/index.js';
import { loadSweepBenchEnv } from './sweep/config.js';
import { exportBenchDataset, type ExportedDataset } from './sweep/export-dataset.js';
import { BenchOptionError, gridSize, parseSweepBenchArgs, type SweepBenchOptions } from './sweep/options.js';
import { pythonMissing } from './sweep/run-python.js';
import { runTlsweepSweep, type TlsweepRun } from './sweep/run-tlsweep.js';
import { runTorchSweep, type TorchRun } from './sweep/run-torch.js';
import { knobSettings, type KnobSettings } from './sweep/sharing-knobs.js';
import { benchSweepSpec } from './sweep/sweep-spec.js';
import { round, summarize, trainableByDepth, type ContenderSummary } from './sweep/trial-result.js';

/** Goals from the issue: tlsweep ≥ 10× naive and ≥ 3× PyTorch in wall time, best test accuracy within 0.5 points of naive. */
const GOALS = { speedupVsNaive: 10, speedupVsTorch: 3, accuracyPointsVsNaive: 0.5 } as const;

const log = (line: string) => console.error(line);

let opts: SweepBenchOptions;
try {
  opts = parseSweepBenchArgs(process.argv.slice(2));
} catch (err) {
  if (err instanceof BenchOptionError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}
const env = loadSweepBenchEnv();
// A busy machine skews every timing (PyTorch's thread pool most): the output says how busy it was.
const loadAtStart = loadavg()[0];
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const work = join(process.cwd(), '.tlsweep', 'bench-sweep', stamp);
mkdirSync(work, { recursive: true });
const dirs = { weights: join(work, 'weights'), data: join(work, 'data'), check: join(work, 'port-check'), work };
const wants = (v: SweepBenchOptions['only'][number]) => opts.only.includes(v);

log(`bench:sweep${opts.quick ? ' --quick (a sanity run: its timings are not results)' : ''}: ${gridSize(opts)} trials × {${opts.only.join(', ')}}, ` +
  `Fashion-MNIST ${opts.perClass}/class at ${opts.imageSize}px, ${opts.headEpochs}+${opts.fineTuneEpochs} epochs; work folder ${work}`);

if (wants('torch')) {
  const missing = pythonMissing(opts.python, ['torch', 'torchvision', 'optuna']);
  if (missing) {
    console.error(`${missing}\nThe PyTorch baseline needs: apt-get install python3-torch python3-torchvision python3-optuna (or --only naive,tlsweep)`);
    process.exit(2);
  }
}

const backend = await selectBackend((env.backend || undefined) as BackendName | undefined);
let dataset: ExportedDataset | null = null;
if (wants('torch')) {
  const t0 = performance.now();
  await exportMobileNetV2Weights(dirs.weights, opts.imageSize);
  dataset = await exportBenchDataset(dirs.data, dirs.check, opts);
  log(`exported weights and data for PyTorch (${backend.name} backend; train/val/test ${dataset.sizes.train}/${dataset.sizes.val}/${dataset.sizes.test}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
}

const knobs: Partial<Record<'naive' | 'tlsweep', KnobSettings>> = {};
const runs: { naive?: TlsweepRun; tlsweep?: TlsweepRun; torch?: TorchRun } = {};
for (const run of ['naive', 'tlsweep'] as const) {
  if (!wants(run)) continue;
  const k = knobSettings(run, opts);
  knobs[run] = k;
  runs[run] = await runTlsweepSweep({
    label: run,
    spec: benchSweepSpec(`bench-sweep-${run}`, opts, k.spec),
    workers: opts.workers,
    env: env.clusterEnv,
    workerEnv: k.workerEnv,
    workDir: join(work, run),
    log,
  });
  log(`[${run}] ${runs[run]!.status} in ${runs[run]!.wallSeconds.toFixed(1)}s`);
}
if (wants('torch')) {
  runs.torch = await runTorchSweep(opts, dirs, log);
  log(`[torch] ${runs.torch.trials.length} trials in ${runs.torch.wallSeconds.toFixed(1)}s`);
}

const summary: Partial<Record<'naive' | 'tlsweep' | 'torch', ContenderSummary & Record<string, unknown>>> = {};
for (const run of ['naive', 'tlsweep'] as const) {
  const r = runs[run];
  if (r) summary[run] = { ...summarize(r), sweepStatus: r.status, clusterStartSeconds: round(r.clusterStartSeconds, 1), knobs: knobs[run]!.listed };
}
if (runs.torch) {
  const pc = runs.torch.portCheck;
  summary.torch = { ...summarize(runs.torch), portCheck: { ok: pc.ok, images: pc.images, maxAbsDiff: pc.maxAbsDiff, tolerance: pc.tolerance }, ...runs.torch.versions };
}
const ratio = (a?: { wallSeconds: number }, b?: { wallSeconds: number }) => (a && b && b.wallSeconds > 0 ? round(a.wallSeconds / b.wallSeconds, 2) : null);
const ratios = { naiveOverTlsweep: ratio(summary.naive, summary.tlsweep), torchOverTlsweep: ratio(summary.torch, summary.tlsweep) };
const accuracyDiffPoints = summary.naive?.bestTestAccuracy != null && summary.tlsweep?.bestTestAccuracy != null
  ? round((summary.naive.bestTestAccuracy - summary.tlsweep.bestTestAccuracy) * 100, 2) : null;
const goals = {
  speedupVsNaive: { goal: GOALS.speedupVsNaive, measured: ratios.naiveOverTlsweep, met: ratios.naiveOverTlsweep === null ? null : ratios.naiveOverTlsweep >= GOALS.speedupVsNaive },
  speedupVsTorch: { goal: GOALS.speedupVsTorch, measured: ratios.torchOverTlsweep, met: ratios.torchOverTlsweep === null ? null : ratios.torchOverTlsweep >= GOALS.speedupVsTorch },
  // Points the full run's best test accuracy is below naive's (negative: above).
  accuracyVsNaive: { goalPoints: GOALS.accuracyPointsVsNaive, naiveMinusTlsweepPoints: accuracyDiffPoints, met: accuracyDiffPoints === null ? null : accuracyDiffPoints <= GOALS.accuracyPointsVsNaive },
};
// Same trainable layers: trainable parameters per unfreeze depth, as each side counts them.
const trainable = { naive: runs.naive && trainableByDepth(runs.naive), torch: runs.torch && trainableByDepth(runs.torch) };
const trainableMatch = trainable.naive && trainable.torch
  ? Object.keys(trainable.torch).every((d) => trainable.naive![d] === undefined || trainable.naive![d] === trainable.torch![d]) : null;
const config = {
  quick: opts.quick,
  dataset: { kind: 'fashion-mnist', perClass: opts.perClass, split: '70/15/15 stratified', seed: opts.seed, sizes: dataset?.sizes },
  backbone: 'mobilenet_v2 (nsfwjs@4.3.0 Keras weights)',
  imageSize: opts.imageSize,
  grid: { unfreeze: opts.unfreeze, learningRates: opts.learningRates, dropouts: opts.dropouts, trials: gridSize(opts) },
  headEpochs: opts.headEpochs,
  fineTuneEpochs: opts.fineTuneEpochs,
  fineTuneLrFactor: opts.fineTuneLrFactor,
  batchSize: opts.batchSize,
  headUnits: opts.headUnits,
  workers: opts.workers,
  torchThreads: opts.torchThreads,
  benchBackend: backend.name,
  trainableParams: { ...trainable, match: trainableMatch },
  machine: { cpus: cpus().length, loadAverage1m: { start: round(loadAtStart, 2), end: round(loadavg()[0], 2) } },
};
writeFileSync(join(work, 'results.json'), JSON.stringify({ config, summary, ratios, goals, runs }, null, 1));
if (!opts.keep) for (const d of [dirs.weights, dirs.data, dirs.check]) rmSync(d, { recursive: true, force: true });
log(`full results: ${join(work, 'results.json')}`);
console.log(JSON.stringify({ bench: 'sweep', ...summary, ratios, goals, config }));
