import type { Backbone } from './backbones/backbone.js';
import { EngineConfigError } from './errors.js';
import { unfreezeLabel, type UnfreezeSpec } from './recipe-options.js';

/** An unfreeze depth resolved against a built backbone. */
export interface ResolvedUnfreeze {
  /** Index in `model.layers` of the lowest layer that trains in phase 2; the layer count when none does. */
  firstTrainable: number;
  /** Backbone layers that train (Keras `base_model.layers[-layers:]`). */
  layers: number;
  /** The depth as written, e.g. `blocks:2`. */
  label: string;
}

/**
 * Resolves any form of the unfreeze depth to the first trainable layer.
 * Needs the model (block starts, layer names), so it runs in the worker; the
 * coordinator has checked shapes and ranges already.
 *
 * @throws EngineConfigError naming the field: too deep, too many blocks, an unknown layer name.
 */
export function resolveUnfreeze(spec: UnfreezeSpec, backbone: Backbone): ResolvedUnfreeze {
  const layers = backbone.model.layers;
  const count = layers.length;
  const label = unfreezeLabel(spec);
  const at = (firstTrainable: number): ResolvedUnfreeze => ({ firstTrainable, layers: count - firstTrainable, label });
  if (backbone.graph && (typeof spec !== 'number' || spec !== 0)) {
    throw new EngineConfigError(`unfreeze must be 0 for graph backbone '${backbone.name}': a GraphModel is frozen (its weights are graph constants, as hub.KerasLayer(trainable=False)), only the head trains; got ${label}`);
  }
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 0 || spec >= count) {
      throw new EngineConfigError(`unfreeze must be < ${count} (the layers of '${backbone.name}', input included); got ${spec}`);
    }
    return at(count - spec);
  }
  if ('blocks' in spec) {
    const starts = backbone.blockStarts;
    if (!Number.isInteger(spec.blocks) || spec.blocks < 1 || spec.blocks > starts.length) {
      throw new EngineConfigError(`unfreeze.blocks must be an integer in 1..${starts.length} (the blocks of '${backbone.name}'); got ${spec.blocks}`);
    }
    return at(starts[starts.length - spec.blocks]);
  }
  const target = spec.fineTuneAt;
  const index = typeof target === 'number' ? target : layers.findIndex((l) => l.name === target);
  if (typeof target === 'string' && index < 0) {
    throw new EngineConfigError(`unfreeze.fineTuneAt: backbone '${backbone.name}' has no layer named '${target}'`);
  }
  // Index 0 is the input layer: it holds nothing to train, and "everything" is count - 1 layers.
  if (!Number.isInteger(index) || index < 1 || index >= count) {
    throw new EngineConfigError(`unfreeze.fineTuneAt must name a layer or be an index in 1..${count - 1} for '${backbone.name}'; got ${JSON.stringify(target)}`);
  }
  return at(index);
}

/**
 * Gradual unfreezing: the first trainable layer of each stage, from the top
 * block (and everything above it) down to `firstTrainable`, one more block
 * per stage. A depth inside a block makes the last stage a part block; a
 * depth within the top layers is a single stage.
 */
export function unfreezeStages(blockStarts: readonly number[], firstTrainable: number): number[] {
  const above = blockStarts.filter((s) => s > firstTrainable).sort((a, b) => b - a);
  return [...above, firstTrainable];
}

/** The stage in effect in fine-tune epoch `epoch` (0-based) when one more block unfreezes every `everyEpochs`. */
export function stageAt(epoch: number, everyEpochs: number, stages: number): number {
  return Math.min(Math.floor(epoch / everyEpochs), stages - 1);
}
