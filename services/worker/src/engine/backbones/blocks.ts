import type * as tf from '@tensorflow/tfjs';

/**
 * Block boundaries from Keras layer names: `blockOf(name)` names the block a
 * layer belongs to (e.g. 'block_3' for 'block_3_expand_BN'), or null for
 * layers outside every whole block (a stem, the top after the last block);
 * each index where the name changes to a block starts one. The input layer
 * (index 0) never starts one: it holds no weights to unfreeze. Top layers
 * after the last block train with it (`unfreeze: { blocks: 1 }` is the last
 * block and everything above).
 */
export function blockStartsByName(model: tf.LayersModel, blockOf: (layerName: string) => string | null): number[] {
  const starts: number[] = [];
  let current: string | null = null;
  model.layers.forEach((layer, i) => {
    if (i === 0) return;
    const block = blockOf(layer.name);
    if (block !== null && block !== current) starts.push(i);
    current = block;
  });
  return starts;
}

/**
 * Keras MobileNetV2 naming: stem (`Conv1`, `bn_Conv1`, `Conv1_relu`),
 * the 17 inverted-residual blocks `expanded_conv_*` and `block_N_*`, then the
 * top (`Conv_1`, `Conv_1_bn`, `out_relu`). Stem and top belong to no block.
 */
export function mobileNetV2BlockOf(layerName: string): string | null {
  const m = /^(expanded_conv|block_\d+)_/.exec(layerName);
  return m ? m[1] : null;
}
