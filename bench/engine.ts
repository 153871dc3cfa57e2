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
 *   npm run bench:engine -- [--quick] [--sizes 96,224] [--batch 16] [--warmup 2]
 *        [--steps 10] [--unfreeze 20] [--classes 5] [--backend wasm|cpu|tensorflow]
 *        [--python /usr/bin/python3] [--threads 2] [--no-torch]
 *
 * Env vars BENCH_ENGINE_* set the same (see bench/engine/config.ts). Last
 * stdout line: JSON with every figure and torch/tfjs ratios (how many times
 * faster torch is; goals: forward ≤ 2, fine-tuning ≤ 4).
 */
import { selectBackend } from '../services/worker/src/engine/index.js';
import { loadEngineBenchConfig } from './engine/config.js';
import { HEAD, measureTfjsSize, type TfjsSizeFigures } from './engine/tfjs-figures.js';
import { ratio } from './engine/throughput.js';
import { runTorchFigures, type TorchFigures } from './engine/torch-figures.js';

const FIGURES = ['forward', 'fineTuneCachedCut', 'fineTuneWholeModel'] as const;
const GOAL = { forward: 2, fineTune: 4 } as const;

const cfg = loadEngineBenchConfig(process.argv.slice(2));
const backend = await selectBackend(cfg.backend);
console.log(`tfjs backend: ${backend.name}; ${JSON.stringify(cfg)}`);

const tfjs: Record<string, TfjsSizeFigures> = {};
for (const size of cfg.sizes) {
  tfjs[size] = await measureTfjsSize(size, cfg);
  const { forward, fineTuneCachedCut, fineTuneWholeModel } = tfjs[size];
  console.log(`tfjs ${size}px: ${JSON.stringify({ forward, fineTuneCachedCut, fineTuneWholeModel })}`);
}
const plan = tfjs[cfg.sizes[0]];

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

const ratios: Record<string, Record<(typeof FIGURES)[number], number | null>> = {};
const goals: Record<string, { forwardWithin2x: boolean | null; fineTuneCachedCutWithin4x: boolean | null; fineTuneWholeModelWithin4x: boolean | null }> = {};
const within = (r: number | null, limit: number) => (r === null ? null : r <= limit);
for (const size of cfg.sizes) {
  const t = torchSizes?.[size];
  ratios[size] = Object.fromEntries(FIGURES.map((f) => [f, ratio(t?.[f], tfjs[size][f])])) as (typeof ratios)[string];
  goals[size] = {
    forwardWithin2x: within(ratios[size].forward, GOAL.forward),
    fineTuneCachedCutWithin4x: within(ratios[size].fineTuneCachedCut, GOAL.fineTune),
    fineTuneWholeModelWithin4x: within(ratios[size].fineTuneWholeModel, GOAL.fineTune),
  };
}

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
      fineTuneWholeModel: 'images/s of a training step input → backbone → head, gradients only into unfrozen layers',
    },
    tfjs: { backend: backend.name, weights: plan.weights, sizes: tfjs },
    torch,
    ratios,
    ratiosMeaning: 'torch images/s ÷ tfjs images/s (1 = parity; goals: forward ≤ 2, fine-tuning ≤ 4)',
    goals,
    sameTrainableParams: torchSizes ? cfg.sizes.every((s) => torchSizes[s]?.trainableParams === tfjs[s].trainableParams) : null,
  }),
);
if (torch && 'error' in torch) process.exitCode = 1;
