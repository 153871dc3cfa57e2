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
  /**
   * Layer indices whose output is a clean cut (cleanCutIndices on the built
   * model), so the coordinator can tell which trials share a frozen prefix
   * without building it; written as ranges, `'0-3,12-23'`. Absent: unknown.
   */
  cleanCuts?: string;
  /** Backbone.blockStarts as ranges (to resolve `unfreeze: { blocks: N }` to a layer). Absent: unknown. */
  blockStarts?: string;
}

export const BACKBONE_CATALOG: Readonly<Record<string, BackboneInfo>> = Object.freeze({
  // Keras MobileNetV2 from nsfwjs@4.3.0, cut after out_relu.
  mobilenet_v2: { defaultSize: 96, minSize: 32, layers: 155, blocks: 18, pretrained: true,
    cleanCuts: '0-18,27-36,45,54-63,72,81,90-98,107,116-125,134,143-154',
    blockStarts: '1,5,10,19,28,37,46,55,64,73,82,91,99,108,117,126,135,144' },
  tiny_cnn: { defaultSize: 32, minSize: 16, layers: 24, blocks: 3, pretrained: false,
    cleanCuts: '0-3,12-23',
    blockStarts: '1,4,13' },
  // Keras applications built in code (include_top=False); 32 px is Keras' own minimum for each.
  vgg16: { defaultSize: 224, minSize: 32, layers: 19, blocks: 5, pretrained: false,
    cleanCuts: '0-18',
    blockStarts: '1,4,7,11,15' },
  resnet50: { defaultSize: 224, minSize: 32, layers: 175, blocks: 17, pretrained: false,
    cleanCuts: '0-6,17-18,27-28,37-38,49-50,59-60,69-70,79-80,91-92,101-102,111-112,121-122,131-132,141-142,153-154,163-164,173-174',
    blockStarts: '1,7,19,29,39,51,61,71,81,93,103,113,123,133,143,155,165' },
  mobilenet: { defaultSize: 224, minSize: 32, layers: 86, blocks: 14, pretrained: false,
    cleanCuts: '0-85',
    blockStarts: '1,4,10,17,23,30,36,43,49,55,61,67,73,80' },
  densenet121: { defaultSize: 224, minSize: 32, layers: 427, blocks: 62, pretrained: false,
    cleanCuts: '0-6,13,20,27,34,41,48-52,59,66,73,80,87,94,101,108,115,122,129,136-140,147,154,161,168,175,182,189,196,203,210,217,224,231,238,245,252,259,266,273,280,287,294,301,308-312,319,326,333,340,347,354,361,368,375,382,389,396,403,410,417,424-426',
    blockStarts: '1,7,14,21,28,35,42,49,53,60,67,74,81,88,95,102,109,116,123,130,137,141,148,155,162,169,176,183,190,197,204,211,218,225,232,239,246,253,260,267,274,281,288,295,302,309,313,320,327,334,341,348,355,362,369,376,383,390,397,404,411,418' },
  // Keras InceptionV3 from nsfwjs@4.3.0, cut at mixed10; Keras' minimum input is 75.
  inception_v3: { defaultSize: 299, minSize: 75, layers: 311, blocks: 12, pretrained: true,
    cleanCuts: '0-17,40,63,86,100,132,164,196,228,248,279,310',
    blockStarts: '1,18,41,64,87,101,133,165,197,229,249,280' },
  // Keras EfficientNetB0(include_top=False, weights=None), built in code.
  efficientnet_b0: { defaultSize: 224, minSize: 32, layers: 237, blocks: 18, pretrained: false,
    cleanCuts: '0-9,14-23,28-30,45-52,57-59,74-81,86-88,103,118-124,129-131,146,161-168,173-175,190,205,220-226,231-236',
    blockStarts: '1,7,17,31,46,60,75,89,104,119,132,147,162,176,191,206,221,234' },
  // Keras NASNetMobile(include_top=False, weights=None), built in code.
  nasnet_mobile: { defaultSize: 224, minSize: 32, layers: 769, blocks: 17, pretrained: false,
    cleanCuts: '0-2,767-768',
    blockStarts: '1,3,41,98,159,204,249,294,335,396,441,486,531,572,633,678,723' },
});

/** Names accepted by loadBackbone and by sweep specs. */
export const KNOWN_BACKBONES: readonly string[] = Object.freeze(Object.keys(BACKBONE_CATALOG));

/** The catalog entry of `name`, or undefined. */
export function backboneInfo(name: string): BackboneInfo | undefined {
  return Object.hasOwn(BACKBONE_CATALOG, name) ? BACKBONE_CATALOG[name] : undefined;
}

/** `'0-3,12,20-22'` → [0, 1, 2, 3, 12, 20, 21, 22]. */
export function expandRanges(ranges: string): number[] {
  const out: number[] = [];
  for (const part of ranges.split(',')) {
    const [a, b = a] = part.split('-').map(Number);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}
