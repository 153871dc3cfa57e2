import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SweepBenchOptions } from './options.js';
import type { PortCheckResult } from './port-check.js';
import { runPython } from './run-python.js';
import type { BenchTrial, ContenderRun } from './trial-result.js';

export const TORCH_SWEEP_SCRIPT = fileURLToPath(new URL('./torch_optuna_sweep.py', import.meta.url));

export interface TorchRun extends ContenderRun {
  portCheck: PortCheckResult;
  versions: { torch: string; torchvision: string; optuna: string; threads: number };
}

interface TorchOutput {
  torch: string;
  torchvision: string;
  optuna: string;
  threads: number;
  portCheck: PortCheckResult;
  wallSeconds: number;
  error?: string;
  trials: Array<Omit<BenchTrial, 'status'>>;
}

/**
 * The PyTorch + Optuna grid (torch_optuna_sweep.py) on the exported data and
 * weights, after the port check on `checkDir` passes. Wall time is the
 * script's own, from loading data and weights to the last trial (python and
 * torch start-up excluded, as the tlsweep runs exclude starting the cluster).
 */
export async function runTorchSweep(o: SweepBenchOptions, dirs: { weights: string; data: string; check: string; work: string }, log: (line: string) => void): Promise<TorchRun> {
  const config = {
    grid: { unfreeze: o.unfreeze, learningRates: o.learningRates, dropouts: o.dropouts },
    headEpochs: o.headEpochs,
    fineTuneEpochs: o.fineTuneEpochs,
    fineTuneLrFactor: o.fineTuneLrFactor,
    batchSize: o.batchSize,
    headUnits: o.headUnits,
    seed: o.seed,
    threads: o.torchThreads,
  };
  const configFile = join(dirs.work, 'torch-config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 1));
  const run = await runPython(o.python, TORCH_SWEEP_SCRIPT, ['--weights', dirs.weights, '--data', dirs.data, '--config', configFile, '--port-check', dirs.check], (line) => log(`[torch] ${line}`));
  const out = run.result as TorchOutput | null;
  if (run.code !== 0 || !out || out.error) {
    const why = out?.error ? `${out.error}: ${JSON.stringify(out.portCheck)}` : run.stderr.trim().split('\n').slice(-8).join('\n');
    throw new Error(`PyTorch + Optuna sweep failed (exit ${run.code}): ${why}`);
  }
  return {
    wallSeconds: out.wallSeconds,
    trials: out.trials.map((t) => ({ ...t, status: 'completed' })),
    portCheck: out.portCheck,
    versions: { torch: out.torch, torchvision: out.torchvision, optuna: out.optuna, threads: out.threads },
  };
}
