import * as tf from '@tensorflow/tfjs';
import { readWeights, type WeightsAccess, type WeightsArtifacts } from './read-weights.js';
import { WeightsError } from './weights-error.js';
import { parseWeightsRef } from './weights-ref.js';

/** What loading did: every weight of the model was assigned; file weights it has no use for are counted. */
export interface LoadedWeights {
  /** Weights of the model assigned from the file. */
  assigned: number;
  /** Names of file weights the model has no place for (a classifier head, say). */
  ignored: string[];
  sha256: string;
  /** `<ref> (sha256:<first 12 hex>)`, for the leaderboard's weights source. */
  source: string;
}

/**
 * `<layer>/<weight>`: Keras-converted files may put the model's name (or a
 * scope) in front and `:0` behind; matching ignores both.
 */
export function weightKey(name: string): string {
  const parts = name.replace(/:\d+$/, '').split('/');
  return parts.slice(-2).join('/');
}

const MAX_LISTED = 8;

/**
 * Writes every weight of `model` from `artifacts`, matched by layer and
 * weight name. Nothing is written unless every weight is found with the right
 * shape; the error names each missing or mismatched weight and both shapes.
 */
export function assignWeights(model: tf.LayersModel, artifacts: Pick<WeightsArtifacts, 'specs' | 'data'>, where: string): { assigned: number; ignored: string[] } {
  const byKey = new Map<string, tf.io.WeightsManifestEntry[]>();
  for (const spec of artifacts.specs) {
    const key = weightKey(spec.name);
    byKey.set(key, [...(byKey.get(key) ?? []), spec]);
  }
  const problems: string[] = [];
  const plan: Array<{ variable: tf.LayerVariable; name: string }> = [];
  const used = new Set<string>();
  for (const variable of model.weights) {
    const key = weightKey(variable.originalName);
    const found = byKey.get(key);
    if (!found) {
      problems.push(`missing ${key} (expected shape [${variable.shape.join(',')}])`);
      continue;
    }
    if (found.length > 1) {
      problems.push(`${key} appears ${found.length} times (${found.map((s) => s.name).join(', ')})`);
      continue;
    }
    const [spec] = found;
    used.add(key);
    if (spec.shape.length !== variable.shape.length || spec.shape.some((d, i) => d !== variable.shape[i])) {
      problems.push(`${key}: expected shape [${variable.shape.join(',')}], found [${spec.shape.join(',')}] (${spec.name})`);
      continue;
    }
    plan.push({ variable, name: spec.name });
  }
  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED).join('; ');
    const more = problems.length > MAX_LISTED ? `; and ${problems.length - MAX_LISTED} more` : '';
    throw new WeightsError(
      `${where} do not fit backbone model '${model.name}' (${problems.length} of ${model.weights.length} weights): ${listed}${more}`,
      { retryable: false },
    );
  }
  let tensors: tf.NamedTensorMap;
  try {
    // Dequantizes uint8/uint16-quantized weights exactly as tfjs' own loaders do.
    tensors = tf.io.decodeWeights(artifacts.data, artifacts.specs);
  } catch (err) {
    throw new WeightsError(`${where}: cannot decode the weights: ${(err as Error).message}`, { retryable: false, cause: err });
  }
  try {
    for (const { variable, name } of plan) {
      const t = tensors[name];
      if (t.dtype === variable.dtype) {
        variable.write(t);
      } else {
        const cast = tf.cast(t, variable.dtype);
        variable.write(cast);
        cast.dispose();
      }
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
  return {
    assigned: plan.length,
    ignored: [...byKey.keys()].filter((k) => !used.has(k)),
  };
}

/**
 * Loads the weights `refText` points to into every weight of `model`.
 * @throws WeightsError (or WeightsRefError for a malformed ref).
 */
export async function loadWeightsInto(model: tf.LayersModel, refText: string, access: WeightsAccess = {}): Promise<LoadedWeights> {
  const ref = parseWeightsRef(refText);
  const artifacts = await readWeights(ref, access);
  const { assigned, ignored } = assignWeights(model, artifacts, `weights ${ref.text}`);
  return { assigned, ignored, sha256: artifacts.sha256, source: `${ref.text} (sha256:${artifacts.sha256.slice(0, 12)})` };
}
