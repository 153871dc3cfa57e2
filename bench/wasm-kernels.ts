/**
 * Measurement (not a test): fine-tune step throughput of a MobileNetV2-shaped
 * head on the tfjs wasm backend, using the gradient kernels from
 * services/worker/src/engine/wasm-kernels.
 *
 *   npx tsx bench/wasm-kernels.ts [--steps 5] [--batch 32] [--no-what-if]
 *
 * Model: the tail of MobileNetV2 at 96x96 input — 6x6x96 features, an
 * inverted-residual block at 6x6 (96 -> 576 -> 96, residual), a stride-2
 * block (96 -> 576 -> dw s2 -> 160), two 3x3 blocks (160 -> 960 -> 160
 * residual, 160 -> 960 -> 320), Conv 1x1 320 -> 1280, global pool, dense 10.
 * Every conv is trained, so all three new kernels (and wasm's own
 * Conv2DBackpropInput) run each step.
 *
 * Prints images/s, a per-kernel time breakdown of one step, and — unless
 * --no-what-if — the same measurement with an experimental matMul-based
 * Conv2DBackpropInput for 1x1/stride-1 convs swapped in (wasm's built-in one
 * is a naive loop and dominates the step). The last line is JSON.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradientKernels } from '../services/worker/src/engine/wasm-kernels/index.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const STEPS = arg('steps', 5);
const BATCH = arg('batch', 32);
const WHAT_IF = !process.argv.includes('--no-what-if');
const CLASSES = 10;

function convBnRelu(x: tf.SymbolicTensor, filters: number, relu: boolean): tf.SymbolicTensor {
  let y = tf.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  return relu ? (tf.layers.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor) : y;
}

function invertedResidual(x: tf.SymbolicTensor, expand: number, out: number, stride: number): tf.SymbolicTensor {
  const inCh = x.shape[3] as number;
  let y = convBnRelu(x, inCh * expand, true);
  y = tf.layers
    .depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false })
    .apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  y = tf.layers.reLU({ maxValue: 6 }).apply(y) as tf.SymbolicTensor;
  y = convBnRelu(y, out, false);
  return stride === 1 && inCh === out ? (tf.layers.add().apply([x, y]) as tf.SymbolicTensor) : y;
}

function buildModel(): tf.LayersModel {
  const input = tf.input({ shape: [6, 6, 96] });
  let x = invertedResidual(input, 6, 96, 1); // 6x6, dw stride 1, 576 ch
  x = invertedResidual(x, 6, 160, 2); // 6x6 -> 3x3, dw stride 2, 576 ch
  x = invertedResidual(x, 6, 160, 1); // 3x3, 960 ch, residual
  x = invertedResidual(x, 6, 320, 1); // 3x3, 960 ch
  x = convBnRelu(x, 1280, true); // Conv 1x1 320 -> 1280
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: CLASSES, activation: 'softmax' }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

interface Run {
  msPerStep: number;
  imagesPerSec: number;
  topKernels: { name: string; ms: number }[];
}

async function measure(model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor): Promise<Run> {
  for (let i = 0; i < 2; i++) await model.trainOnBatch(xs, ys); // warm-up (operator setup)
  // Median of per-step wall times: robust to other load on a shared machine.
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    await model.trainOnBatch(xs, ys);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const msPerStep = times[Math.floor(times.length / 2)];
  // Per-kernel breakdown of one step. Nested kernels are profiled too, so a
  // composite kernel's time also appears under the ops it is built from.
  const profile = await tf.profile(async () => {
    await model.trainOnBatch(xs, ys);
  });
  const byName = new Map<string, number>();
  for (const k of profile.kernels) {
    byName.set(k.name, (byName.get(k.name) ?? 0) + Number(k.kernelTimeMs));
  }
  const topKernels = [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([name, ms]) => ({ name, ms: Math.round(ms * 10) / 10 }));
  return { msPerStep, imagesPerSec: (BATCH * 1000) / msPerStep, topKernels };
}

/**
 * What-if only (never registered by the library): Conv2DBackpropInput for
 * 1x1 / stride 1 / unpadded NHWC convs as dx = dy · W^T with a plain matMul,
 * delegating everything else to wasm's built-in kernel.
 */
function swapInMatMulConv2DBackpropInput(): void {
  const original = tf.getKernel(tf.Conv2DBackpropInput, 'wasm');
  if (!original) throw new Error('wasm Conv2DBackpropInput not registered');
  tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
  tf.registerKernel({
    kernelName: tf.Conv2DBackpropInput,
    backendName: 'wasm',
    kernelFunc: (args) => {
      const { dy, filter } = args.inputs as { dy: tf.Tensor4D; filter: tf.Tensor4D };
      const a = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
      const [kh, kw, ci, co] = filter.shape;
      const unit = (v: number | [number, number]) => (Array.isArray(v) ? v.every((s) => s === 1) : v === 1);
      const plain = kh === 1 && kw === 1 && unit(a.strides) && a.dataFormat !== 'NCHW' &&
        (a.pad === 'same' || a.pad === 'valid' || a.pad === 0) && dy.rank != null;
      if (!plain) return original.kernelFunc(args);
      const [b, h, w] = a.inputShape;
      return tf.tidy(() =>
        tf.reshape(
          tf.matMul(tf.reshape(dy, [b * h * w, co]), tf.transpose(tf.reshape(filter, [ci, co]))),
          [b, h, w, ci],
        ),
      );
    },
  });
}

async function main(): Promise<void> {
  const registered = registerWasmGradientKernels();
  await tf.setBackend('wasm');
  await tf.ready();
  const xs = tf.randomNormal([BATCH, 6, 6, 96]);
  const ys = tf.oneHot(tf.randomUniform([BATCH], 0, CLASSES, 'int32') as tf.Tensor1D, CLASSES);
  const model = buildModel();
  const tensorsBefore = tf.memory().numTensors;

  const base = await measure(model, xs, ys);
  console.log(`wasm fine-tune step (batch ${BATCH}, median of ${STEPS}): ${base.msPerStep.toFixed(0)} ms/step, ${base.imagesPerSec.toFixed(1)} images/s`);
  console.log('top kernels (ms, one step):', base.topKernels.map((k) => `${k.name}=${k.ms}`).join(' '));

  let whatIf: Run | undefined;
  if (WHAT_IF) {
    swapInMatMulConv2DBackpropInput();
    whatIf = await measure(model, xs, ys);
    console.log(`what-if matMul Conv2DBackpropInput: ${whatIf.msPerStep.toFixed(0)} ms/step, ${whatIf.imagesPerSec.toFixed(1)} images/s`);
    console.log('top kernels (ms, one step):', whatIf.topKernels.map((k) => `${k.name}=${k.ms}`).join(' '));
  }
  const leakedTensors = tf.memory().numTensors - tensorsBefore;
  console.log(
    JSON.stringify({
      bench: 'wasm-kernels',
      backend: tf.getBackend(),
      registered,
      batch: BATCH,
      steps: STEPS,
      msPerStep: Math.round(base.msPerStep),
      imagesPerSec: Math.round(base.imagesPerSec * 10) / 10,
      whatIfMatMulConvInput: whatIf
        ? { msPerStep: Math.round(whatIf.msPerStep), imagesPerSec: Math.round(whatIf.imagesPerSec * 10) / 10 }
        : null,
      leakedTensors,
    }),
  );
}

await main();
