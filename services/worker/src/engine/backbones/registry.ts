import { EngineConfigError } from '../errors.js';
import type { Backbone, BackboneOptions } from './backbone.js';
import { backboneInfo, KNOWN_BACKBONES, type BackboneInfo } from './catalog.js';
import { buildDenseNet121 } from './densenet121.js';
import { buildMobileNet } from './mobilenet.js';
import { loadMobileNetV2 } from './mobilenet-v2.js';
import { buildResNet50 } from './resnet50.js';
import { buildTinyCnn } from './tiny-cnn.js';
import { buildVgg16 } from './vgg16.js';

export { KNOWN_BACKBONES };

interface BackboneEntry extends BackboneInfo {
  load(size: number, seed: number): Promise<Backbone>;
}

const LOADERS: Record<string, BackboneEntry['load']> = {
  mobilenet_v2: (size) => loadMobileNetV2(size),
  tiny_cnn: async (size, seed) => buildTinyCnn(size, seed),
  vgg16: async (size, seed) => buildVgg16(size, seed),
  resnet50: async (size, seed) => buildResNet50(size, seed),
  mobilenet: async (size, seed) => buildMobileNet(size, seed),
  densenet121: async (size, seed) => buildDenseNet121(size, seed),
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
  return entryFor(name).load(size, seed);
}
