/**
 * Measurement (not a test): MobileNetV2 throughput in tfjs (the engine's own
 * pieces, on the backend selectBackend picks) against PyTorch (torchvision,
 * 2 threads) in one run — the same architecture up to `out_relu`, the same
 * head, trainable layers, batch and step counts:
 *
 * - forward: frozen features as trials compute them (tfjs: foldedInference
 *   + global average pool; torch: eval mode, no autograd);
 * - fineTuneCachedCut: what a trial's phase 2 runs per batch: the layers
 *   after the clean cut below the unfrozen ones + head, on cached cut
 *   activations (tfjs: cutForUnfreeze, tail via tail-model.ts,
 *   enforceBatchNormSemantics, createHead, trainOnBatch);
 * - fineTuneWholeModel: input → whole backbone → head, gradients only into
 *   the unfrozen layers (apples to apples with a plain torch fine-tune).
 *
 * BatchNorm runs in inference mode everywhere (Keras fine-tuning semantics).
 * Inputs are random: throughput does not depend on pixel values. tfjs uses
 * nsfwjs' pretrained weights, torch random init (nothing is downloaded).
 *
 *   npm run bench:engine -- [--quick] [--sizes 96,224] [--batch 16] [--warmup 3]
 *        [--steps 20] [--unfreeze 20] [--classes 5] [--backend wasm|cpu|tensorflow]
 *        [--python /usr/bin/python3] [--threads 2] [--host-processes 2] [--no-torch]
 *
 * On single-threaded backends (wasm, cpu) the tfjs figures are also taken
 * as a host's: `--host-processes` (default: torch's thread count) processes
 * time each figure at once and their images/s are added (bench/engine/host.ts).
 *
 * Env vars BENCH_ENGINE_* set the same (see bench/engine/config.ts). Last
 * stdout line: JSON with every figure and torch/tfjs ratios (how many times
 * faster torch is; goals: forward ≤ 2, fine-tuning ≤ 4).
 */
import { selectBackend } from '../services/worker/src/engine/index.js';
import { EngineBenchConfigError, loadEngineBenchConfig, type EngineBenchConfig } from './engine/config.js';
import { measureHost, type HostFigures } from './engine/host.js';
import { HEAD, measureTfjsSize, type TfjsSizeFigures } from './engine/tfjs-figures.js';
import { ratio } from './engine/throughput.js';
import { runTorchFigures, type TorchFigures } from './engine/torch-figures.js';

/** Each tfjs figure and the torch figure doing the same work. */
const COUNTERPART = {
  forward: 'forward',
  fineTuneCachedCut: 'fineTuneCachedCut',
  fineTunePrefixPerStep: 'fineTuneWholeModel',
  fineTuneWholeModel: 'fineTuneWholeModel',
} as const;
type Figure = keyof typeof COUNTERPART;
const FIGURES = Object.keys(COUNTERPART) as Figure[];
const GOAL = { forward: 2, fineTune: 4 } as const;

let cfg: EngineBenchConfig;
try {
  cfg = loadEngineBenchConfig(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof EngineBenchConfigError)) throw err;
  console.error(`bench:engine: ${err.message}`);
  process.exit(2);
}
const backend = await selectBackend(cfg.backend);
console.log(`tfjs backend: ${backend.name}; ${JSON.stringify(cfg)}`);

const tfjs: Record<string, TfjsSizeFigures> = {};
for (const size of cfg.sizes) {
  tfjs[size] = await measureTfjsSize(size, cfg);
  console.log(`tfjs ${size}px: ${JSON.stringify(Object.fromEntries(FIGURES.map((f) => [f, tfjs[size][f]])))}`);
}
const plan = tfjs[cfg.sizes[0]];

// Single-threaded backends: the host runs one process per core (host.ts).
const hostMode = cfg.hostProcesses > 1 && (backend.name === 'wasm' || backend.name === 'cpu');
const host: Record<string, HostFigures | { error: string }> = {};
if (hostMode) {
  for (const size of cfg.sizes) {
    host[size] = await measureHost(size, cfg, cfg.hostProcesses).catch((err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }));
    console.log(`tfjs ${size}px, ${cfg.hostProcesses} processes at once: ${JSON.stringify(host[size])}`);
  }
}

let torch: TorchFigures | { error: string } | null = null;
if (cfg.torch) {
  torch = await runTorchFigures({
    python: cfg.python,
    threads: cfg.torchThreads,
    sizes: cfg.sizes,
    batch: cfg.batch,
    warmup: cfg.warmup,
    steps: cfg.steps,
    classes: cfg.classes,
    firstTrainable: plan.firstTrainable,
    cut: plan.cut,
  }).catch((err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }));
}
const torchSizes = torch && !('error' in torch) ? torch.sizes : null;

type Ratios = Record<string, Record<Figure, number | null>>;
type Goals = Record<string, Record<Figure, boolean | null>>;
/** torch ÷ tfjs per size and figure, and whether each is within its goal. */
function compare(figuresOf: (size: number) => Partial<Record<Figure, TfjsSizeFigures[Figure]>> | null): { ratios: Ratios; goals: Goals } {
  const ratios: Ratios = {};
  const goals: Goals = {};
  for (const size of cfg.sizes) {
    const t = torchSizes?.[size];
    const mine = figuresOf(size);
    ratios[size] = Object.fromEntries(FIGURES.map((f) => [f, ratio(t?.[COUNTERPART[f]], mine?.[f])])) as Record<Figure, number | null>;
    goals[size] = Object.fromEntries(
      FIGURES.map((f) => {
        const r = ratios[size][f];
        return [f, r === null ? null : r <= (f === 'forward' ? GOAL.forward : GOAL.fineTune)];
      }),
    ) as Record<Figure, boolean | null>;
  }
  return { ratios, goals };
}
const { ratios, goals } = compare((size) => tfjs[size]);
const hostCompared = hostMode
  ? compare((size) => {
      const h = host[size];
      return h && !('error' in h) ? h.figures : null;
    })
  : null;

console.log(
  JSON.stringify({
    bench: 'engine',
    quick: cfg.quick,
    model: `MobileNetV2 to out_relu + GAP → Dense(${HEAD.units}, relu) → Dropout → Dense(${cfg.classes}, softmax); Adam; BatchNorm in inference mode`,
    inputs: 'random uniform [0, 1] (throughput does not depend on pixel values)',
    batch: cfg.batch,
    warmupSteps: cfg.warmup,
    timedSteps: cfg.steps,
    unfreeze: cfg.unfreeze,
    firstTrainable: plan.firstTrainable,
    cut: plan.cut,
    figures: {
      forward: 'images/s of frozen features: tfjs foldedInference + pool as trials run it; torch eval + inference_mode',
      fineTuneCachedCut: 'images/s of a training step on cached cut activations (a trial\'s phase 2): layers after the cut + head',
      fineTunePrefixPerStep: 'images/s of a training step from images: tfjs folded frozen prefix (no gradient tape) then the cut tail + head, as augmentation would need; compared with torch fineTuneWholeModel',
      fineTuneWholeModel: 'images/s of a training step input → backbone → head as one model, gradients only into unfrozen layers (tfjs: one LayersModel, trainOnBatch; torch: autograd skips the frozen prefix)',
    },
    tfjs: { backend: backend.name, weights: plan.weights, sizes: tfjs },
    torch,
    ratios,
    ratiosMeaning: 'torch images/s ÷ tfjs images/s for the same work (1 = parity); fineTunePrefixPerStep and fineTuneWholeModel both against torch fineTuneWholeModel',
    goals,
    goalsMeaning: 'ratio within goal: forward ≤ 2, fine-tuning ≤ 4; null when a figure is missing',
    host: hostMode ? { processes: cfg.hostProcesses, sizes: host, ratios: hostCompared?.ratios, goals: hostCompared?.goals } : null,
    hostMeaning: `${backend.name} runs one thread per process in Node, so a worker host runs one training process per core: host figures are ${cfg.hostProcesses} processes timing each figure at once (images/s added up), against torch on ${cfg.torchThreads} threads; null on multi-threaded backends or with --host-processes 0/1`,
    sameTrainableParams: torchSizes ? cfg.sizes.every((s) => torchSizes[s]?.trainableParams === tfjs[s].trainableParams) : null,
  }),
);
if (torch && 'error' in torch) process.exitCode = 1;
