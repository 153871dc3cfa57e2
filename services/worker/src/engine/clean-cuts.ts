import type * as tf from '@tensorflow/tfjs';
import { EngineConfigError } from './errors.js';

type Layer = tf.layers.Layer;

/** The inbound node created when `model` was built (later re-uses of a layer add more). */
export function modelNodeOf(layer: Layer): {
  inboundLayers: Layer[];
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
} {
  const node = layer.inboundNodes[0];
  if (!node) throw new Error(`layer '${layer.name}' has no inbound node; was it used in a model?`);
  return node;
}

/** Index of every layer of `model`, by identity. */
function layerIndex(model: tf.LayersModel): Map<Layer, number> {
  return new Map(model.layers.map((layer, i) => [layer, i]));
}

/**
 * Indices `i` of `model.layers` whose output is a clean cut: a single tensor
 * that every later layer depends on only through it (for every layer j > i,
 * every inbound layer of j has index >= i). Running the layers up to a clean
 * cut once and the rest on its cached output is exact.
 */
export function cleanCutIndices(model: tf.LayersModel): number[] {
  const index = layerIndex(model);
  const layers = model.layers;
  // minInbound[j] = smallest index any layer j' >= j reads from.
  const minInboundFrom = new Array<number>(layers.length + 1).fill(Number.POSITIVE_INFINITY);
  for (let j = layers.length - 1; j >= 0; j--) {
    let min = minInboundFrom[j + 1];
    for (const inbound of modelNodeOf(layers[j]).inboundLayers) {
      const k = index.get(inbound);
      if (k === undefined) throw new Error(`layer '${layers[j].name}' reads '${inbound.name}', which is not in the model`);
      min = Math.min(min, k);
    }
    minInboundFrom[j] = min;
  }
  const cuts: number[] = [];
  for (let i = 0; i < layers.length; i++) {
    const single = modelNodeOf(layers[i]).outputTensors.length === 1;
    if (single && minInboundFrom[i + 1] >= i) cuts.push(i);
  }
  return cuts;
}

/**
 * Where to split `model` when its top `unfreeze` layers train (Keras
 * `base_model.layers[-unfreeze:]`): the deepest clean cut strictly below the
 * first trainable layer (index L - unfreeze), or the last layer when nothing
 * is unfrozen. Everything up to the cut is frozen and can be computed once.
 */
export function cutForUnfreeze(model: tf.LayersModel, unfreeze: number): number {
  const count = model.layers.length;
  if (!Number.isInteger(unfreeze) || unfreeze < 0 || unfreeze >= count) {
    throw new EngineConfigError(`unfreeze must be an integer in [0, ${count - 1}] for '${model.name}'; got ${unfreeze}`);
  }
  if (unfreeze === 0) return count - 1;
  const firstTrainable = count - unfreeze;
  const cuts = cleanCutIndices(model).filter((i) => i < firstTrainable);
  // Index 0 (the input layer) is always clean, so a cut always exists.
  return cuts[cuts.length - 1];
}
