import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MobileNetV2MidModel } from 'nsfwjs/models/mobilenet_v2_mid';

/**
 * The GraphModel nsfwjs@4.3.0 ships as `mobilenet_v2_mid`: a TF Hub MobileNetV2
 * feature-vector `hub.KerasLayer` (width 1.4, 224×224 input, 1792 features)
 * with a Dense + softmax 5-class NSFW head, converted by tfjs-converter 1.7.
 * The package bundles model.json and the shards as JS modules (base64
 * shards); this writes them out as the converter lays a model folder out
 * (model.json + `group1-shardNofM` files), which is what users point a graph
 * backbone at.
 */
interface Bundle {
  modelJson(): Promise<{ default: { weightsManifest: Array<{ paths: string[] }> } }>;
  weightBundles: Array<() => Promise<{ default: string }>>;
}

/** Nodes of that graph: the 1792-d feature vector (2-D) and the last 7×7×1792 feature map (4-D). */
export const MID_FEATURE_VECTOR = 'feature_vector/SpatialSqueeze';
export const MID_FEATURE_MAP = 'MobilenetV2/Conv_1/Relu6';

/** Writes the bundled graph model into `dir` (created); returns `dir`. */
export async function writeNsfwjsGraphModel(dir: string): Promise<string> {
  const bundle = MobileNetV2MidModel as unknown as Bundle;
  const json = (await bundle.modelJson()).default;
  const paths = json.weightsManifest.flatMap((g) => g.paths);
  if (paths.length !== bundle.weightBundles.length) throw new Error(`nsfwjs mobilenet_v2_mid lists ${paths.length} shards but ships ${bundle.weightBundles.length}`);
  mkdirSync(dir, { recursive: true });
  for (const [i, load] of bundle.weightBundles.entries()) writeFileSync(join(dir, paths[i]), Buffer.from((await load()).default, 'base64'));
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  return dir;
}
