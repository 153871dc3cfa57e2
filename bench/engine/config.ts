import type { BackendName } from '../../services/worker/src/engine/index.js';
import { BACKEND_ORDER } from '../../services/worker/src/engine/index.js';

/** What `npm run bench:engine` measures and how long. Flags override env vars, env vars override defaults. */
export interface EngineBenchConfig {
  /** Square input sizes (px), run smallest first. Flag `--sizes 96,224`, env `BENCH_ENGINE_SIZES`. @default [96, 224] */
  sizes: number[];
  /** Images per step, both frameworks, every figure. `--batch`, `BENCH_ENGINE_BATCH`. @default 16 (4 with --quick) */
  batch: number;
  /** Untimed steps before each figure (operator setup, allocations). `--warmup`, `BENCH_ENGINE_WARMUP`. @default 3 (1 with --quick) */
  warmup: number;
  /** Timed steps per figure; the figure is batch / median step time. `--steps`, `BENCH_ENGINE_STEPS`. @default 20 (2 with --quick) */
  steps: number;
  /**
   * Backbone layers fine-tuned, Keras `base_model.layers[-N:]` as the engine
   * counts them. `--unfreeze`, `BENCH_ENGINE_UNFREEZE`.
   * @default 20 (block_15 + block_16 + Conv_1/Conv_1_bn/out_relu; cached cut at block_14_add)
   */
  unfreeze: number;
  /** Classes of the head. `--classes`, `BENCH_ENGINE_CLASSES`. @default 5 */
  classes: number;
  /** tfjs backend. `--backend`, `BENCH_ENGINE_BACKEND`. @default the engine's selectBackend choice (tensorflow → wasm → cpu) */
  backend?: BackendName;
  /** Interpreter for bench/engine_torch.py. `--python`, `BENCH_ENGINE_PYTHON`. @default /usr/bin/python3 (Debian python3-torch) */
  python: string;
  /** torch.set_num_threads. `--threads`, `BENCH_ENGINE_TORCH_THREADS`. @default 2 */
  torchThreads: number;
  /**
   * tfjs processes run at once for the host figures (host.ts), on the
   * single-threaded backends (wasm, cpu): a worker host runs one training
   * process per core, torch uses `torchThreads` cores in one. 0 or 1: no host
   * figures. `--host-processes`, `BENCH_ENGINE_HOST_PROCESSES`.
   * @default torchThreads (the cores the torch side uses)
   */
  hostProcesses: number;
  /** Skip the PyTorch side (`--no-torch`, `BENCH_ENGINE_TORCH=0`). @default true */
  torch: boolean;
  /** `--quick` / `BENCH_ENGINE_QUICK=1`: small batch and few steps, a sanity run. @default false */
  quick: boolean;
}

/** A bad flag or env value; the message names it and what is allowed. */
export class EngineBenchConfigError extends Error {
  readonly code = 'BENCH_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'EngineBenchConfigError';
  }
}

const VALUE_FLAGS = ['sizes', 'batch', 'warmup', 'steps', 'unfreeze', 'classes', 'backend', 'python', 'threads', 'host-processes'] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];
const ENV: Record<ValueFlag, string> = {
  sizes: 'BENCH_ENGINE_SIZES',
  batch: 'BENCH_ENGINE_BATCH',
  warmup: 'BENCH_ENGINE_WARMUP',
  steps: 'BENCH_ENGINE_STEPS',
  unfreeze: 'BENCH_ENGINE_UNFREEZE',
  classes: 'BENCH_ENGINE_CLASSES',
  backend: 'BENCH_ENGINE_BACKEND',
  python: 'BENCH_ENGINE_PYTHON',
  threads: 'BENCH_ENGINE_TORCH_THREADS',
  'host-processes': 'BENCH_ENGINE_HOST_PROCESSES',
};

function integer(source: string, text: string, min: number): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min) throw new EngineBenchConfigError(`${source} must be an integer >= ${min}; got '${text}'`);
  return v;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes)$/i.test(v);

/**
 * Reads the benchmark's settings from command-line flags (`argv` without the
 * node and script paths) and the environment.
 * @throws EngineBenchConfigError for an unknown flag or a bad value
 */
export function loadEngineBenchConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): EngineBenchConfig {
  const flags = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    if (name === 'quick' || name === 'no-torch') switches.add(name);
    else if ((VALUE_FLAGS as readonly string[]).includes(name) && i + 1 < argv.length) flags.set(name, argv[++i]);
    else {
      const allowed = [...VALUE_FLAGS.map((f) => `--${f} <value>`), '--quick', '--no-torch'].join(', ');
      throw new EngineBenchConfigError(`unknown or incomplete argument '${argv[i]}'; allowed: ${allowed}`);
    }
  }
  /** The flag's value, else the env var's, with the source for error messages. */
  const read = (f: ValueFlag): { text: string; source: string } | null => {
    if (flags.has(f)) return { text: flags.get(f)!, source: `--${f}` };
    const e = env[ENV[f]];
    return e !== undefined && e !== '' ? { text: e, source: ENV[f] } : null;
  };
  const int = (f: ValueFlag, fallback: number, min: number) => {
    const v = read(f);
    return v ? integer(v.source, v.text, min) : fallback;
  };

  const quick = switches.has('quick') || truthy(env.BENCH_ENGINE_QUICK);
  const sizesRaw = read('sizes');
  // Smallest first: a figure that exhausts wasm memory (largest size) then comes last.
  const sizes = sizesRaw
    ? [...new Set(sizesRaw.text.split(',').map((s) => integer(`${sizesRaw.source} (each size)`, s.trim(), 32)))].sort((a, b) => a - b)
    : [96, 224];
  const backendRaw = read('backend');
  if (backendRaw && !(BACKEND_ORDER as readonly string[]).includes(backendRaw.text)) {
    throw new EngineBenchConfigError(`${backendRaw.source} must be one of ${BACKEND_ORDER.join(', ')}; got '${backendRaw.text}'`);
  }
  const torchEnv = env.BENCH_ENGINE_TORCH;
  const torchThreads = int('threads', 2, 1);
  return {
    sizes,
    batch: int('batch', quick ? 4 : 16, 1),
    warmup: int('warmup', quick ? 1 : 3, 0),
    steps: int('steps', quick ? 2 : 20, 1),
    unfreeze: int('unfreeze', 20, 1),
    classes: int('classes', 5, 2),
    backend: backendRaw ? (backendRaw.text as BackendName) : undefined,
    python: read('python')?.text ?? '/usr/bin/python3',
    torchThreads,
    hostProcesses: int('host-processes', torchThreads, 0),
    torch: !switches.has('no-torch') && !(torchEnv !== undefined && /^(0|false|no)$/i.test(torchEnv)),
    quick,
  };
}
