import * as tf from '@tensorflow/tfjs';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import type { Backbone } from './backbone.js';
import { blockStartsByName, mobileNetV2BlockOf } from './blocks.js';


const NSFWJS_VERSION = '4.3.0';
const LAST_FEATURE_LAYER = 'out_relu';
const WEIGHTS_SOURCE =
  `nsfwjs@${NSFWJS_VERSION} mobilenet_v2 (ImageNet-initialised, fine-tuned on a 5-class NSFW task)`;

interface KerasLayerConfig {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

interface KerasModelTopology {
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

const NSFWJS_MOBILENET_V2 = MobileNetV2Model as unknown as NsfwjsModelDefinition;

interface DecodedModel {
  topology: KerasModelTopology;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

// Decoding the base64 shards takes longer than building a model from them;
// do it once per process and hand every caller fresh weights.
let decoded: Promise<DecodedModel> | null = null;

async function decodeNsfwjsModel(): Promise<DecodedModel> {
  const json = (await NSFWJS_MOBILENET_V2.modelJson()).default;
  const paths = json.weightsManifest.flatMap((group) => group.paths);
  const bundles = NSFWJS_MOBILENET_V2.weightBundles;
  if (paths.length !== bundles.length) {
    throw new Error(`nsfwjs mobilenet_v2 lists ${paths.length} weight shards but ships ${bundles.length}`);
  }
  const shards = await Promise.all(
    bundles.map(async (load) => Buffer.from((await load()).default, 'base64')),
  );
  const joined = Buffer.concat(shards);
  const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer;
  return {
    topology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData,
  };
}

/**
 * Keras' `correct_pad`: before a stride-2 3×3 valid convolution MobileNetV2
 * pads ((0,1),(0,1)) at even sizes and ((1,1),(1,1)) at odd ones, so the
 * saved 224-px padding is wrong at some other sizes.
 */
function correctPad(size: number): [[number, number], [number, number]] {
  const lead = size % 2 === 0 ? 0 : 1;
  return [
    [lead, 1],
    [lead, 1],
  ];
}

/** The saved topology at another input size, cut after `out_relu`. */
function topologyAt(source: KerasModelTopology, size: number): KerasModelTopology {
  const topology = structuredClone(source);
  const config = topology.model_config.config;
  const end = config.layers.findIndex((l) => l.name === LAST_FEATURE_LAYER);
  if (end < 0) throw new Error(`nsfwjs mobilenet_v2 has no layer '${LAST_FEATURE_LAYER}'`);
  config.layers = config.layers.slice(0, end + 1);
  config.output_layers = [[LAST_FEATURE_LAYER, 0, 0]];
  // Training config belongs to the dropped NSFW head.
  delete topology.training_config;
  let spatial = size;
  for (const layer of config.layers) {
    if (layer.class_name === 'InputLayer') {
      layer.config.batch_input_shape = [null, size, size, 3];
    } else if (layer.class_name === 'ZeroPadding2D') {
      // Every ZeroPadding2D in MobileNetV2 precedes a stride-2 block that maps s to ceil(s / 2).
      layer.config.padding = correctPad(spatial);
      spatial = Math.ceil(spatial / 2);
    }
  }
  return topology;
}

/**
 * The MobileNetV2 feature extractor shipped (offline) in nsfwjs, without its
 * head, at `size`×`size` pixels. Expects pixels in [0, 1], as nsfwjs does.
 */
export async function loadMobileNetV2(size: number): Promise<Backbone> {
  decoded ??= decodeNsfwjsModel().catch((err: unknown) => {
    decoded = null;
    throw err;
  });
  const { topology, weightSpecs, weightData } = await decoded;
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: topologyAt(topology, size), weightSpecs, weightData }),
    // The manifest also holds the NSFW head's weights, which are not loaded.
    { strict: false },
  );
  return {
    name: 'mobilenet_v2',
    model,
    inputSize: [size, size],
    // nsfwjs feeds the network x / 255, i.e. exactly the [0, 1] images we receive.
    preprocess: (x01) => x01,
    preprocessing: 'unit',
    blockStarts: blockStartsByName(model, mobileNetV2BlockOf),
    pretrained: true,
    weightsSource: WEIGHTS_SOURCE,
  };
}
