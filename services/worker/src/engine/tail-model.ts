import * as tf from '@tensorflow/tfjs';
import { modelNodeOf } from './clean-cuts.js';

/**
 * Re-applies the layers of `model` after index `cut` to `input` (a tensor
 * shaped like the cut's output), in order, mapping every inbound tensor from
 * the original graph to the new one (so residual Adds find both operands).
 * `cut` must be a clean cut (see cleanCutIndices). The layers are shared: the
 * result computes with the very same weights.
 */
export function applyLayersAfterCut(model: tf.LayersModel, cut: number, input: tf.SymbolicTensor): tf.SymbolicTensor {
  const layers = model.layers;
  if (!Number.isInteger(cut) || cut < 0 || cut >= layers.length) {
    throw new RangeError(`cut must be a layer index in [0, ${layers.length - 1}]; got ${cut}`);
  }
  const mapped = new Map<tf.SymbolicTensor, tf.SymbolicTensor>();
  const cutOutputs = modelNodeOf(layers[cut]).outputTensors;
  if (cutOutputs.length !== 1) throw new Error(`layer '${layers[cut].name}' has ${cutOutputs.length} outputs; cannot cut there`);
  mapped.set(cutOutputs[0], input);
  for (let j = cut + 1; j < layers.length; j++) {
    const node = modelNodeOf(layers[j]);
    const inputs = node.inputTensors.map((t) => {
      const m = mapped.get(t);
      if (!m) throw new Error(`'${layers[cut].name}' is not a clean cut: '${layers[j].name}' reads '${t.name}' from before it`);
      return m;
    });
    const out = layers[j].apply(inputs.length === 1 ? inputs[0] : inputs);
    const outs = Array.isArray(out) ? out : [out];
    node.outputTensors.forEach((t, k) => mapped.set(t, outs[k] as tf.SymbolicTensor));
  }
  const finalOutput = mapped.get(model.outputs[0]);
  if (!finalOutput) throw new Error(`model '${model.name}' output is not reachable from layer ${cut}`);
  return finalOutput;
}

/** A fresh symbolic input shaped like the output of layer `cut` (without the batch axis). */
export function cutInput(model: tf.LayersModel, cut: number): tf.SymbolicTensor {
  const shape = modelNodeOf(model.layers[cut]).outputTensors[0].shape;
  return tf.input({ shape: shape.slice(1) as number[], name: `tail_input_${model.layers[cut].name}` });
}

/**
 * The part of `model` after clean cut `cut`, as its own model (same weights).
 * Dispose it with {@link releaseLayers} rather than `dispose()` when the
 * layers are shared with other models.
 */
export function buildTailModel(model: tf.LayersModel, cut: number): tf.LayersModel {
  const input = cutInput(model, cut);
  return tf.model({ inputs: input, outputs: applyLayersAfterCut(model, cut, input), name: `${model.name}_tail` });
}

/**
 * `model` up to and including layer `cut`. It adds no layer applications, so
 * it owns nothing: never dispose it (that would release the shared layers).
 */
export function buildPrefixModel(model: tf.LayersModel, cut: number): tf.LayersModel {
  const output = modelNodeOf(model.layers[cut]).outputTensors[0];
  return tf.model({ inputs: model.inputs, outputs: output, name: `${model.name}_prefix` });
}

/**
 * Frees the weights of `layers` however many models they were applied in
 * (tfjs counts one reference per application and frees at zero).
 */
export function releaseLayers(layers: Iterable<tf.layers.Layer>): void {
  for (const layer of new Set(layers)) {
    if (layer.getClassName() === 'InputLayer' || !layer.built) continue;
    const refs = layer as unknown as { _refCount: number | null; isDisposed?: boolean };
    while (refs._refCount !== null && refs._refCount > 0) layer.dispose();
  }
}
