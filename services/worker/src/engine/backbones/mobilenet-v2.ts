import type { Backbone } from './backbone.js';
import { blockStartsByName, mobileNetV2BlockOf } from './blocks.js';
import { correctPad } from './correct-pad.js';
import { cutTopology, decodeNsfwjsModel, loadNsfwjsLayersModel, nsfwjsWeightsSource, type KerasModelTopology } from './nsfwjs-bundle.js';


const LAST_FEATURE_LAYER = 'out_relu';

/** The saved topology at another input size, cut after `out_relu`. */
function topologyAt(source: KerasModelTopology, size: number): KerasModelTopology {
  const topology = cutTopology(source, LAST_FEATURE_LAYER, size);
  let spatial = size;
  for (const layer of topology.model_config.config.layers) {
    if (layer.class_name === 'ZeroPadding2D') {
      // Every ZeroPadding2D in MobileNetV2 precedes a stride-2 block that maps s to ceil(s / 2).
      layer.config.padding = correctPad(spatial, 3);
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
  const bundle = await decodeNsfwjsModel('mobilenet_v2');
  const model = await loadNsfwjsLayersModel(bundle, topologyAt(bundle.topology, size));
  return {
    name: 'mobilenet_v2',
    model,
    inputSize: [size, size],
    // nsfwjs feeds the network x / 255, i.e. exactly the [0, 1] images we receive.
    preprocess: (x01) => x01,
    preprocessing: 'unit',
    blockStarts: blockStartsByName(model, mobileNetV2BlockOf),
    pretrained: true,
    weightsSource: nsfwjsWeightsSource('mobilenet_v2'),
  };
}
