import * as tf from '@tensorflow/tfjs';
import { InceptionV3Model } from 'nsfwjs/models/inception_v3';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';

/** The nsfwjs release whose bundled weights tlsweep loads offline. */
export const NSFWJS_VERSION = '4.3.0';

/** The bundled Keras LayersModels tlsweep uses. */
export type NsfwjsModelName = 'mobilenet_v2' | 'inception_v3';

export interface KerasLayerConfig {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

export interface KerasModelTopology {
  model_config: {
    class_name: string;
    config: {
      name: string;
      layers: KerasLayerConfig[];
      input_layers: unknown[];
      output_layers: unknown[];
    };
  };
  [key: string]: unknown;
}

/** nsfwjs' `ModelDefinition` (its own .d.ts does not resolve under NodeNext). */
interface NsfwjsModelDefinition {
  modelJson(): Promise<{ default: { modelTopology: KerasModelTopology; weightsManifest: tf.io.WeightsManifestConfig } }>;
  /** Each bundle's default export is one shard, base64-encoded, in manifest order. */
  weightBundles: Array<() => Promise<{ default: string }>>;
}

const DEFINITIONS: Record<NsfwjsModelName, NsfwjsModelDefinition> = {
  mobilenet_v2: MobileNetV2Model as unknown as NsfwjsModelDefinition,
  inception_v3: InceptionV3Model as unknown as NsfwjsModelDefinition,
};

/** A bundled model: the saved Keras topology and every weight, decoded. */
export interface DecodedNsfwjsModel {
  topology: KerasModelTopology;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

/** "ImageNet-initialised, fine-tuned on a 5-class NSFW task": what the weights are, for leaderboards. */
export function nsfwjsWeightsSource(name: NsfwjsModelName): string {
  return `nsfwjs@${NSFWJS_VERSION} ${name} (ImageNet-initialised, fine-tuned on a 5-class NSFW task)`;
}

async function decode(name: NsfwjsModelName): Promise<DecodedNsfwjsModel> {
  const definition = DEFINITIONS[name];
  const json = (await definition.modelJson()).default;
  const paths = json.weightsManifest.flatMap((group) => group.paths);
  const bundles = definition.weightBundles;
  if (paths.length !== bundles.length) {
    throw new Error(`nsfwjs ${name} lists ${paths.length} weight shards but ships ${bundles.length}`);
  }
  const shards = await Promise.all(bundles.map(async (load) => Buffer.from((await load()).default, 'base64')));
  const joined = Buffer.concat(shards);
  const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer;
  return {
    topology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData,
  };
}

// Decoding the base64 shards takes longer than building a model from them;
// do it once per process and model and hand every caller fresh weights.
const decoded = new Map<NsfwjsModelName, Promise<DecodedNsfwjsModel>>();

/** The bundled model `name`, decoded once per process (a failed decode is retried on the next call). */
export function decodeNsfwjsModel(name: NsfwjsModelName): Promise<DecodedNsfwjsModel> {
  let pending = decoded.get(name);
  if (!pending) {
    pending = decode(name).catch((err: unknown) => {
      decoded.delete(name);
      throw err;
    });
    decoded.set(name, pending);
  }
  return pending;
}

/**
 * A copy of `source` cut after layer `last` (its output is the model's),
 * with the input set to `size`×`size`×3 and the training config (which
 * belongs to the dropped NSFW head) removed.
 */
export function cutTopology(source: KerasModelTopology, last: string, size: number): KerasModelTopology {
  const topology = structuredClone(source);
  const config = topology.model_config.config;
  const end = config.layers.findIndex((l) => l.name === last);
  if (end < 0) throw new Error(`nsfwjs model '${config.name}' has no layer '${last}'`);
  config.layers = config.layers.slice(0, end + 1);
  config.output_layers = [[last, 0, 0]];
  delete topology.training_config;
  for (const layer of config.layers) {
    if (layer.class_name === 'InputLayer') layer.config.batch_input_shape = [null, size, size, 3];
  }
  return topology;
}

/**
 * Builds a LayersModel from `topology` with the bundled weights of `model`.
 * The manifest also holds the NSFW head's weights, which are not loaded.
 */
export async function loadNsfwjsLayersModel(
  model: DecodedNsfwjsModel,
  topology: KerasModelTopology,
): Promise<tf.LayersModel> {
  const { weightSpecs, weightData } = model;
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs, weightData }), { strict: false });
}
