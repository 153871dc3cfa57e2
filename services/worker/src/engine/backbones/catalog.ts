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
  mobilenet_v2: { defaultSize: 96, minSize: 32, layers: 155, blocks: 18, pretrained: true },
  tiny_cnn: { defaultSize: 32, minSize: 16, layers: 24, blocks: 3, pretrained: false },
  // Keras applications built in code (include_top=False); 32 px is Keras' own minimum for each.
  vgg16: { defaultSize: 224, minSize: 32, layers: 19, blocks: 5, pretrained: false },
  resnet50: { defaultSize: 224, minSize: 32, layers: 175, blocks: 17, pretrained: false },
  mobilenet: { defaultSize: 224, minSize: 32, layers: 86, blocks: 14, pretrained: false },
  densenet121: { defaultSize: 224, minSize: 32, layers: 427, blocks: 62, pretrained: false },
  // Keras InceptionV3 from nsfwjs@4.3.0, cut at mixed10; Keras' minimum input is 75.
  inception_v3: { defaultSize: 299, minSize: 75, layers: 311, blocks: 12, pretrained: true },
  // Keras EfficientNetB0(include_top=False, weights=None), built in code.
  efficientnet_b0: { defaultSize: 224, minSize: 32, layers: 237, blocks: 18, pretrained: false },
  // Keras NASNetMobile(include_top=False, weights=None), built in code.
  nasnet_mobile: { defaultSize: 224, minSize: 32, layers: 769, blocks: 17, pretrained: false },
});

/** Names accepted by loadBackbone and by sweep specs. */
export const KNOWN_BACKBONES: readonly string[] = Object.freeze(Object.keys(BACKBONE_CATALOG));

/** The catalog entry of `name`, or undefined. */
export function backboneInfo(name: string): BackboneInfo | undefined {
  return Object.hasOwn(BACKBONE_CATALOG, name) ? BACKBONE_CATALOG[name] : undefined;
}
