import { EngineConfigError } from '../errors.js';
import type { Backbone, BackboneOptions } from './backbone.js';
import { loadMobileNetV2, MOBILENET_V2_DEFAULT_SIZE, MOBILENET_V2_MIN_SIZE } from './mobilenet-v2.js';
import { buildTinyCnn, TINY_CNN_DEFAULT_SIZE, TINY_CNN_MIN_SIZE } from './tiny-cnn.js';

interface BackboneEntry {
  defaultSize: number;
  minSize: number;
  load(size: number, seed: number): Promise<Backbone>;
}

const REGISTRY: Record<string, BackboneEntry> = {
  mobilenet_v2: {
    defaultSize: MOBILENET_V2_DEFAULT_SIZE,
    minSize: MOBILENET_V2_MIN_SIZE,
    load: (size) => loadMobileNetV2(size),
  },
  tiny_cnn: {
    defaultSize: TINY_CNN_DEFAULT_SIZE,
    minSize: TINY_CNN_MIN_SIZE,
    load: async (size, seed) => buildTinyCnn(size, seed),
  },
};

/** Names accepted by {@link loadBackbone}. */
export const KNOWN_BACKBONES: readonly string[] = Object.freeze(Object.keys(REGISTRY));

function entryFor(name: string): BackboneEntry {
  const entry = Object.hasOwn(REGISTRY, name) ? REGISTRY[name] : undefined;
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
  return entryFor(name).load(size, seed);
}
