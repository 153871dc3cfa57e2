import * as tf from '@tensorflow/tfjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ModelDirOptions {
  /** Put `<prefix>/` before every weight name, as Keras conversions of nested models do. */
  prefix?: string;
  /** Split the weight bytes over this many shard files. @default 1 */
  shards?: number;
  /** Rewrite the manifest entries before writing (drop, rename, reshape). */
  editSpecs?: (specs: tf.io.WeightsManifestEntry[]) => tf.io.WeightsManifestEntry[];
}

/** The model's weights as tfjs saves them: specs and one buffer. */
export async function saveArtifacts(model: tf.LayersModel): Promise<{ topology: object; specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer }> {
  let out: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    out = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return { topology: out!.modelTopology as object, specs: out!.weightSpecs!, data: out!.weightData as ArrayBuffer };
}

/** Writes model.json + shard files the way tfjs' converter lays them out. */
export function writeModelDir(dir: string, a: { topology?: object; specs: tf.io.WeightsManifestEntry[]; data: ArrayBuffer }, o: ModelDirOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  const bytes = new Uint8Array(a.data);
  const n = o.shards ?? 1;
  const size = Math.ceil(bytes.byteLength / n);
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = `group1-shard${i + 1}of${n}.bin`;
    writeFileSync(join(dir, p), bytes.subarray(i * size, Math.min(bytes.byteLength, (i + 1) * size)));
    paths.push(p);
  }
  let specs = a.specs.map((s) => ({ ...s, name: o.prefix ? `${o.prefix}/${s.name}` : s.name }));
  if (o.editSpecs) specs = o.editSpecs(specs);
  writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: a.topology, weightsManifest: [{ paths, weights: specs }] }));
  return dir;
}
