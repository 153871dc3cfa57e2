import * as tf from '@tensorflow/tfjs';
import type { Backbone } from './backbones/backbone.js';
import type { Head } from './head.js';
import type { PreprocessMode } from './preprocess.js';

/** The `tlsweep.json` beside an exported model: what `tlsweep predict` needs to feed it. */
export interface TlsweepModelMeta {
  format: 'tlsweep-model';
  version: 1;
  /** Output unit i is class `classNames[i]`. */
  classNames: string[];
  /** [H, W] of the model's input. */
  inputSize: [number, number];
  /** How images with pixels in [0, 1] become the model's input (preprocess.ts). */
  preprocessing: PreprocessMode;
  backbone: string;
  weightsSource: string;
  /** Set by the worker that stored the model. */
  trialId?: string;
  sweepId?: string;
  metrics?: { valAccuracy: number; valLoss: number; testAccuracy: number; testLoss: number };
}

/** A trained full model, serialised in the tfjs layers format with one weights file. */
export interface ExportedModel {
  /** model.json text; its manifest names one file, `weightsPath`. */
  modelJson: string;
  weightsPath: string;
  weightData: ArrayBuffer;
  meta: TlsweepModelMeta;
}

/** File name of the single weights file of an exported model. */
export const EXPORTED_WEIGHTS_FILE = 'weights.bin';

/**
 * Serialises backbone + head as one flat LayersModel (images → class
 * probabilities) with the weights they hold now, so it loads with plain
 * `tf.loadLayersModel`. The model shares the trial's layers: it is built,
 * saved and dropped without disposing anything.
 */
export async function exportFullModel(backbone: Backbone, head: Head, classNames: string[]): Promise<ExportedModel> {
  const features = backbone.model.outputs[0];
  const full = tf.model({ inputs: backbone.model.inputs, outputs: head.apply(features), name: `tlsweep_${backbone.name}` });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await full.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const a = artifacts!;
  const weightData = a.weightData === undefined ? new ArrayBuffer(0) : new tf.io.CompositeArrayBuffer(a.weightData).slice();
  const modelJson = JSON.stringify({
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    modelTopology: a.modelTopology,
    weightsManifest: [{ paths: [EXPORTED_WEIGHTS_FILE], weights: a.weightSpecs ?? [] }],
  });
  return {
    modelJson,
    weightsPath: EXPORTED_WEIGHTS_FILE,
    weightData,
    meta: {
      format: 'tlsweep-model',
      version: 1,
      classNames: [...classNames],
      inputSize: backbone.inputSize,
      preprocessing: backbone.preprocessing,
      backbone: backbone.name,
      weightsSource: backbone.weightsSource,
    },
  };
}
