/**
 * What the coordinator must know about each backbone to validate a spec,
 * without loading TensorFlow.js: names, input sizes, layer counts. The
 * registry builds the models; a test checks the layer counts against them.
 */
export interface BackboneInfo {
  /** Input size used when the spec sets none. */
  defaultSize: number;
  /** Smallest square input the architecture accepts. */
  minSize: number;
  /** Layers of the backbone model (input included): unfreeze must be below this. */
  layers: number;
  /**
   * Whole blocks (Backbone.blockStarts), what `unfreeze: { blocks: N }` may
   * ask for at most; absent when unknown (the worker checks then).
   */
  blocks?: number;
  /** Whether weights ship with tlsweep (false: random init). */
  pretrained: boolean;
}

export const BACKBONE_CATALOG: Readonly<Record<string, BackboneInfo>> = Object.freeze({
  // Keras MobileNetV2 from nsfwjs@4.3.0, cut after out_relu.
  mobilenet_v2: { defaultSize: 96, minSize: 32, layers: 155, blocks: 17, pretrained: true },
  tiny_cnn: { defaultSize: 32, minSize: 16, layers: 24, blocks: 2, pretrained: false },
});

/** Names accepted by loadBackbone and by sweep specs. */
export const KNOWN_BACKBONES: readonly string[] = Object.freeze(Object.keys(BACKBONE_CATALOG));

/** The catalog entry of `name`, or undefined. */
export function backboneInfo(name: string): BackboneInfo | undefined {
  return Object.hasOwn(BACKBONE_CATALOG, name) ? BACKBONE_CATALOG[name] : undefined;
}
