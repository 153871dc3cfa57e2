/**
 * How tfjs models sit in the NATS Object Store, shared by the coordinator
 * (push, list, export, prune) and workers (read weights, store models). Pure:
 * no tfjs, no NATS.
 *
 * A model `<name>` is the objects `<name>/weights.bin` (every shard joined in
 * manifest order) and `<name>/model.json` (its manifest rewritten to that one
 * file), plus `<name>/tlsweep.json` for exported trial models. model.json is
 * written last: its presence means the model is complete.
 */

/** Backbone weights pushed with `tlsweep weights push`. */
export const WEIGHTS_BUCKET = 'tlsweep-weights';
/** Full models (backbone + head) of the best trials. */
export const MODELS_BUCKET = 'tlsweep-models';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const TLSWEEP_JSON = 'tlsweep.json';

/** Object name of one file of a stored model. */
export function objectName(model: string, file: string): string {
  return `${model}/${file}`;
}

/** What a model of `MODELS_BUCKET` is called: trial ids are unique across sweeps. */
export function trialModelName(trialId: string): string {
  return trialId;
}

/** Bytes of one weight as stored (quantized weights are smaller than their dtype). */
export function storedWeightBytes(spec: { shape: number[]; dtype: string; quantization?: { dtype: string } }): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const bytes: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };
  const b = bytes[dtype];
  if (b === undefined) throw new Error(`weight dtype ${dtype} is not supported`);
  return n * b;
}
