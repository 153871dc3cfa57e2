import * as tf from '@tensorflow/tfjs';
import {
  createHead,
  cutForUnfreeze,
  enforceBatchNormSemantics,
  foldedInference,
  loadBackbone,
  mapInBatches,
  releaseLayers,
} from '../../services/worker/src/engine/index.js';
import { applyLayersAfterCut, cutInput } from '../../services/worker/src/engine/tail-model.js';
import { createOptimizer } from '../../services/worker/src/engine/optimizer.js';
import { timeSteps, type Throughput } from './throughput.js';

/** The head and optimiser every benchmark figure trains (the engine's bench defaults). */
export const HEAD = { units: 128, dropout: 0.2, learningRate: 1e-4 } as const;

export interface TfjsFigureOptions {
  batch: number;
  warmup: number;
  steps: number;
  /** Backbone layers fine-tuned, counted from the top (Keras `layers[-N:]`). */
  unfreeze: number;
  classes: number;
  /** Awaited before each figure's timed steps (host.ts starts the processes' figures together). */
  beforeTimed?: () => Promise<void>;
}

/** tfjs figures for one input size. */
export interface TfjsSizeFigures {
  /** First unfrozen Keras layer and the clean cut below it whose output trials cache. */
  firstTrainable: string;
  cut: string;
  /** Where the backbone's weights came from (loadBackbone). */
  weights: string;
  /** Trainable parameters (unfrozen backbone layers + head) of the fine-tuned model. */
  trainableParams: number;
  /** Frozen features as trials compute them: foldedInference over the whole backbone, global average pool. */
  forward: Throughput;
  /** Fine-tuning as trials run phase 2: tail after the cut + head, trainOnBatch on cached cut activations. */
  fineTuneCachedCut: Throughput;
  /**
   * Input → frozen prefix (foldedInference, no gradient tape) → the same tail
   * + head trainOnBatch, every step: the work of a torch whole-model step, and
   * what fine-tuning needs when augmentation rules out cached activations.
   */
  fineTunePrefixPerStep: Throughput;
  /**
   * Input → whole backbone → head as one LayersModel, trainOnBatch, gradients
   * only into the unfrozen layers (what a Keras user would write). tfjs keeps
   * every frozen activation on its gradient tape, so on wasm (4 GiB) this can
   * run out of memory at 224 px: then it holds the error.
   */
  fineTuneWholeModel: Throughput;
}

/** Keras-style trainability, as trainTrial sets it: layers from `firstTrainable` on train. */
function setTrainableFrom(model: tf.LayersModel, firstTrainable: number): void {
  model.layers.forEach((layer, i) => {
    layer.trainable = i >= firstTrainable;
  });
}

/** wasm reports running out of its 4 GiB as an abort or a bad table index; say so. */
function withMemoryHint(t: Throughput): Throughput {
  if (!('error' in t) || tf.getBackend() !== 'wasm' || !/out of bounds|abort|memory/i.test(t.error)) return t;
  return { error: `${t.error} (likely wasm's 4 GiB memory limit: tfjs keeps every frozen activation on its gradient tape)` };
}

function trainableParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((n, w) => n + w.read().size, 0);
}

/**
 * MobileNetV2 (nsfwjs weights, via loadBackbone) at `size` px on random
 * images in [0, 1], through the engine's own pieces. The figures run in this
 * order so that a figure which exhausts wasm memory (whole model at 224 px)
 * comes last.
 */
export async function measureTfjsSize(size: number, opts: TfjsFigureOptions): Promise<TfjsSizeFigures> {
  const backbone = await loadBackbone('mobilenet_v2', { imageSize: size });
  const model = backbone.model;
  const count = model.layers.length;
  const cut = cutForUnfreeze(model, opts.unfreeze);
  const firstTrainable = count - opts.unfreeze;
  const timing = { warmup: opts.warmup, steps: opts.steps, batch: opts.batch, beforeTimed: opts.beforeTimed };
  const tensors: tf.Tensor[] = [];
  const owned: Array<{ dispose(): void }> = [];
  const optimizers: tf.Optimizer[] = [];
  const layers: tf.layers.Layer[] = [...model.layers];
  const compiled = (m: tf.LayersModel) => {
    const optimizer = createOptimizer('adam', HEAD.learningRate);
    optimizers.push(optimizer);
    m.compile({ optimizer, loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
    return m;
  };
  const newHead = () => {
    const head = createHead({ units: HEAD.units, classes: opts.classes, dropout: HEAD.dropout, seed: 1 });
    layers.push(head.pool, head.hidden, head.dropout, head.output);
    return head;
  };
  try {
    const x = tf.randomUniform([opts.batch, size, size, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    // Sparse labels as trainTrial feeds them: float32 [n, 1].
    const y = tf.tidy(() => tf.randomUniform([opts.batch], 0, opts.classes, 'int32', 8).cast('float32').reshape([-1, 1]));
    tensors.push(x, y);
    const imageOpts = { batchSize: opts.batch, inputSize: backbone.inputSize, preprocess: backbone.preprocess };

    setTrainableFrom(model, count);
    enforceBatchNormSemantics(model.layers);
    const frozen = foldedInference(model, count - 1);
    const forward = await timeSteps(timing, async () => {
      const pooled = await mapInBatches(x, { ...imageOpts, pool: true }, frozen.run);
      await pooled.data(); // async backends (tensorflow, webgpu) finish here
      pooled.dispose();
    }).finally(() => frozen.dispose());

    setTrainableFrom(model, firstTrainable);
    enforceBatchNormSemantics(model.layers);
    // The prefix is frozen, so its folded weights stay valid while the tail trains.
    const prefix = foldedInference(model, cut);
    owned.push(prefix);
    const activations = await mapInBatches(x, imageOpts, prefix.run);
    tensors.push(activations);
    const tailInput = cutInput(model, cut);
    const tailModel = compiled(tf.model({ inputs: tailInput, outputs: newHead().apply(applyLayersAfterCut(model, cut, tailInput)), name: 'finetune_tail' }));
    const fineTuneCachedCut = await timeSteps(timing, async () => {
      await tailModel.trainOnBatch(activations, y);
    });
    const fineTunePrefixPerStep = await timeSteps(timing, async () => {
      const a = await mapInBatches(x, imageOpts, prefix.run);
      try {
        await tailModel.trainOnBatch(a, y);
      } finally {
        a.dispose();
      }
    });

    const wholeModel = compiled(tf.model({ inputs: model.inputs, outputs: newHead().apply(model.outputs[0]), name: 'finetune_whole' }));
    const images = tf.tidy(() => backbone.preprocess(x));
    tensors.push(images);
    const fineTuneWholeModel = withMemoryHint(
      await timeSteps(timing, async () => {
        await wholeModel.trainOnBatch(images, y);
      }),
    );

    return {
      firstTrainable: model.layers[firstTrainable].name,
      cut: model.layers[cut].name,
      weights: backbone.weightsSource,
      trainableParams: trainableParams(wholeModel),
      forward,
      fineTuneCachedCut,
      fineTunePrefixPerStep,
      fineTuneWholeModel,
    };
  } finally {
    for (const o of owned) o.dispose();
    tf.dispose(tensors);
    for (const o of optimizers) o.dispose();
    releaseLayers(layers);
  }
}
