/**
 * The fine-tuning recipe's knobs as plain data, shared by the coordinator
 * (which validates sweep specs without loading TensorFlow.js) and the worker
 * engine. Defaults follow Keras where the seed tutorials are silent.
 */

/**
 * How much of the backbone trains in phase 2.
 * - a number N: the top N layers, Keras `base_model.layers[-N:]` (0 = head only);
 * - `{ blocks: N }`: the top N whole blocks (see Backbone.blockStarts) and every layer above them;
 * - `{ fineTuneAt: L }`: layer L (a Keras layer name or an index into `model.layers`) and everything above it.
 * `{ layers: N }` is accepted in specs and normalised to N.
 */
export type UnfreezeSpec = number | { blocks: number } | { fineTuneAt: string | number };

export type OptimizerName = 'adam' | 'sgd' | 'rmsprop';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd', 'rmsprop'];

/**
 * Learning rate over the epochs of one phase (each phase starts again from its own base rate):
 * constant; cosine, lr·½(1 + cos(π·e/E)) at phase epoch e of E (Keras CosineDecay, alpha 0, stepped per epoch);
 * step, lr·factor^⌊e/everyEpochs⌋.
 */
export type LrSchedule = 'constant' | 'cosine' | { step: { everyEpochs: number; factor: number } };

/** Keras `EarlyStopping(monitor='val_loss', ...)`, one instance per phase. */
export interface EarlyStoppingOptions {
  /** Epochs without improvement before the phase stops. @default 0 (Keras) */
  patience: number;
  /** An improvement is a val_loss below best − minDelta. @default 0 */
  minDelta: number;
  /**
   * At the end of the phase (stopped early or not), put back the weights of
   * the epoch with the best val_loss. @default false (Keras)
   */
  restoreBestWeights: boolean;
}

/** `'balanced'`: n / (classes · count[c]) over the training split (scikit-learn); or a weight per class name (missing: 1). */
export type ClassWeightsSpec = 'balanced' | Record<string, number>;

/** Unfreeze one more block every `everyEpochs` fine-tune epochs, from the top block down to the trial's depth. */
export interface GradualUnfreeze {
  everyEpochs: number;
}

export type BinaryHead = 'softmax' | 'sigmoid';

/** Every recipe knob, filled. */
export interface Recipe {
  /** L2 factor of the kernel regulariser on the head's Dense layers. @default 0 */
  l2: number;
  /** With 2 classes: softmax over 2 units, or one sigmoid unit with binary cross-entropy. @default 'softmax' */
  binaryHead: BinaryHead;
  /** @default 'adam' (Keras defaults: adam β1 0.9, β2 0.999, ε 1e-7; rmsprop ρ 0.9, ε 1e-7) */
  optimizer: OptimizerName;
  /** Momentum of sgd (only). @default 0 */
  momentum: number;
  /** @default 'constant' */
  lrSchedule: LrSchedule;
  /** @default null (off) */
  earlyStopping: EarlyStoppingOptions | null;
  /** Targets become y·(1 − s) + s/K (K = 2 for the sigmoid head). @default 0 */
  labelSmoothing: number;
  /** Weights each training example's loss by its class. @default null (all 1) */
  classWeights: ClassWeightsSpec | null;
  /** Unfrozen BatchNormalization layers use batch statistics (see batchnorm.ts). @default false */
  trainBatchNorm: boolean;
  /** @default null (the whole depth trains from the first fine-tune epoch) */
  gradualUnfreeze: GradualUnfreeze | null;
}

export const RECIPE_DEFAULTS: Readonly<Recipe> = Object.freeze({
  l2: 0,
  binaryHead: 'softmax',
  optimizer: 'adam',
  momentum: 0,
  lrSchedule: 'constant',
  earlyStopping: null,
  labelSmoothing: 0,
  classWeights: null,
  trainBatchNorm: false,
  gradualUnfreeze: null,
});

export const RECIPE_FIELDS: readonly (keyof Recipe)[] = Object.keys(RECIPE_DEFAULTS) as (keyof Recipe)[];

/** One problem with one field (the coordinator's FieldViolation shape). */
export interface RecipeViolation {
  field: string;
  message: string;
}

/** A readable, stable label for tables and group-by: `11`, `blocks:2`, `at:block_14_add`, `at:#120`. */
export function unfreezeLabel(u: UnfreezeSpec): string {
  if (typeof u === 'number') return String(u);
  if ('blocks' in u) return `blocks:${u.blocks}`;
  return typeof u.fineTuneAt === 'number' ? `at:#${u.fineTuneAt}` : `at:${u.fineTuneAt}`;
}

/** Whether phase 2 can run at all: every form except the number 0 unfreezes something. */
export function unfreezesAnything(u: UnfreezeSpec): boolean {
  return typeof u !== 'number' || u > 0;
}

const LAYER_NAME_RE = /^[A-Za-z0-9_./-]{1,200}$/;
const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
const isInt = (x: unknown, min: number, max: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;
const isNum = (x: unknown, ok: (n: number) => boolean): x is number => typeof x === 'number' && Number.isFinite(x) && ok(x);

const UNFREEZE_FORMS = 'an integer 0..10000 (top layers), { layers: N }, { blocks: N } (N 1..1000), or { fineTuneAt: <layer name or index> }';

/**
 * Checks one unfreeze value's shape and ranges (not the backbone: names and
 * block counts are checked against it elsewhere). Returns the normal form.
 */
export function parseUnfreeze(x: unknown, field: string, v: RecipeViolation[]): UnfreezeSpec | undefined {
  const bad = () => {
    v.push({ field, message: `must be ${UNFREEZE_FORMS}; got ${JSON.stringify(x)}` });
    return undefined;
  };
  if (typeof x === 'number') return isInt(x, 0, 10_000) ? x : bad();
  if (!isObject(x) || Object.keys(x).length !== 1) return bad();
  if ('layers' in x) return isInt(x.layers, 0, 10_000) ? x.layers : bad();
  if ('blocks' in x) return isInt(x.blocks, 1, 1000) ? { blocks: x.blocks } : bad();
  if ('fineTuneAt' in x) {
    const at = x.fineTuneAt;
    if (isInt(at, 1, 10_000)) return { fineTuneAt: at };
    if (typeof at === 'string' && LAYER_NAME_RE.test(at)) return { fineTuneAt: at };
    v.push({ field: `${field}.fineTuneAt`, message: `must be a layer index 1..10000 or a Keras layer name (letters, digits, _ . / -); got ${JSON.stringify(at)}` });
    return undefined;
  }
  return bad();
}

function only(o: Record<string, unknown>, field: string, allowed: string[], v: RecipeViolation[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) v.push({ field: `${field}.${k}`, message: `unknown field; allowed: ${allowed.join(', ')}` });
}

function parseSchedule(x: unknown, v: RecipeViolation[]): LrSchedule | undefined {
  if (x === 'constant' || x === 'cosine') return x;
  const allowed = "'constant', 'cosine' or { step: { everyEpochs: 1..1000, factor: (0, 1] } }";
  if (!isObject(x) || !isObject(x.step) || Object.keys(x).length !== 1) {
    v.push({ field: 'lrSchedule', message: `must be ${allowed}; got ${JSON.stringify(x)}` });
    return undefined;
  }
  const s = x.step;
  const before = v.length;
  only(s, 'lrSchedule.step', ['everyEpochs', 'factor'], v);
  if (!isInt(s.everyEpochs, 1, 1000)) v.push({ field: 'lrSchedule.step.everyEpochs', message: `must be an integer in 1..1000; got ${JSON.stringify(s.everyEpochs)}` });
  if (!isNum(s.factor, (n) => n > 0 && n <= 1)) v.push({ field: 'lrSchedule.step.factor', message: `must be a number in (0, 1]; got ${JSON.stringify(s.factor)}` });
  return v.length > before ? undefined : { step: { everyEpochs: s.everyEpochs as number, factor: s.factor as number } };
}

function parseEarlyStopping(x: unknown, v: RecipeViolation[]): EarlyStoppingOptions | undefined {
  if (!isObject(x)) {
    v.push({ field: 'earlyStopping', message: `must be a mapping { patience, minDelta, restoreBestWeights }; got ${JSON.stringify(x)}` });
    return undefined;
  }
  const before = v.length;
  only(x, 'earlyStopping', ['patience', 'minDelta', 'restoreBestWeights'], v);
  const patience = x.patience ?? 0;
  const minDelta = x.minDelta ?? 0;
  const restoreBestWeights = x.restoreBestWeights ?? false;
  if (!isInt(patience, 0, 1000)) v.push({ field: 'earlyStopping.patience', message: `must be an integer in 0..1000; got ${JSON.stringify(patience)}` });
  if (!isNum(minDelta, (n) => n >= 0)) v.push({ field: 'earlyStopping.minDelta', message: `must be a number >= 0; got ${JSON.stringify(minDelta)}` });
  if (typeof restoreBestWeights !== 'boolean') v.push({ field: 'earlyStopping.restoreBestWeights', message: `must be true or false; got ${JSON.stringify(restoreBestWeights)}` });
  return v.length > before ? undefined : { patience: patience as number, minDelta: minDelta as number, restoreBestWeights: restoreBestWeights as boolean };
}

function parseClassWeights(x: unknown, v: RecipeViolation[]): ClassWeightsSpec | undefined {
  if (x === 'balanced') return x;
  if (!isObject(x) || Object.keys(x).length === 0) {
    v.push({ field: 'classWeights', message: `must be 'balanced' or a mapping { <class name>: weight > 0 }; got ${JSON.stringify(x)}` });
    return undefined;
  }
  const before = v.length;
  for (const [name, w] of Object.entries(x)) {
    if (!isNum(w, (n) => n > 0 && n <= 1e6)) v.push({ field: `classWeights.${name}`, message: `must be a number in (0, 1e6]; got ${JSON.stringify(w)}` });
  }
  return v.length > before ? undefined : { ...(x as Record<string, number>) };
}

/**
 * Validates the recipe fields of `o` (a spec or a TrialHyperparams; other
 * keys are ignored) and fills defaults. Violations name the field and what
 * is allowed; the returned recipe is only meaningful when none were added.
 */
export function parseRecipe(o: Record<string, unknown>, v: RecipeViolation[]): Recipe {
  const r: Recipe = { ...RECIPE_DEFAULTS };
  const given = (k: keyof Recipe) => o[k] !== undefined && o[k] !== null;
  const fail = (field: string, allowed: string) => v.push({ field, message: `must be ${allowed}; got ${JSON.stringify(o[field])}` });

  if (given('l2')) isNum(o.l2, (n) => n >= 0 && n <= 1) ? (r.l2 = o.l2) : fail('l2', 'a number in [0, 1]');
  if (given('binaryHead')) o.binaryHead === 'softmax' || o.binaryHead === 'sigmoid' ? (r.binaryHead = o.binaryHead) : fail('binaryHead', "'softmax' or 'sigmoid'");
  if (given('optimizer')) OPTIMIZERS.includes(o.optimizer as OptimizerName) ? (r.optimizer = o.optimizer as OptimizerName) : fail('optimizer', `one of: ${OPTIMIZERS.join(', ')}`);
  if (given('momentum')) {
    if (!isNum(o.momentum, (n) => n >= 0 && n < 1)) fail('momentum', 'a number in [0, 1)');
    else if (r.optimizer !== 'sgd' && o.momentum !== 0) v.push({ field: 'momentum', message: `applies to optimizer sgd only; optimizer is ${r.optimizer}` });
    else r.momentum = o.momentum;
  }
  if (given('lrSchedule')) r.lrSchedule = parseSchedule(o.lrSchedule, v) ?? r.lrSchedule;
  if (given('earlyStopping')) r.earlyStopping = parseEarlyStopping(o.earlyStopping, v) ?? null;
  if (given('labelSmoothing')) isNum(o.labelSmoothing, (n) => n >= 0 && n < 1) ? (r.labelSmoothing = o.labelSmoothing) : fail('labelSmoothing', 'a number in [0, 1)');
  if (given('classWeights')) r.classWeights = parseClassWeights(o.classWeights, v) ?? null;
  if (given('trainBatchNorm')) typeof o.trainBatchNorm === 'boolean' ? (r.trainBatchNorm = o.trainBatchNorm) : fail('trainBatchNorm', 'true or false');
  if (given('gradualUnfreeze')) {
    const g = o.gradualUnfreeze;
    if (isObject(g) && Object.keys(g).length === 1 && isInt(g.everyEpochs, 1, 1000)) r.gradualUnfreeze = { everyEpochs: g.everyEpochs };
    else fail('gradualUnfreeze', '{ everyEpochs: <integer 1..1000> }');
  }
  return r;
}
