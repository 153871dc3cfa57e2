/**
 * Measurement (not a test): where one fine-tuning step on cached activations
 * goes, kernel by kernel — the step `bench:engine` calls fineTuneCachedCut
 * (MobileNetV2, the layers after the clean cut below the unfrozen ones +
 * head, Adam, trainOnBatch) — and how close it is to the floor set by the
 * backend's own convolution speed.
 *
 *   npm run bench:tail-kernels -- [--size 96] [--batch 16] [--unfreeze 20] [--steps 6] [--backend wasm] [--rounds 2] [--without all]
 *
 * On wasm the same step is also timed as a baseline without tlsweep's fast
 * paths (fast-paths.ts) — all of them (`--without all`, the stock
 * tfjs-backend-wasm kernels) or those named (`--without "Sum,Adam update"`,
 * names as registerWasmFastPaths returns them) — alternating `--rounds`
 * times in this one process; `baselineStepMs` / `stepMs` is their speed-up.
 *
 * Floor: the tail's multiply-adds (1×1 and depthwise convolutions and the
 * head's Dense layers, from the model's own shapes) × 2 FLOPs × 3 (forward,
 * input gradient, weight gradient), divided by the FLOP rate the backend
 * reached on the tail's largest convolution in this very step. A step can
 * not be faster than that on this backend, whatever the other kernels do.
 * Kernel times come from tf.profile (nested kernels, e.g. a fused conv and
 * the matMul inside it, are each listed). Last stdout line: JSON.
 */
import * as tf from '@tensorflow/tfjs';
import { createHead, cutForUnfreeze, enforceBatchNormSemantics, foldedInference, loadBackbone, mapInBatches, selectBackend, type BackendName } from '../services/worker/src/engine/index.js';
import { applyLayersAfterCut, cutInput } from '../services/worker/src/engine/tail-model.js';
import { createOptimizer } from '../services/worker/src/engine/optimizer.js';
import { registerWasmFastPaths, restoreStockWasmKernels } from '../services/worker/src/engine/wasm-kernels/index.js';
import { positiveIntFlag, stringFlag } from './flags.js';

const size = positiveIntFlag('size', 96);
const batch = positiveIntFlag('batch', 16);
const unfreeze = positiveIntFlag('unfreeze', 20);
const steps = positiveIntFlag('steps', 6);
const backend = await selectBackend(stringFlag('backend', 'wasm') as BackendName);

const backbone = await loadBackbone('mobilenet_v2', { imageSize: size });
const model = backbone.model;
const count = model.layers.length;
const cut = cutForUnfreeze(model, unfreeze);
model.layers.forEach((l, i) => (l.trainable = i >= count - unfreeze));
enforceBatchNormSemantics(model.layers);
const prefix = foldedInference(model, cut);
const x = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
const y = tf.tidy(() => tf.randomUniform([batch], 0, 5, 'int32', 8).cast('float32').reshape([-1, 1]));
const act = await mapInBatches(x, { batchSize: batch, inputSize: backbone.inputSize, preprocess: backbone.preprocess }, prefix.run);
const tailInput = cutInput(model, cut);
const head = createHead({ units: 128, classes: 5, dropout: 0.2, seed: 1 });
const step = tf.model({
  inputs: tailInput,
  outputs: head.output.apply(head.dropout.apply(head.hidden.apply(head.pool.apply(applyLayersAfterCut(model, cut, tailInput))))) as tf.SymbolicTensor,
  name: 'tail_step',
});
// The engine's Adam (fused into one kernel per variable on wasm; the stock tfjs update with the stock kernels).
step.compile({ optimizer: createOptimizer('adam', 1e-4), loss: 'sparseCategoricalCrossentropy' });

// Multiply-adds of one forward pass per image, from the layers' own shapes.
let macs = 0;
for (const l of step.layers) {
  const cls = l.getClassName();
  const [, oh = 1, ow = 1] = l.outputShape as number[];
  const kernel = l.getWeights()[0]?.shape;
  if (!kernel) continue;
  const [k0 = 1, k1 = 1, k2 = 1, k3 = 1] = kernel;
  // Conv2D [kh,kw,cin,cout] and DepthwiseConv2D [kh,kw,c,mult]: per output pixel kh·kw·cin·cout (resp. ·c·mult).
  if (cls === 'Conv2D' || cls === 'DepthwiseConv2D') macs += oh * ow * k0 * k1 * k2 * k3;
  else if (cls === 'Dense') macs += k0 * k1;
}
const trainFlops = macs * 2 * 3 * batch;

async function timeSteps(): Promise<number> {
  for (let i = 0; i < 2; i++) await step.trainOnBatch(act, y);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step.trainOnBatch(act, y);
  return (performance.now() - t0) / steps;
}
// Alternate fast paths and stock kernels (wasm) so that machine noise hits both alike; keep the best of each.
const rounds = positiveIntFlag('rounds', 2);
const without = stringFlag('without', 'all');
let stepMs = Infinity;
let baselineStepMs: number | null = null;
for (let r = 0; r < rounds; r++) {
  stepMs = Math.min(stepMs, await timeSteps());
  if (backend.name !== 'wasm') continue;
  const all = restoreStockWasmKernels();
  try {
    if (without !== 'all') {
      const skip = without.split(',').map((n) => n.trim());
      const unknown = skip.filter((n) => !all.includes(n));
      if (unknown.length > 0) throw new Error(`--without: unknown fast path(s) ${unknown.join(', ')}; allowed: all, or some of ${all.join(', ')}`);
      registerWasmFastPaths({ skip });
    }
    baselineStepMs = Math.min(baselineStepMs ?? Infinity, await timeSteps());
  } finally {
    restoreStockWasmKernels();
    registerWasmFastPaths();
  }
}
const info = await tf.profile(async () => {
  await step.trainOnBatch(act, y);
});
const byName = new Map<string, { ms: number; calls: number }>();
let best = { gflops: 0, kernel: '' };
for (const k of info.kernels) {
  const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
  e.ms += Number(k.kernelTimeMs);
  e.calls++;
  byName.set(k.name, e);
  // The forward 1×1 convolutions: [b,h,w,cin] × [1,1,cin,cout].
  const [xs = [], ws = []] = k.inputShapes as number[][];
  const [b = 0, h = 0, w = 0] = xs;
  const [kh = 0, kw = 0, cin = 0, cout = 0] = ws;
  if (k.name === 'FusedConv2D' && ws.length === 4 && kh === 1 && kw === 1 && Number(k.kernelTimeMs) > 0) {
    const g = (2 * b * h * w * cin * cout) / (Number(k.kernelTimeMs) * 1e6);
    if (g > best.gflops) best = { gflops: g, kernel: `${k.name} ${JSON.stringify(k.inputShapes)}` };
  }
}
const kernels = [...byName].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15).map(([name, v]) => ({ name, ms: Math.round(v.ms * 100) / 100, calls: v.calls }));
for (const k of kernels) console.log(`${k.ms.toFixed(2).padStart(9)} ms ${String(k.calls).padStart(4)}× ${k.name}`);
const floorMs = best.gflops > 0 ? trainFlops / (best.gflops * 1e6) : NaN;
const r = (v: number) => Math.round(v * 100) / 100;
console.log(JSON.stringify({
  bench: 'tail-kernels', backend: backend.name, size, batch, unfreeze, stepMs: r(stepMs), imagesPerSec: r((batch * 1000) / stepMs),
  baselineWithout: backend.name === 'wasm' ? without : null, baselineStepMs: baselineStepMs === null ? null : r(baselineStepMs), speedup: baselineStepMs === null ? null : r(baselineStepMs / stepMs),
  trainGflopPerStep: r(trainFlops / 1e9), bestConvGflops: r(best.gflops), bestConv: best.kernel, floorMs: r(floorMs), stepOverFloor: r(stepMs / floorMs), kernels,
}));
