import * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/load-dataset.js';
import type { Backbone } from './backbones/backbone.js';
import { mapInBatches, predictInBatches } from './batched-inference.js';
import { foldedInference, type FoldedInference } from './folded-inference.js';
import { activeAugmentation, trainAugmenters, type PassAugmentation } from './augmented-passes.js';
import { applyLayersAfterCut, cutInput } from './tail-model.js';

/**
 * Where a trial's frozen-prefix output comes from.
 *
 * - `once` (the default): computed once per trial (and shared between trials
 *   by the feature memo / cache), every epoch trains on the stored tensors.
 * - `every-epoch`: a baseline mode, the work Keras' `model.fit` (and every
 *   per-trial tuner) does: the frozen layers run again over the epoch's
 *   training images (its augmented view) and over the validation images on
 *   every epoch; nothing is kept between epochs or trials. Results equal
 *   `once` up to float rounding (the prefix is deterministic in inference
 *   mode); only the time differs. `bench:sweep`'s naive contender uses it.
 */
export type FrozenPrefixMode = 'once' | 'every-epoch';

export const FROZEN_PREFIX_MODES: readonly FrozenPrefixMode[] = ['once', 'every-epoch'];

/**
 * The frozen prefix of one trial, run again for each epoch (`every-epoch`
 * mode). `pooled` is phase 1's input (the whole frozen backbone, pooled);
 * `activations` is phase 2's (the output of layer `cut`). The tensors of the
 * previous call are freed by the next call and by dispose().
 */
export class PerEpochFeatures {
  private readonly prefix: FoldedInference;
  private readonly frozenTail: tf.LayersModel | null;
  private readonly augmenters: ReturnType<typeof trainAugmenters>;
  private current: tf.Tensor[] = [];

  constructor(
    private readonly backbone: Backbone,
    private readonly data: LoadedDataset,
    private readonly opts: { batchSize: number; cut: number | null; augment?: PassAugmentation | null },
  ) {
    this.augmenters = trainAugmenters(activeAugmentation(opts.augment), data.train.x);
    this.prefix = foldedInference(backbone.model, opts.cut ?? backbone.model.layers.length - 1);
    if (opts.cut === null) {
      this.frozenTail = null;
    } else {
      // Phase 1 of a fine-tuning trial pools the whole frozen backbone: the prefix, then the (still frozen) tail.
      const input = cutInput(backbone.model, opts.cut);
      this.frozenTail = tf.model({ inputs: input, outputs: applyLayersAfterCut(backbone.model, opts.cut, input) });
    }
  }

  /**
   * The training split's input for trial epoch `epoch` (0-based over both
   * phases: its augmented pass is `epoch mod passes`, as the cached passes),
   * and the validation split's.
   */
  async compute(what: 'pooled' | 'activations', epoch: number): Promise<{ train: tf.Tensor; val: tf.Tensor }> {
    if (what === 'activations' && this.opts.cut === null) throw new Error('no cut: a head-only trial has no activations to fine-tune on');
    tf.dispose(this.current);
    this.current = [];
    const view = this.augmenters[epoch % this.augmenters.length];
    const imageOpts = { batchSize: this.opts.batchSize, inputSize: this.backbone.inputSize, preprocess: this.backbone.preprocess };
    const poolNow = this.opts.cut === null;
    const run = async (x: tf.Tensor4D, augment: typeof view): Promise<tf.Tensor> => {
      const out = await mapInBatches(x, { ...imageOpts, pool: poolNow, augment }, this.prefix.run);
      if (what === 'activations' || poolNow) return out;
      try {
        return await predictInBatches(this.frozenTail!, out as tf.Tensor4D, { batchSize: this.opts.batchSize, pool: true });
      } finally {
        out.dispose();
      }
    };
    const train = await run(this.data.train.x, view);
    this.current.push(train);
    const val = await run(this.data.val.x, undefined);
    this.current.push(val);
    return { train, val };
  }

  dispose(): void {
    tf.dispose(this.current);
    this.current = [];
    this.prefix.dispose();
  }
}
