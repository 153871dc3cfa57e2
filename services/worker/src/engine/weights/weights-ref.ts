import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where a backbone's weights come from: a tfjs layers-format model
 * (model.json + binary shards) in a local folder, behind an http(s) URL, or in
 * the cluster's NATS Object Store (`tlsweep weights push`). Pure parsing, no
 * tfjs: the coordinator validates specs with it.
 */
export type WeightsRef =
  | { kind: 'file'; /** Absolute path of model.json. */ path: string; text: string }
  | { kind: 'http'; url: string; text: string }
  | { kind: 'objstore'; name: string; text: string };

/** Names `tlsweep weights push` accepts: they become Object Store object-name prefixes. */
export const WEIGHTS_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const WEIGHTS_REF_FORMS =
  'an absolute path (a folder holding model.json, or the model.json file), file:///…, http(s)://…/model.json, or objstore:<name>';

/** A ref that cannot be parsed; the message says which forms are allowed. */
export class WeightsRefError extends Error {
  readonly code = 'WEIGHTS_REF';
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = 'WeightsRefError';
  }
}

/** A folder is taken to hold model.json; a path ending in .json is the file itself. */
function modelJsonPath(path: string): string {
  return path.endsWith('.json') ? path : `${path.replace(/\/+$/, '')}/model.json`;
}

/**
 * Parses a weights ref.
 * @throws WeightsRefError naming the allowed forms.
 */
export function parseWeightsRef(text: string): WeightsRef {
  if (typeof text !== 'string' || text.trim() === '') throw new WeightsRefError(`empty weights ref; use ${WEIGHTS_REF_FORMS}`);
  if (text.startsWith('objstore:')) {
    const name = text.slice('objstore:'.length);
    if (!WEIGHTS_NAME_RE.test(name)) {
      throw new WeightsRefError(`bad Object Store name in ${JSON.stringify(text)}: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    return { kind: 'objstore', name, text };
  }
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new WeightsRefError(`bad URL ${JSON.stringify(text)}`);
    }
    if (!url.pathname.endsWith('.json')) {
      throw new WeightsRefError(`a weights URL must name the model's JSON file (…/model.json); got ${JSON.stringify(text)}`);
    }
    return { kind: 'http', url: url.href, text };
  }
  if (text.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(text);
    } catch (err) {
      throw new WeightsRefError(`bad file URL ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
    return { kind: 'file', path: modelJsonPath(path), text };
  }
  // Relative paths would resolve against each worker's own working directory.
  if (isAbsolute(text)) return { kind: 'file', path: modelJsonPath(text), text };
  throw new WeightsRefError(`unrecognised weights ref ${JSON.stringify(text)}; use ${WEIGHTS_REF_FORMS}`);
}
