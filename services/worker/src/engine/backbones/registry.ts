import { EngineConfigError } from '../errors.js';
import type { Backbone, BackboneOptions, BackboneWeights } from './backbone.js';
import { backboneInfo, KNOWN_BACKBONES, type BackboneInfo } from './catalog.js';
import { buildDenseNet121 } from './densenet121.js';
import { buildMobileNet } from './mobilenet.js';
import { loadMobileNetV2 } from './mobilenet-v2.js';
import { buildResNet50 } from './resnet50.js';
import { buildEfficientNetB0 } from './efficientnet-b0.js';
import { buildInceptionV3, loadInceptionV3 } from './inception-v3.js';
import { buildNasNetMobile } from './nasnet-mobile.js';
import { buildTinyCnn } from './tiny-cnn.js';
import { buildVgg16 } from './vgg16.js';
import { loadWeightsInto } from '../weights/load-weights.js';
import { isGraphBackbone, type GraphBackboneSpec } from './graph-backbone-spec.js';
import { loadGraphBackbone } from './graph-backbone.js';

export { KNOWN_BACKBONES };

interface BackboneEntry extends BackboneInfo {
  load(size: number, seed: number, weights: BackboneWeights): Promise<Backbone>;
}

const WEIGHTS: readonly BackboneWeights[] = ['bundled', 'none'];

function noCodeBuiltVariant(name: string): never {
  throw new EngineConfigError(`weights 'none' is not available for backbone '${name}': it has no code-built architecture; use weights 'bundled'`);
}

const LOADERS: Record<string, BackboneEntry['load']> = {
  mobilenet_v2: (size, _seed, weights) => (weights === 'none' ? noCodeBuiltVariant('mobilenet_v2') : loadMobileNetV2(size)),
  tiny_cnn: async (size, seed) => buildTinyCnn(size, seed),
  vgg16: async (size, seed) => buildVgg16(size, seed),
  resnet50: async (size, seed) => buildResNet50(size, seed),
  mobilenet: async (size, seed) => buildMobileNet(size, seed),
  densenet121: async (size, seed) => buildDenseNet121(size, seed),
  inception_v3: async (size, seed, weights) => (weights === 'none' ? buildInceptionV3(size, seed) : loadInceptionV3(size)),
  efficientnet_b0: async (size, seed) => buildEfficientNetB0(size, seed),
  nasnet_mobile: async (size, seed) => buildNasNetMobile(size, seed),
};

function entryFor(name: string): BackboneEntry {
  const info = backboneInfo(name);
  const entry = info && Object.hasOwn(LOADERS, name) ? { ...info, load: LOADERS[name] } : undefined;
  if (!entry) {
    throw new EngineConfigError(`unknown backbone '${name}'; known backbones: ${KNOWN_BACKBONES.join(', ')}`);
  }
  return entry;
}

/**
 * The [H, W] input size a backbone will be built at.
 * @param requested Square size in pixels; the backbone's default when absent.
 * @param graph required for a `graph:` backbone, whose size is its spec's inputSize.
 * @throws EngineConfigError for an unknown name or a size below the backbone's minimum.
 */
export function backboneInputSize(name: string, requested?: number, graph?: GraphBackboneSpec): [number, number] {
  // A graph backbone's size is its own (the spec resolved it), whatever the sweep's imageSize.
  if (isGraphBackbone(name)) {
    const { inputSize } = graphSpecOf(name, graph);
    return [inputSize, inputSize];
  }
  const entry = entryFor(name);
  const size = requested ?? entry.defaultSize;
  if (!Number.isInteger(size) || size < entry.minSize) {
    throw new EngineConfigError(
      `imageSize for backbone '${name}' must be an integer >= ${entry.minSize}; got ${String(requested)}`,
    );
  }
  return [size, size];
}

function graphSpecOf(name: string, graph: GraphBackboneSpec | undefined): GraphBackboneSpec {
  if (!graph) throw new EngineConfigError(`backbone '${name}' is a graph backbone but the trial carries no graph spec (where its GraphModel is)`);
  return graph;
}

/** Loads a backbone with fresh weights; the caller owns (and disposes) `model`. */
export async function loadBackbone(name: string, opts: BackboneOptions = {}): Promise<Backbone> {
  if (isGraphBackbone(name)) {
    if (opts.weightsRef !== undefined) throw new EngineConfigError(`graph backbone '${name}' takes its weights from its graph; weights refs apply to catalog backbones`);
    const graph = graphSpecOf(name, opts.graph);
    if (opts.imageSize !== undefined && opts.imageSize !== graph.inputSize) {
      throw new EngineConfigError(`imageSize ${opts.imageSize} differs from the inputSize ${graph.inputSize} of graph backbone '${name}'`);
    }
    return loadGraphBackbone(name, graph, opts.weightsAccess);
  }
  const [size] = backboneInputSize(name, opts.imageSize);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) {
    throw new EngineConfigError(`seed must be a non-negative integer; got ${String(opts.seed)}`);
  }
  const weights = opts.weights ?? 'bundled';
  if (!WEIGHTS.includes(weights)) {
    throw new EngineConfigError(`weights must be one of ${WEIGHTS.join(', ')}; got ${String(opts.weights)}`);
  }
  const backbone = await entryFor(name).load(size, seed, weights);
  if (opts.weightsRef === undefined) return backbone;
  try {
    const loaded = await loadWeightsInto(backbone.model, opts.weightsRef, opts.weightsAccess);
    return { ...backbone, pretrained: true, weightsSource: loaded.source };
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
}
