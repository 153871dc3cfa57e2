import { parseWeightsRef, WEIGHTS_REF_FORMS, type WeightsRef } from '../weights/weights-ref.js';
import { PREPROCESS_MODES, type PreprocessMode } from '../preprocess-modes.js';
import type { RecipeViolation } from '../recipe-options.js';

/**
 * A TF Hub-style feature-vector backbone: a tfjs GraphModel (what
 * `tensorflowjs_converter --input_format tf_hub|tf_saved_model` writes), used
 * as the seed tutorials use `hub.KerasLayer(url, trainable=False)`. A
 * GraphModel holds constants, not trainable variables, so it is frozen: only
 * the head trains. Pure data, no tfjs: the coordinator validates specs with it.
 */
export interface GraphBackboneSpec {
  /** Where model.json is: a weights ref (weights/weights-ref.ts): absolute path, file://, http(s)://…/model.json, objstore:<name>. */
  ref: string;
  /** Square input size in pixels the graph is fed. */
  inputSize: number;
  /** How images with pixels in [0, 1] become the graph's input (preprocess-modes.ts). */
  preprocessing: PreprocessMode;
  /**
   * The node whose output are the features: a full node name, or a suffix
   * after a `/` that names one node (`feature_vector/SpatialSqueeze`); null:
   * the model's own output. A 4-D output is global-average-pooled, a 2-D one
   * is the feature vector.
   */
  output: string | null;
}

/** Sweep names of graph backbones start with this: `graph:<label>`. */
export const GRAPH_BACKBONE_PREFIX = 'graph:';

/** TF Hub's image feature-vector models take 224×224 unless their page says otherwise. @default 224 */
export const GRAPH_DEFAULT_INPUT_SIZE = 224;

/** TF Hub's image convention: pixels in [0, 1], i.e. `unit`. */
export const GRAPH_DEFAULT_PREPROCESSING: PreprocessMode = 'unit';

const LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const OUTPUT_RE = /^[A-Za-z0-9_./:-]{1,500}$/;
const FIELDS = ['graph', 'name', 'inputSize', 'preprocessing', 'output'];
export const GRAPH_INPUT_SIZE_RANGE = { min: 16, max: 1024 } as const;

/** Whether a sweep backbone name is a graph backbone's. */
export function isGraphBackbone(name: string): boolean {
  return name.startsWith(GRAPH_BACKBONE_PREFIX);
}

/**
 * The label a graph backbone gets when the spec names none: the Object Store
 * name, or the folder holding model.json (`…/mobilenet_v2_mid/model.json` →
 * `mobilenet_v2_mid`), cleaned to letters, digits, `.`, `_`, `-`.
 */
export function defaultGraphLabel(ref: WeightsRef): string {
  let base: string;
  if (ref.kind === 'objstore') base = ref.name;
  else {
    const path = ref.kind === 'file' ? ref.path : new URL(ref.url).pathname;
    const parts = path.split('/').filter(Boolean);
    // The folder names a model far better than "model.json" does.
    base = parts.length >= 2 ? parts[parts.length - 2] : (parts[0] ?? 'model').replace(/\.json$/, '');
  }
  const clean = base.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return clean || 'graph';
}

/**
 * One entry of a spec's `backbones` that names a graph backbone: the string
 * `graph:<ref>` or a mapping `{ graph: <ref>, name?, inputSize?, preprocessing?, output? }`.
 * Returns its sweep name (`graph:<label>`) and normal form, or undefined
 * after adding violations that name the field and what is allowed.
 *
 * @param defaultSize the spec's `imageSize` when set; else GRAPH_DEFAULT_INPUT_SIZE.
 */
export function parseGraphBackbone(x: unknown, field: string, v: RecipeViolation[], defaultSize: number | null): { name: string; spec: GraphBackboneSpec } | undefined {
  const o: Record<string, unknown> = typeof x === 'string' ? { graph: x.slice(GRAPH_BACKBONE_PREFIX.length) } : (x as Record<string, unknown>);
  const before = v.length;
  for (const k of Object.keys(o)) if (!FIELDS.includes(k)) v.push({ field: `${field}.${k}`, message: `unknown field of a graph backbone; allowed: ${FIELDS.join(', ')}` });
  let ref: WeightsRef | undefined;
  if (typeof o.graph !== 'string' || o.graph === '') {
    v.push({ field: `${field}.graph`, message: `required: where the tfjs GraphModel's model.json is: ${WEIGHTS_REF_FORMS}` });
  } else {
    try {
      ref = parseWeightsRef(o.graph);
    } catch (err) {
      v.push({ field: `${field}.graph`, message: (err as Error).message });
    }
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || !LABEL_RE.test(o.name))) {
    v.push({ field: `${field}.name`, message: `must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(o.name)}` });
  }
  const { min, max } = GRAPH_INPUT_SIZE_RANGE;
  if (o.inputSize !== undefined && !(typeof o.inputSize === 'number' && Number.isInteger(o.inputSize) && o.inputSize >= min && o.inputSize <= max)) {
    v.push({ field: `${field}.inputSize`, message: `must be an integer in ${min}..${max} (pixels; the size the graph was exported for); got ${JSON.stringify(o.inputSize)}` });
  }
  const modes = [...PREPROCESS_MODES, 'none'];
  if (o.preprocessing !== undefined && !modes.includes(o.preprocessing as string)) {
    v.push({ field: `${field}.preprocessing`, message: `must be one of: ${modes.join(', ')} ('none' = 'unit': pixels in [0, 1], the TF Hub convention); got ${JSON.stringify(o.preprocessing)}` });
  }
  if (o.output !== undefined && o.output !== null && (typeof o.output !== 'string' || !OUTPUT_RE.test(o.output))) {
    v.push({ field: `${field}.output`, message: `must be a node name of the graph (or its last '/'-separated parts), letters, digits, _ . / : -; got ${JSON.stringify(o.output)}` });
  }
  if (v.length > before || !ref) return undefined;
  const label = (o.name as string | undefined) ?? defaultGraphLabel(ref);
  const preprocessing = o.preprocessing === undefined || o.preprocessing === 'none' ? GRAPH_DEFAULT_PREPROCESSING : (o.preprocessing as PreprocessMode);
  return {
    name: `${GRAPH_BACKBONE_PREFIX}${label}`,
    spec: {
      ref: ref.text,
      inputSize: (o.inputSize as number | undefined) ?? defaultSize ?? GRAPH_DEFAULT_INPUT_SIZE,
      preprocessing,
      output: (o.output as string | undefined) ?? null,
    },
  };
}

/** Whether a `backbones` entry is written as a graph backbone (the parser above then owns it). */
export function looksLikeGraphBackbone(x: unknown): boolean {
  if (typeof x === 'string') return isGraphBackbone(x);
  return x !== null && typeof x === 'object' && !Array.isArray(x) && 'graph' in x;
}
