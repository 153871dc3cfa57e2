import type * as tf from '@tensorflow/tfjs';

/**
 * Block boundaries from Keras layer names: `blockOf(name)` names the block a
 * layer belongs to (e.g. 'block_3' for 'block_3_expand_BN'); each index where
 * that name changes starts a block. `null` puts a layer in the block before it
 * (e.g. DenseNet's final `bn`, or MobileNetV2's top after `block_16`, which
 * have no block of their own). The input layer (index 0) never starts one: it
 * holds no weights to unfreeze.
 */
export function blockStartsByName(model: tf.LayersModel, blockOf: (layerName: string) => string | null): number[] {
  const starts: number[] = [];
  let current: string | undefined;
  model.layers.forEach((layer, i) => {
    if (i === 0) return;
    const block = blockOf(layer.name) ?? current;
    if (block !== current) starts.push(i);
    current = block;
  });
  return starts;
}

/**
 * Keras MobileNetV2 naming: stem (`Conv1`, `bn_Conv1`, `Conv1_relu`),
 * `expanded_conv_*`, `block_N_*`, then the top (`Conv_1`, `Conv_1_bn`,
 * `out_relu`), which joins `block_16`: `unfreeze: { blocks: 1 }` is block_16
 * and the top, as a Keras user unfreezing "the last block" expects.
 */
export function mobileNetV2BlockOf(layerName: string): string | null {
  const m = /^(expanded_conv|block_\d+)_/.exec(layerName);
  if (m) return m[1];
  return /^(Conv1|bn_Conv1)/.test(layerName) ? 'stem' : null;
}
