import * as tf from '@tensorflow/tfjs';
import { modelNodeOf } from './clean-cuts.js';

/**
 * Inference-only execution of a frozen model prefix with BatchNormalization
 * folded into the preceding convolution and ReLU fused into it: the frozen
 * part of a trial runs once, but over every image, and on wasm the separate
 * BatchNorm and ReLU6 kernels took more time than the convolutions (MobileNetV2,
 * 96 px). Folding is exact algebra (BN in inference mode is affine); results
 * differ from the layer-by-layer model only by float rounding.
 */
export interface FoldedInference {
  /** Output of layer `upTo` for images `x` (already preprocessed). Caller owns the result. */
  run(x: tf.Tensor4D): tf.Tensor;
  /** Layers folded into a preceding convolution (for logs and tests). */
  readonly foldedLayers: readonly string[];
  /** Frees the folded weights. */
  dispose(): void;
}

type Layer = tf.layers.Layer;
type Step = { inputs: tf.SymbolicTensor[]; output: tf.SymbolicTensor; run(inputs: tf.Tensor[]): tf.Tensor };

function weightNamed(layer: Layer, suffix: string): tf.Tensor | null {
  const w = layer.weights.find((v) => v.originalName.endsWith(`/${suffix}`) || v.originalName === suffix);
  return w ? w.read() : null;
}

function config(layer: Layer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

/** Activation a ReLU layer can be fused as, or null. */
function fusableRelu(layer: Layer): 'relu' | 'relu6' | null {
  if (layer.getClassName() !== 'ReLU') return null;
  const maxValue = config(layer).maxValue;
  if (maxValue == null) return 'relu';
  return maxValue === 6 ? 'relu6' : null;
}

function isFoldableConv(layer: Layer): boolean {
  const cls = layer.getClassName();
  if (cls !== 'Conv2D' && cls !== 'DepthwiseConv2D') return false;
  const c = config(layer);
  return c.activation === 'linear' && (c.dataFormat ?? 'channelsLast') === 'channelsLast';
}

function isFoldableBatchNorm(layer: Layer): boolean {
  if (layer.getClassName() !== 'BatchNormalization') return false;
  const axis = config(layer).axis;
  return axis === -1 || axis === 3;
}

/** Conv (+ folded BN) (+ fused ReLU) as one fused op; returns the op and the weights it owns. */
function fuse(conv: Layer, bn: Layer | null, relu: 'relu' | 'relu6' | null): { op: (x: tf.Tensor) => tf.Tensor; owned: tf.Tensor[] } {
  const c = config(conv);
  const depthwise = conv.getClassName() === 'DepthwiseConv2D';
  const kernel = weightNamed(conv, depthwise ? 'depthwise_kernel' : 'kernel');
  if (!kernel) throw new Error(`layer '${conv.name}' has no kernel`);
  const bias = c.useBias ? weightNamed(conv, 'bias') : null;
  const { filter, folded } = tf.tidy((): { filter: tf.Tensor; folded?: tf.Tensor } => {
    if (!bn) return bias ? { filter: kernel.clone(), folded: bias.clone() } : { filter: kernel.clone() };
    const eps = config(bn).epsilon as number;
    const mean = weightNamed(bn, 'moving_mean');
    const variance = weightNamed(bn, 'moving_variance');
    if (!mean || !variance) throw new Error(`layer '${bn.name}' has no moving statistics`);
    const gamma = weightNamed(bn, 'gamma') ?? tf.onesLike(mean);
    const beta = weightNamed(bn, 'beta') ?? tf.zerosLike(mean);
    const scale = tf.div(gamma, tf.sqrt(tf.add(variance, eps)));
    // Output channel of a depthwise kernel [h, w, in, mult] is in * mult + m.
    const kernelScale = depthwise ? scale.reshape([1, 1, kernel.shape[2] as number, kernel.shape[3] as number]) : scale;
    const shifted = tf.add(beta, tf.mul(tf.sub(bias ?? tf.zerosLike(mean), mean), scale));
    return { filter: tf.mul(kernel, kernelScale), folded: shifted };
  });
  const args = {
    strides: c.strides as [number, number],
    pad: c.padding as 'same' | 'valid',
    dataFormat: 'NHWC' as const,
    dilations: c.dilationRate as [number, number],
    bias: folded ?? undefined,
    activation: relu ?? ('linear' as const),
  };
  const op = depthwise
    ? (x: tf.Tensor) => tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, ...args })
    : (x: tf.Tensor) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, ...args });
  return { op, owned: folded ? [filter, folded] : [filter] };
}

/**
 * Plans inference of `model` up to and including layer `upTo`, folding every
 * Conv2D/DepthwiseConv2D → BatchNormalization (→ ReLU) chain whose
 * intermediate outputs nothing else reads. Other layers run as themselves,
 * in inference mode. Uses the weights as they are now.
 */
export function foldedInference(model: tf.LayersModel, upTo: number): FoldedInference {
  const layers = model.layers.slice(0, upTo + 1);
  const outputOf = (l: Layer) => modelNodeOf(l).outputTensors[0];
  const readers = new Map<tf.SymbolicTensor, Layer[]>();
  for (const layer of layers) {
    for (const t of modelNodeOf(layer).inputTensors) readers.set(t, [...(readers.get(t) ?? []), layer]);
  }
  const finalOutput = outputOf(layers[upTo]);
  /** The single layer reading `layer`'s output, if exactly one does and it is not the result. */
  const soleReader = (layer: Layer): Layer | null => {
    const out = outputOf(layer);
    const r = readers.get(out) ?? [];
    return r.length === 1 && out !== finalOutput ? r[0] : null;
  };

  const steps: Step[] = [];
  const owned: tf.Tensor[] = [];
  const folded: string[] = [];
  const skip = new Set<Layer>();
  for (const layer of layers) {
    if (skip.has(layer) || layer.getClassName() === 'InputLayer') continue;
    const node = modelNodeOf(layer);
    if (isFoldableConv(layer) && node.outputTensors.length === 1) {
      let last = layer;
      let bn: Layer | null = null;
      let relu: 'relu' | 'relu6' | null = null;
      const next = soleReader(layer);
      if (next && isFoldableBatchNorm(next)) {
        bn = last = next;
      }
      const after = soleReader(last);
      const act = after ? fusableRelu(after) : null;
      if (after && act) {
        relu = act;
        last = after;
      }
      if (bn || relu) {
        const f = fuse(layer, bn, relu);
        owned.push(...f.owned);
        for (const l of [bn, relu ? last : null]) if (l) (skip.add(l), folded.push(l.name));
        steps.push({ inputs: node.inputTensors, output: outputOf(last), run: ([x]) => f.op(x) });
        continue;
      }
    }
    steps.push({
      inputs: node.inputTensors,
      output: outputOf(layer),
      run: (inputs) => layer.apply(inputs.length === 1 ? inputs[0] : inputs, { training: false }) as tf.Tensor,
    });
  }

  return {
    foldedLayers: folded,
    run: (x) =>
      tf.tidy(() => {
        const values = new Map<tf.SymbolicTensor, tf.Tensor>([[model.inputs[0], x]]);
        for (const step of steps) {
          values.set(step.output, step.run(step.inputs.map((t) => values.get(t)!)));
        }
        return values.get(finalOutput)!;
      }),
    dispose: () => tf.dispose(owned),
  };
}
