import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Throughput } from './throughput.js';
import { HEAD } from './tfjs-figures.js';

const SCRIPT = fileURLToPath(new URL('../engine_torch.py', import.meta.url));

export interface TorchRunOptions {
  python: string;
  threads: number;
  sizes: number[];
  batch: number;
  warmup: number;
  steps: number;
  classes: number;
  /** Keras layer names, as the tfjs side resolved them. */
  firstTrainable: string;
  cut: string;
}

export interface TorchSizeFigures {
  trainableParams: number;
  forward: Throughput;
  fineTuneCachedCut: Throughput;
  fineTuneWholeModel: Throughput;
}

/** What bench/engine_torch.py prints as its last line. */
export interface TorchFigures {
  torch: string;
  torchvision: string;
  threads: number;
  weights: string;
  sizes: Record<string, TorchSizeFigures>;
  [key: string]: unknown;
}

/**
 * Runs bench/engine_torch.py with the same batch, steps, head and trainable
 * layers, streams its progress (stderr) through, and parses its JSON line.
 */
export function runTorchFigures(opts: TorchRunOptions): Promise<TorchFigures> {
  const args = [
    SCRIPT,
    '--sizes', opts.sizes.join(','),
    '--batch', String(opts.batch),
    '--warmup', String(opts.warmup),
    '--steps', String(opts.steps),
    '--classes', String(opts.classes),
    '--threads', String(opts.threads),
    '--first-trainable', opts.firstTrainable,
    '--cut', opts.cut,
    '--head-units', String(HEAD.units),
    '--dropout', String(HEAD.dropout),
    '--lr', String(HEAD.learningRate),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(opts.python, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', (err) => reject(new Error(`cannot run ${opts.python}: ${err.message}`, { cause: err })));
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`${opts.python} ${SCRIPT} exited with ${code}`));
      try {
        resolve(JSON.parse(last) as TorchFigures);
      } catch (err) {
        reject(new Error(`engine_torch.py printed no JSON line; last line: '${last.slice(0, 200)}'`, { cause: err }));
      }
    });
  });
}
