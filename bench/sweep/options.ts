/** The three contenders of `npm run bench:sweep`. */
export const VARIANTS = ['naive', 'tlsweep', 'torch'] as const;
export type Variant = (typeof VARIANTS)[number];

/** Everything one bench run holds fixed across the three contenders. */
export interface SweepBenchOptions {
  /** Fashion-MNIST images per class (10 classes), split 70/15/15 stratified. @default 200 */
  perClass: number;
  /** Square input size of MobileNetV2 (Fashion-MNIST's 28 px are resized to it). @default 96 */
  imageSize: number;
  /** Head-only epochs (phase 1). @default 5 */
  headEpochs: number;
  /** Fine-tune epochs (phase 2, trials with unfreeze > 0). @default 3 */
  fineTuneEpochs: number;
  /** Fine-tune learning rate = lr × factor. @default 0.1 */
  fineTuneLrFactor: number;
  /** @default 32 */
  batchSize: number;
  /** Units of the head's hidden Dense layer. @default 128 */
  headUnits: number;
  /** Split, initialisation, shuffling. @default 7 */
  seed: number;
  /** Keras `base_model.layers[-N:]` depths: 0 = head only; 11 = block_16 + Conv_1; 20 = also block_15. @default [0, 11, 20] */
  unfreeze: number[];
  /** @default [0.001, 0.0003, 0.0001] */
  learningRates: number[];
  /** @default [0.2, 0.5] */
  dropouts: number[];
  /** Worker processes of the local cluster (one per core). @default 2 */
  workers: number;
  /** torch.set_num_threads for the PyTorch baseline (the same cores as the workers). @default 2 */
  torchThreads: number;
  /** ASHA for the full tlsweep run: first rung (epoch) and reduction factor. @default { gracePeriod: 1, reductionFactor: 3 } */
  asha: { gracePeriod: number; reductionFactor: number };
  /** Interpreter with torch, torchvision and optuna. @default '/usr/bin/python3' */
  python: string;
  /** Which contenders run. @default all three */
  only: Variant[];
  /** Keep the exported data and weights in the work folder. @default false */
  keep: boolean;
  /** A tiny configuration that checks the pipeline end to end in a few minutes. @default false */
  quick: boolean;
  /** Extra worker environment per tlsweep run (KEY=VALUE), for sharing knobs not in sharing-knobs.ts yet. @default {} */
  extraEnv: { naive: Record<string, string>; tlsweep: Record<string, string> };
  /** Extra spec fields per tlsweep run (a JSON object merged into the spec). @default {} */
  extraSpec: { naive: Record<string, unknown>; tlsweep: Record<string, unknown> };
}

export const SWEEP_BENCH_DEFAULTS: SweepBenchOptions = {
  perClass: 200,
  imageSize: 96,
  headEpochs: 5,
  fineTuneEpochs: 3,
  fineTuneLrFactor: 0.1,
  batchSize: 32,
  headUnits: 128,
  seed: 7,
  unfreeze: [0, 11, 20],
  learningRates: [0.001, 0.0003, 0.0001],
  dropouts: [0.2, 0.5],
  workers: 2,
  torchThreads: 2,
  asha: { gracePeriod: 1, reductionFactor: 3 },
  python: '/usr/bin/python3',
  only: [...VARIANTS],
  keep: false,
  quick: false,
  extraEnv: { naive: {}, tlsweep: {} },
  extraSpec: { naive: {}, tlsweep: {} },
};

/** `--quick`: tiny data, two epochs, four trials; flags given explicitly still win. */
export const QUICK_OVERRIDES: Partial<SweepBenchOptions> = {
  perClass: 20,
  imageSize: 48,
  headEpochs: 2,
  fineTuneEpochs: 1,
  unfreeze: [0, 11],
  learningRates: [0.001],
  dropouts: [0.2, 0.5],
};

export const SWEEP_BENCH_USAGE = `usage: npm run bench:sweep -- [--quick] [--per-class N] [--image-size N]
  [--head-epochs N] [--finetune-epochs N] [--finetune-lr-factor X] [--batch-size N] [--head-units N] [--seed N]
  [--unfreeze 0,11,20] [--lrs 0.001,0.0003,0.0001] [--dropouts 0.2,0.5] [--workers N] [--torch-threads N]
  [--asha-grace N] [--asha-rf X] [--only naive,tlsweep,torch] [--python PATH] [--keep]
  [--naive-env K=V]... [--tlsweep-env K=V]... [--naive-spec JSON] [--tlsweep-spec JSON]`;

export class BenchOptionError extends Error {
  readonly code = 'BENCH_BAD_OPTION';
  constructor(message: string) {
    super(`${message}\n${SWEEP_BENCH_USAGE}`);
    this.name = 'BenchOptionError';
  }
}

function int(flag: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new BenchOptionError(`${flag}: expected an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

function num(flag: string, raw: string, ok: (n: number) => boolean, allowed: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new BenchOptionError(`${flag}: expected ${allowed}, got ${JSON.stringify(raw)}`);
  return n;
}

function list<T>(flag: string, raw: string, each: (s: string) => T): T[] {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new BenchOptionError(`${flag}: expected a comma-separated list, got ${JSON.stringify(raw)}`);
  return parts.map(each);
}

function keyValue(flag: string, raw: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new BenchOptionError(`${flag}: expected KEY=VALUE, got ${JSON.stringify(raw)}`);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

function jsonObject(flag: string, raw: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new BenchOptionError(`${flag}: expected a JSON object, got ${JSON.stringify(raw)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BenchOptionError(`${flag}: expected a JSON object, got ${raw}`);
  return v as Record<string, unknown>;
}

/** Parses bench flags (see {@link SWEEP_BENCH_USAGE}); unknown flags and bad values throw {@link BenchOptionError}. */
export function parseSweepBenchArgs(argv: readonly string[]): SweepBenchOptions {
  const o: Partial<SweepBenchOptions> = {};
  const extraEnv: SweepBenchOptions['extraEnv'] = { naive: {}, tlsweep: {} };
  const extraSpec: SweepBenchOptions['extraSpec'] = { naive: {}, tlsweep: {} };
  const asha: Partial<SweepBenchOptions['asha']> = {};
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--quick') { quick = true; continue; }
    if (flag === '--keep') { o.keep = true; continue; }
    const value = argv[i + 1];
    if (value === undefined || !flag.startsWith('--')) throw new BenchOptionError(`${flag}: unknown argument or missing value`);
    i++;
    switch (flag) {
      case '--per-class': o.perClass = int(flag, value, 1); break;
      case '--image-size': o.imageSize = int(flag, value, 32); break;
      case '--head-epochs': o.headEpochs = int(flag, value, 1); break;
      case '--finetune-epochs': o.fineTuneEpochs = int(flag, value, 0); break;
      case '--finetune-lr-factor': o.fineTuneLrFactor = num(flag, value, (n) => n > 0, 'a number > 0'); break;
      case '--batch-size': o.batchSize = int(flag, value, 1); break;
      case '--head-units': o.headUnits = int(flag, value, 1); break;
      case '--seed': o.seed = int(flag, value, 0); break;
      case '--unfreeze': o.unfreeze = list(flag, value, (s) => int(flag, s, 0)); break;
      case '--lrs': o.learningRates = list(flag, value, (s) => num(flag, s, (n) => n > 0, 'numbers > 0')); break;
      case '--dropouts': o.dropouts = list(flag, value, (s) => num(flag, s, (n) => n >= 0 && n < 1, 'numbers in [0, 1)')); break;
      case '--workers': o.workers = int(flag, value, 1); break;
      case '--torch-threads': o.torchThreads = int(flag, value, 1); break;
      case '--asha-grace': asha.gracePeriod = int(flag, value, 1); break;
      case '--asha-rf': asha.reductionFactor = num(flag, value, (n) => n >= 1.5 && n <= 100, 'a number in [1.5, 100]'); break;
      case '--python': o.python = value; break;
      case '--only': o.only = list(flag, value, (s) => {
        if (!(VARIANTS as readonly string[]).includes(s)) throw new BenchOptionError(`${flag}: expected some of ${VARIANTS.join(', ')}, got ${JSON.stringify(s)}`);
        return s as Variant;
      }); break;
      case '--naive-env': case '--tlsweep-env': {
        const [k, v] = keyValue(flag, value);
        extraEnv[flag === '--naive-env' ? 'naive' : 'tlsweep'][k] = v;
        break;
      }
      case '--naive-spec': case '--tlsweep-spec':
        Object.assign(extraSpec[flag === '--naive-spec' ? 'naive' : 'tlsweep'], jsonObject(flag, value));
        break;
      default:
        throw new BenchOptionError(`${flag}: unknown flag`);
    }
  }
  const merged: SweepBenchOptions = { ...SWEEP_BENCH_DEFAULTS, ...(quick ? QUICK_OVERRIDES : {}), ...o, quick, extraEnv, extraSpec };
  merged.asha = { ...SWEEP_BENCH_DEFAULTS.asha, ...asha };
  if (merged.unfreeze.some((u) => u >= 155)) throw new BenchOptionError(`--unfreeze: MobileNetV2 has 155 layers (input included); expected values < 155, got ${merged.unfreeze.join(',')}`);
  if (merged.perClass < 7) throw new BenchOptionError(`--per-class: expected at least 7 (so val and test get an image of every class), got ${merged.perClass}`);
  return merged;
}

/** Trials in the grid. */
export function gridSize(o: SweepBenchOptions): number {
  return o.unfreeze.length * o.learningRates.length * o.dropouts.length;
}
