import { EngineConfigError } from '../errors.js';
import type { Backbone, BackboneOptions } from './backbone.js';
import { backboneInfo, KNOWN_BACKBONES, type BackboneInfo } from './catalog.js';
import { loadMobileNetV2 } from './mobilenet-v2.js';
import { buildTinyCnn } from './tiny-cnn.js';
import { loadWeightsInto } from '../weights/load-weights.js';

export { KNOWN_BACKBONES };

interface BackboneEntry extends BackboneInfo {
  load(size: number, seed: number): Promise<Backbone>;
}

const LOADERS: Record<string, BackboneEntry['load']> = {
  mobilenet_v2: (size) => loadMobileNetV2(size),
  tiny_cnn: async (size, seed) => buildTinyCnn(size, seed),
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
 * @throws EngineConfigError for an unknown name or a size below the backbone's minimum.
 */
export function backboneInputSize(name: string, requested?: number): [number, number] {
  const entry = entryFor(name);
  const size = requested ?? entry.defaultSize;
  if (!Number.isInteger(size) || size < entry.minSize) {
    throw new EngineConfigError(
      `imageSize for backbone '${name}' must be an integer >= ${entry.minSize}; got ${String(requested)}`,
    );
  }
  return [size, size];
}

/** Loads a backbone with fresh weights; the caller owns (and disposes) `model`. */
export async function loadBackbone(name: string, opts: BackboneOptions = {}): Promise<Backbone> {
  const [size] = backboneInputSize(name, opts.imageSize);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) {
    throw new EngineConfigError(`seed must be a non-negative integer; got ${String(opts.seed)}`);
  }
  const backbone = await entryFor(name).load(size, seed);
  if (opts.weights === undefined) return backbone;
  try {
    const loaded = await loadWeightsInto(backbone.model, opts.weights, opts.weightsAccess);
    return { ...backbone, pretrained: true, weightsSource: loaded.source };
  } catch (err) {
    backbone.model.dispose();
    throw err;
  }
}
