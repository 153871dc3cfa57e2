import type * as tf from '@tensorflow/tfjs';

/**
 * Block boundaries from Keras layer names: `blockOf(name)` names the block a
 * layer belongs to (e.g. 'block_3' for 'block_3_expand_BN'); each index where
 * that name changes starts a block. `null` puts a layer in the block before it
 * (e.g. DenseNet's final `bn`, which has no block of its own). The input layer
 * (index 0) never starts one: it holds no weights to unfreeze.
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
 * `expanded_conv_*`, `block_N_*`, then the top (`Conv_1`, `Conv_1_bn`, `out_relu`).
 */
export function mobileNetV2BlockOf(layerName: string): string {
  const m = /^(expanded_conv|block_\d+)_/.exec(layerName);
  if (m) return m[1];
  return /^(Conv1|bn_Conv1)/.test(layerName) ? 'stem' : 'top';
}
