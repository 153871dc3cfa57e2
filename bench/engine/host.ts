/**
 * Host figures of `bench:engine`: wasm (and cpu) run one thread per process
 * in Node, so a worker host runs one training process per core (README
 * "Workers"); PyTorch uses `--threads` cores in one process. The host figure
 * runs `processes` copies of the tfjs measurement at once, each figure's
 * timed steps started together (a barrier over stdin/stdout), and adds up
 * their images/s: the host's throughput on the same cores torch gets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EngineBenchConfig } from './config.js';
import { round, type Throughput } from './throughput.js';
import type { TfjsSizeFigures } from './tfjs-figures.js';

const CHILD = fileURLToPath(new URL('./host-child.ts', import.meta.url));
/** Timed figures per size, in measureTfjsSize's order: every child passes this many barriers. */
const FIGURES = ['forward', 'fineTuneCachedCut', 'fineTunePrefixPerStep', 'fineTuneWholeModel'] as const;

export interface HostFigures {
  processes: number;
  /** Per figure: the sum of the processes' images/s (an error if any process failed it). */
  figures: Record<(typeof FIGURES)[number], Throughput>;
  /** Per figure: each process' own images/s (how evenly the cores were shared). */
  perProcess: Record<(typeof FIGURES)[number], Array<number | null>>;
}

/** The child's flags: everything in `cfg` the figures depend on. */
function childArgs(size: number, cfg: EngineBenchConfig): string[] {
  const args = [String(size), '--batch', String(cfg.batch), '--warmup', String(cfg.warmup), '--steps', String(cfg.steps), '--unfreeze', String(cfg.unfreeze), '--classes', String(cfg.classes), '--no-torch'];
  if (cfg.backend) args.push('--backend', cfg.backend);
  return args;
}

export async function measureHost(size: number, cfg: EngineBenchConfig, processes: number): Promise<HostFigures> {
  const children: ChildProcess[] = [];
  const results: Array<Promise<TfjsSizeFigures>> = [];
  const readyWaiters: Array<Array<() => void>> = [];
  const readyPromises: Array<Array<Promise<void>>> = [];
  for (let p = 0; p < processes; p++) {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...childArgs(size, cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    readyPromises.push(FIGURES.map((_, f) => new Promise<void>((resolve) => ((readyWaiters[p] ??= [])[f] = resolve))));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    results.push(
      new Promise<TfjsSizeFigures>((resolve, reject) => {
        let result: TfjsSizeFigures | null = null;
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const ready = /^ready (\d+)$/.exec(line);
          if (ready) readyWaiters[p][Number(ready[1])]?.();
          else if (line.startsWith('result ')) result = JSON.parse(line.slice(7)) as TfjsSizeFigures;
        });
        child.on('exit', (code) => (result ? resolve(result) : reject(new Error(`host process ${p} exited ${code} without a result: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))));
      }),
    );
  }
  // A child that dies leaves its barriers unreached: fail the whole host figure instead of waiting forever.
  const failed = Promise.race(results.map((r) => r.then(() => new Promise<never>(() => {}))));
  try {
    for (let f = 0; f < FIGURES.length; f++) {
      await Promise.race([Promise.all(readyPromises.map((r) => r[f])), failed]);
      for (const c of children) c.stdin!.write('go\n');
    }
    const all = await Promise.all(results);
    const figures = {} as HostFigures['figures'];
    const perProcess = {} as HostFigures['perProcess'];
    for (const f of FIGURES) {
      const each = all.map((r) => r[f]);
      perProcess[f] = each.map((t) => ('error' in t ? null : t.imagesPerSec));
      const error = each.find((t): t is { error: string } => 'error' in t);
      figures[f] = error
        ? { error: error.error }
        : {
            imagesPerSec: round(each.reduce((s, t) => s + ('error' in t ? 0 : t.imagesPerSec), 0), 2),
            medianMs: round(Math.max(...each.map((t) => ('error' in t ? 0 : t.medianMs))), 1),
            steps: cfg.steps,
          };
    }
    return { processes, figures, perProcess };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  }
}
