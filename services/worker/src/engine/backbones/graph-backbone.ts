import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { EngineConfigError } from '../errors.js';
import { applyPreprocessing } from '../preprocess.js';
import { readWeights, type WeightsAccess, type WeightsArtifacts } from '../weights/read-weights.js';
import { WeightsError } from '../weights/weights-error.js';
import { parseWeightsRef } from '../weights/weights-ref.js';
import type { Backbone } from './backbone.js';
import type { GraphBackboneSpec } from './graph-backbone-spec.js';
import { GraphFeaturesLayer } from './graph-features-layer.js';

interface GraphNode {
  name: string;
  op: string;
}

/** How many node names an error lists at most. */
const LISTED = 6;

/**
 * sha256 of the graph's topology and weights: the model's identity in the
 * weights source and so in the feature-cache key (two graphs with the same
 * weights but other ops compute other features).
 */
function graphDigest(a: WeightsArtifacts): string {
  return createHash('sha256').update(JSON.stringify(a.modelJson.modelTopology ?? null)).update(a.sha256).digest('hex');
}

/**
 * The node `output` names: the node of that exact name, else the one node
 * whose name ends with `/<output>`; the graph's own single output when
 * `output` is null. Converted TF Hub models carry long scope prefixes
 * (`StatefulPartitionedCall/…/predict/feature_vector/SpatialSqueeze`), so the
 * short suffix is what users write.
 */
export function resolveOutputNode(nodes: readonly GraphNode[], output: string | null, graphOutputs: readonly string[], where: string): string {
  if (output === null) {
    if (graphOutputs.length !== 1) {
      throw new EngineConfigError(`${where}: the graph has ${graphOutputs.length} outputs (${graphOutputs.join(', ')}); set output to the feature node`);
    }
    return graphOutputs[0];
  }
  const name = output.replace(/:0$/, '');
  const exact = nodes.find((n) => n.name === name);
  if (exact) return exact.name;
  const matches = nodes.filter((n) => n.name.endsWith(`/${name}`));
  if (matches.length === 1) return matches[0].name;
  if (matches.length > 1) {
    throw new EngineConfigError(`${where}: output '${output}' matches ${matches.length} nodes (${matches.slice(0, LISTED).map((n) => n.name).join(', ')}); give more of the name`);
  }
  const computed = nodes.filter((n) => n.op !== 'Const' && n.op !== 'Placeholder');
  throw new EngineConfigError(
    `${where}: no node named '${output}' (nor ending in '/${name}'); the graph's outputs: ${graphOutputs.join(', ')}; its last nodes: ${computed.slice(-LISTED).map((n) => n.name).join(', ')}`,
  );
}

/** The graph's image input must take [n, size, size, 3] float32. */
function checkInput(graph: tf.GraphModel, size: number, where: string): void {
  if (graph.inputs.length !== 1) {
    throw new EngineConfigError(`${where}: the graph takes ${graph.inputs.length} inputs (${graph.inputs.map((i) => i.name).join(', ')}); a feature-vector model takes one image batch`);
  }
  const [input] = graph.inputs;
  const shape = input.shape ?? [];
  if (shape.length !== 4 && shape.length !== 0) {
    throw new EngineConfigError(`${where}: the graph's input '${input.name}' has shape [${shape.join(',')}]; an image model takes [batch, height, width, 3]`);
  }
  const [, h, w, c] = shape;
  if ((h > 0 && h !== size) || (w > 0 && w !== size)) {
    throw new EngineConfigError(`${where}: the graph's input '${input.name}' is [${shape.join(',')}], fixed at ${h}×${w}; set inputSize: ${h} (the backbone's inputSize is ${size})`);
  }
  if (c > 0 && c !== 3) throw new EngineConfigError(`${where}: the graph's input '${input.name}' has ${c} channels; images have 3 (RGB)`);
  if (input.dtype !== 'float32') throw new EngineConfigError(`${where}: the graph's input '${input.name}' is ${input.dtype}; images are fed as float32`);
}

/**
 * Loads a TF Hub-style feature-vector GraphModel as a frozen backbone: read
 * model.json and its weights wherever `spec.ref` points (file, http(s),
 * Object Store: the same reader and per-process cache as backbone weights),
 * build the GraphModel, check its input, find the feature node and run one
 * image through it to learn the feature shape (4-D maps are pooled by the
 * engine, 2-D vectors are used as they are).
 *
 * @throws WeightsError when the files cannot be read or are no GraphModel; EngineConfigError when the graph does not fit the spec.
 */
export async function loadGraphBackbone(name: string, spec: GraphBackboneSpec, access: WeightsAccess = {}): Promise<Backbone> {
  const where = `graph backbone ${name} (${spec.ref})`;
  const artifacts = await readWeights(parseWeightsRef(spec.ref), access, where);
  const json = artifacts.modelJson;
  const topology = json.modelTopology as { node?: GraphNode[] } | undefined;
  if (!Array.isArray(topology?.node)) {
    const kind = typeof json.format === 'string' ? ` (format '${json.format}')` : '';
    throw new WeightsError(`${where}: model.json${kind} is not a tfjs GraphModel (no graph nodes); a layers model is given as 'weights' of a catalog backbone`, { retryable: false });
  }
  let graph: tf.GraphModel;
  try {
    graph = await tf.loadGraphModel(tf.io.fromMemory({
      modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
      weightSpecs: artifacts.specs,
      weightData: artifacts.data,
      format: json.format as string | undefined,
      generatedBy: json.generatedBy as string | undefined,
      convertedBy: json.convertedBy as string | null | undefined,
      ...(json.signature ? { signature: json.signature as object } : {}),
      ...(json.userDefinedMetadata ? { userDefinedMetadata: json.userDefinedMetadata as Record<string, unknown> } : {}),
      ...(json.modelInitializer ? { modelInitializer: json.modelInitializer as object } : {}),
    }));
  } catch (err) {
    throw new WeightsError(`${where}: cannot build the GraphModel: ${(err as Error).message}`, { retryable: false, cause: err });
  }
  try {
    const size = spec.inputSize;
    checkInput(graph, size, where);
    const node = resolveOutputNode(topology.node, spec.output, graph.outputNodes, where);
    let shape: number[];
    try {
      shape = tf.tidy(() => (graph.execute(tf.zeros([1, size, size, 3]), node) as tf.Tensor).shape);
    } catch (err) {
      throw new EngineConfigError(`${where}: running the graph to '${node}' failed: ${(err as Error).message}`, { cause: err });
    }
    if (shape.length !== 2 && shape.length !== 4) {
      throw new EngineConfigError(`${where}: node '${node}' gives a ${shape.length}-D output [${shape.join(',')}]; features must be 2-D [n, C] (a vector) or 4-D [n, H, W, C] (pooled)`);
    }
    const featureShape = shape.length === 2 ? [1, 1, shape[1]] : shape.slice(1);
    let params = 0;
    for (const tensors of Object.values(graph.weights)) for (const t of tensors) params += t.size;
    const layer = new GraphFeaturesLayer(graph, node, featureShape, params);
    const input = tf.input({ shape: [size, size, 3], name: 'image' });
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor, name: name.replace(/[^A-Za-z0-9_]/g, '_') });
    const digest = graphDigest(artifacts);
    return {
      name,
      model,
      inputSize: [size, size],
      preprocess: (x01) => applyPreprocessing(spec.preprocessing, x01),
      preprocessing: spec.preprocessing,
      blockStarts: [],
      pretrained: true,
      weightsSource: `${spec.ref} (sha256:${digest.slice(0, 12)})`,
      graph: { ref: spec.ref, output: node, sha256: digest },
    };
  } catch (err) {
    graph.dispose();
    throw err;
  }
}
