import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError, type FieldViolation } from '../errors.js';
import type { DatasetSpec, SweepSpec } from './sweep-spec.js';
import { SPEC_DEFAULTS, SPEC_LIMITS } from './sweep-spec.js';
import { validateScheduler } from './validate-scheduler.js';
import { isRangeInput, validateRange, validateTpe } from './validate-search.js';
import type { NumericRange } from './sweep-spec.js';
import { backboneInfo, KNOWN_BACKBONES } from '../../../worker/src/engine/backbones/catalog.js';
import { parseWeightsRef } from '../../../worker/src/engine/weights/weights-ref.js';
import { parseRecipe, parseUnfreeze, RECIPE_FIELDS, unfreezesAnything } from '../../../worker/src/engine/recipe-options.js';
import { checkRecipeAgainstSpec, checkUnfreezeAgainstBackbones } from './validate-recipe.js';
import { normalizeAugmentation } from '../../../worker/src/engine/augment-config.js';
import { validateFuse } from './validate-fuse.js';
import { NOOP_BACKBONE } from '../../../worker/src/runner/noop-runner.js';
import { isGraphBackbone, looksLikeGraphBackbone, parseGraphBackbone, type GraphBackboneSpec } from '../../../worker/src/engine/backbones/graph-backbone-spec.js';

const TOP_LEVEL_FIELDS = [
  'name', 'dataset', 'backbones', 'unfreeze', 'learningRates', 'dropouts', 'headEpochs', 'fineTuneEpochs',
  'fineTuneLrFactor', 'batchSize', 'headUnits', 'imageSize', 'seed', 'search', 'maxTrials', 'maxParallel', 'maxFailedTrials', 'split',
  'weights', 'keepModels',
  ...RECIPE_FIELDS,
  'augmentation',
  'scheduler', 'tpe', 'fuse',
];
const DATASET_KINDS = ['fashion-mnist', 'folder', 'synthetic'];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
const BACKBONE_RE = /^[a-z][a-z0-9_]{0,63}$/;

/** What the validator accepts beyond ordinary specs. */
export interface SpecValidationOptions {
  /**
   * Accept the `noop` backbone: trials that train nothing and report
   * synthetic metrics (control-plane benchmark and test mode). @default false
   */
  allowNoopBackbone?: boolean;
}

/** Limits of the `noop` backbone: any image size, no layers to unfreeze. */
const NOOP_INFO = { minSize: 1, layers: 1 };

/**
 * Parses a spec from YAML or JSON text (JSON is YAML) and validates it.
 * @throws InvalidArgumentError naming every offending field.
 */
export function parseSweepSpec(text: string, opts: SpecValidationOptions = {}): SweepSpec {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new InvalidArgumentError([{ field: 'spec', message: `not valid YAML/JSON: ${(err as Error).message}` }], 'invalid sweep spec');
  }
  return validateSweepSpec(raw, opts);
}

/** Validates a parsed spec and fills in defaults. @throws InvalidArgumentError */
export function validateSweepSpec(raw: unknown, opts: SpecValidationOptions = {}): SweepSpec {
  const v: FieldViolation[] = [];
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidArgumentError([{ field: 'spec', message: 'must be a mapping (object) of sweep fields' }], 'invalid sweep spec');
  }
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    // A key that is not a plain name (empty, spaces, control characters) is quoted, so the field is never blank.
    if (!TOP_LEVEL_FIELDS.includes(k)) v.push({ field: /^[A-Za-z_]\w*$/.test(k) ? k : JSON.stringify(k), message: `unknown field; allowed: ${TOP_LEVEL_FIELDS.join(', ')}` });
  }

  const name = o.name;
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    v.push({ field: 'name', message: 'required: 1-64 characters of letters, digits, space, ".", "_" or "-", starting with a letter or digit' });
  }

  const datasetsRaw = o.dataset === undefined ? undefined : Array.isArray(o.dataset) ? o.dataset : [o.dataset];
  const datasets: DatasetSpec[] = [];
  if (datasetsRaw === undefined || datasetsRaw.length === 0) {
    v.push({ field: 'dataset', message: `required: a dataset {kind: ${DATASET_KINDS.join(' | ')}, ...} or a list of them` });
  } else {
    datasetsRaw.forEach((d, i) => {
      const field = Array.isArray(o.dataset) ? `dataset[${i}]` : 'dataset';
      const ds = validateDataset(d, field, v);
      if (ds) datasets.push(ds);
    });
  }

  const imageSize = o.imageSize === undefined || o.imageSize === null ? null
    : int(o.imageSize, 'imageSize', v, SPEC_LIMITS.minImageSize, SPEC_LIMITS.maxImageSize, `an integer in ${SPEC_LIMITS.minImageSize}..${SPEC_LIMITS.maxImageSize} (pixels)`) ?? null;
  const graphBackbones: Record<string, GraphBackboneSpec> = {};
  const backbones = list(o, 'backbones', v, (x, f) => {
    if (looksLikeGraphBackbone(x)) {
      const g = parseGraphBackbone(x, f, v, imageSize);
      if (!g) return undefined;
      if (graphBackbones[g.name]) {
        v.push({ field: `${f}.name`, message: `another graph backbone is already called ${g.name}; give this one a different name` });
        return undefined;
      }
      graphBackbones[g.name] = g.spec;
      return g.name;
    }
    if (x === NOOP_BACKBONE) {
      if (opts.allowNoopBackbone) return x;
      v.push({ field: f, message: `'${NOOP_BACKBONE}' trains nothing and reports synthetic metrics (control-plane benchmark mode); refused unless the coordinator runs with TLSWEEP_ALLOW_NOOP_BACKBONE=1` });
      return undefined;
    }
    if (typeof x !== 'string' || !BACKBONE_RE.test(x) || !backboneInfo(x)) {
      v.push({ field: f, message: `must be one of: ${KNOWN_BACKBONES.join(', ')}, or a GraphModel as graph:<model.json ref> or { graph: <ref>, name?, inputSize?, preprocessing?, output? }; got ${JSON.stringify(x)}` });
      return undefined;
    }
    return x;
  });
  const unfreeze = list(o, 'unfreeze', v, (x, f) => parseUnfreeze(x, f, v));
  // Lists for every search; ranges {min, max, log} only where values are sampled (random, tpe).
  const lrOk = (n: number) => n > 0 && n <= 10;
  const dropoutOk = (n: number) => n >= 0 && n < 1;
  let learningRateRange: NumericRange | null = null;
  let dropoutRange: NumericRange | null = null;
  let learningRates: number[] | undefined = [];
  let dropouts: number[] | undefined = [];
  if (isRangeInput(o.learningRates)) learningRateRange = validateRange(o.learningRates, 'learningRates', o.search, lrOk, 'a number in (0, 10]', v) ?? null;
  else learningRates = list(o, 'learningRates', v, (x, f) => num(x, f, v, lrOk, 'a number in (0, 10]'));
  if (isRangeInput(o.dropouts)) dropoutRange = validateRange(o.dropouts, 'dropouts', o.search, dropoutOk, 'a number in [0, 1)', v) ?? null;
  else dropouts = list(o, 'dropouts', v, (x, f) => num(x, f, v, dropoutOk, 'a number in [0, 1)'));

  const headEpochs = opt(o, 'headEpochs', SPEC_DEFAULTS.headEpochs, (x, f) => int(x, f, v, 1, SPEC_LIMITS.maxEpochs, `an integer in 1..${SPEC_LIMITS.maxEpochs}`));
  const fineTuneEpochs = opt(o, 'fineTuneEpochs', SPEC_DEFAULTS.fineTuneEpochs, (x, f) => int(x, f, v, 0, SPEC_LIMITS.maxEpochs, `an integer in 0..${SPEC_LIMITS.maxEpochs}`));
  const fineTuneLrFactor = opt(o, 'fineTuneLrFactor', SPEC_DEFAULTS.fineTuneLrFactor, (x, f) => num(x, f, v, (n) => n > 0 && n <= 1, 'a number in (0, 1]'));
  const batchSize = opt(o, 'batchSize', SPEC_DEFAULTS.batchSize, (x, f) => int(x, f, v, 1, SPEC_LIMITS.maxBatchSize, `an integer in 1..${SPEC_LIMITS.maxBatchSize}`));
  const headUnits = opt(o, 'headUnits', SPEC_DEFAULTS.headUnits, (x, f) => int(x, f, v, 1, SPEC_LIMITS.maxHeadUnits, `an integer in 1..${SPEC_LIMITS.maxHeadUnits}`));
  const seed = opt(o, 'seed', SPEC_DEFAULTS.seed, (x, f) => int(x, f, v, 0, 2 ** 31 - 1, 'an integer in 0..2147483647'));
  const search = opt(o, 'search', SPEC_DEFAULTS.search, (x, f) => {
    if (x === 'grid' || x === 'random' || x === 'tpe') return x;
    v.push({ field: f, message: `must be one of: grid, random, tpe; got ${JSON.stringify(x)}` });
    return undefined;
  });
  const maxTrials = o.maxTrials === undefined || o.maxTrials === null ? null
    : int(o.maxTrials, 'maxTrials', v, 1, SPEC_LIMITS.maxTrialsPerSweep, `an integer in 1..${SPEC_LIMITS.maxTrialsPerSweep}`) ?? null;
  if ((search === 'random' || search === 'tpe') && maxTrials === null && (o.maxTrials === undefined || o.maxTrials === null)) {
    v.push({ field: 'maxTrials', message: `required when search is ${search}: an integer in 1..` + SPEC_LIMITS.maxTrialsPerSweep });
  }
  const tpe = validateTpe(o.tpe, o.search, v);
  const maxParallel = opt(o, 'maxParallel', SPEC_DEFAULTS.maxParallel, (x, f) => int(x, f, v, 1, SPEC_LIMITS.maxParallel, `an integer in 1..${SPEC_LIMITS.maxParallel}`));

  const maxFailedTrials = o.maxFailedTrials === undefined || o.maxFailedTrials === null ? null
    : int(o.maxFailedTrials, 'maxFailedTrials', v, 0, SPEC_LIMITS.maxTrialsPerSweep, `an integer in 0..${SPEC_LIMITS.maxTrialsPerSweep} (failed or diverged trials tolerated before the sweep fails)`) ?? null;

  let split: { valFraction: number; testFraction: number } = { valFraction: SPEC_DEFAULTS.valFraction, testFraction: SPEC_DEFAULTS.testFraction };
  if (o.split !== undefined) {
    if (o.split === null || typeof o.split !== 'object' || Array.isArray(o.split)) {
      v.push({ field: 'split', message: 'must be a mapping {valFraction, testFraction}' });
    } else {
      const s = o.split as Record<string, unknown>;
      for (const k of Object.keys(s)) if (k !== 'valFraction' && k !== 'testFraction') v.push({ field: `split.${k}`, message: 'unknown field; allowed: valFraction, testFraction' });
      const valFraction = opt(s, 'valFraction', SPEC_DEFAULTS.valFraction, (x) => num(x, 'split.valFraction', v, (n) => n > 0 && n < 0.5, 'a number in (0, 0.5)'));
      const testFraction = opt(s, 'testFraction', SPEC_DEFAULTS.testFraction, (x) => num(x, 'split.testFraction', v, (n) => n > 0 && n < 0.5, 'a number in (0, 0.5)'));
      if (valFraction !== undefined && testFraction !== undefined) split = { valFraction, testFraction };
    }
  }
  datasets.forEach((d, i) => checkOfficialTestPool(d, Array.isArray(o.dataset) ? `dataset[${i}]` : 'dataset', split.valFraction, v));

  const weights = validateWeights(o.weights, backbones, v);
  const keepModels = opt(o, 'keepModels', SPEC_DEFAULTS.keepModels as number, (x, f) => int(x, f, v, 0, 100, 'an integer in 0..100 (0 keeps no model)'));
  const augmentation = normalizeAugmentation(o.augmentation, v);
  const longestTrial = headEpochs !== undefined && fineTuneEpochs !== undefined
    ? headEpochs + (unfreeze?.some(unfreezesAnything) ? fineTuneEpochs : 0)
    : undefined;
  const scheduler = validateScheduler(o.scheduler, longestTrial, v);
  const fuse = validateFuse(o.fuse, v);

  // Limits of the chosen backbones: checked here so a bad spec is refused before any trial runs.
  if (backbones && imageSize !== null) {
    // A graph backbone runs at its own inputSize (checked when parsed).
    for (const b of backbones.filter((n) => !isGraphBackbone(n))) {
      const min = (b === NOOP_BACKBONE ? NOOP_INFO : backboneInfo(b)!).minSize;
      if (imageSize < min) v.push({ field: 'imageSize', message: `must be at least ${min} for backbone ${b}; got ${imageSize}` });
    }
  }
  if (backbones && unfreeze) checkUnfreezeAgainstBackbones(unfreeze, backbones, v);
  const recipe = parseRecipe(o, v);
  checkRecipeAgainstSpec(recipe, datasets, v);

  if (v.length === 0 && search === 'grid') {
    const size = datasets.length * backbones!.length * unfreeze!.length * learningRates!.length * dropouts!.length;
    if (size > SPEC_LIMITS.maxTrialsPerSweep) {
      v.push({ field: 'backbones', message: `the grid has ${size} trials; at most ${SPEC_LIMITS.maxTrialsPerSweep} per sweep (use search: random with maxTrials)` });
    }
  }
  if (v.length > 0) throw new InvalidArgumentError(v, 'invalid sweep spec');

  return {
    name: name as string,
    datasets,
    backbones: backbones!,
    ...(Object.keys(graphBackbones).length > 0 ? { graphBackbones } : {}),
    unfreeze: unfreeze!,
    learningRates: learningRates!,
    dropouts: dropouts!,
    headEpochs: headEpochs!,
    fineTuneEpochs: fineTuneEpochs!,
    fineTuneLrFactor: fineTuneLrFactor!,
    batchSize: batchSize!,
    headUnits: headUnits!,
    imageSize,
    seed: seed!,
    search: search!,
    maxTrials,
    maxParallel: maxParallel!,
    maxFailedTrials,
    split,
    weights,
    keepModels: keepModels!,
    recipe,
    augmentation,
    scheduler,
    learningRateRange,
    dropoutRange,
    tpe,
    fuse,
  };
}

/** `weights: {<backbone>: <ref>}`: each key a backbone of this spec, each value a well-formed ref. */
function validateWeights(raw: unknown, backbones: string[] | undefined, v: FieldViolation[]): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    v.push({ field: 'weights', message: 'must be a mapping {<backbone>: <weights ref>}' });
    return {};
  }
  const out: Record<string, string> = {};
  for (const [b, ref] of Object.entries(raw as Record<string, unknown>)) {
    const field = `weights.${b}`;
    if (isGraphBackbone(b)) {
      v.push({ field, message: 'a graph backbone loads its weights from its own graph ref; weights applies to catalog backbones' });
      continue;
    }
    if (!backboneInfo(b)) {
      v.push({ field, message: `unknown backbone; known: ${KNOWN_BACKBONES.join(', ')}` });
      continue;
    }
    if (backbones && !backbones.includes(b)) {
      v.push({ field, message: `backbone ${b} is not in backbones (${backbones.join(', ')})` });
      continue;
    }
    try {
      parseWeightsRef(ref as string);
      out[b] = ref as string;
    } catch (err) {
      v.push({ field, message: (err as Error).message });
    }
  }
  return out;
}

function validateDataset(d: unknown, field: string, v: FieldViolation[]): DatasetSpec | undefined {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) {
    v.push({ field, message: `must be a mapping with kind: ${DATASET_KINDS.join(' | ')}` });
    return undefined;
  }
  const o = d as Record<string, unknown>;
  const allowed: Record<string, string[]> = {
    'fashion-mnist': ['kind', 'dir', 'perClass', 'test'],
    folder: ['kind', 'path', 'perClass'],
    synthetic: ['kind', 'classes', 'perClass', 'seed'],
  };
  if (typeof o.kind !== 'string' || !(o.kind in allowed)) {
    v.push({ field: `${field}.kind`, message: `must be one of: ${DATASET_KINDS.join(', ')}; got ${JSON.stringify(o.kind)}` });
    return undefined;
  }
  const before = v.length;
  for (const k of Object.keys(o)) {
    if (!allowed[o.kind].includes(k)) v.push({ field: `${field}.${k}`, message: `unknown field for kind ${o.kind}; allowed: ${allowed[o.kind].join(', ')}` });
  }
  const perClass = o.perClass === undefined ? undefined : int(o.perClass, `${field}.perClass`, v, 1, 100_000, 'an integer in 1..100000');
  switch (o.kind) {
    case 'fashion-mnist': {
      if (o.dir !== undefined && (typeof o.dir !== 'string' || o.dir === '')) v.push({ field: `${field}.dir`, message: 'must be a non-empty path' });
      if (perClass !== undefined && perClass > 6000) v.push({ field: `${field}.perClass`, message: 'Fashion-MNIST has 6000 training images per class; allowed 1..6000' });
      if (o.test !== undefined && o.test !== 'split' && o.test !== 'official') {
        v.push({ field: `${field}.test`, message: `must be split (drawn from the perClass sample by split.testFraction) or official (the 10,000 official test images); got ${JSON.stringify(o.test)}` });
      }
      if (v.length > before) return undefined;
      return {
        kind: 'fashion-mnist',
        ...(o.dir !== undefined ? { dir: o.dir as string } : {}),
        ...(perClass !== undefined ? { perClass } : {}),
        ...(o.test !== undefined ? { test: o.test as 'split' | 'official' } : {}),
      };
    }
    case 'folder': {
      if (typeof o.path !== 'string' || o.path === '') v.push({ field: `${field}.path`, message: 'required: a directory of class sub-folders of PNG/JPEG images' });
      if (v.length > before) return undefined;
      return { kind: 'folder', path: o.path as string, ...(perClass !== undefined ? { perClass } : {}) };
    }
    default: {
      const classes = o.classes === undefined ? undefined : int(o.classes, `${field}.classes`, v, 2, 1000, 'an integer in 2..1000');
      const seed = o.seed === undefined ? undefined : int(o.seed, `${field}.seed`, v, 0, 2 ** 31 - 1, 'an integer in 0..2147483647');
      if (v.length > before) return undefined;
      return {
        kind: 'synthetic',
        ...(classes !== undefined ? { classes } : {}),
        ...(perClass !== undefined ? { perClass } : {}),
        ...(seed !== undefined ? { seed } : {}),
      };
    }
  }
}

/**
 * With `test: official` validation comes from training images beyond the
 * `perClass` sample (see FashionMnistDatasetSpec.test): a class has 6000, so
 * perClass plus its validation images must fit.
 */
function checkOfficialTestPool(d: DatasetSpec, field: string, valFraction: number, v: FieldViolation[]): void {
  if (d.kind !== 'fashion-mnist' || d.test !== 'official') return;
  const perClass = d.perClass ?? 100;
  const valPerClass = Math.max(1, Math.round(perClass * valFraction));
  if (perClass + valPerClass > 6000) {
    v.push({
      field: `${field}.perClass`,
      message: `with test: official, validation takes perClass × split.valFraction = ${valPerClass} further training images per class, ` +
        `and Fashion-MNIST has 6000 per class; allowed perClass + ${valPerClass} <= 6000, got ${perClass}`,
    });
  }
}

function list<T>(o: Record<string, unknown>, field: string, v: FieldViolation[], item: (x: unknown, f: string) => T | undefined): T[] | undefined {
  const x = o[field];
  if (!Array.isArray(x) || x.length === 0) {
    // A single value is accepted as a one-element axis.
    if (x !== undefined && x !== null && !Array.isArray(x)) return list({ [field]: [x] }, field, v, item);
    v.push({ field, message: 'required: a non-empty list' });
    return undefined;
  }
  if (x.length > 1000) {
    v.push({ field, message: `at most 1000 values; got ${x.length}` });
    return undefined;
  }
  const out: T[] = [];
  x.forEach((e, i) => {
    const r = item(e, `${field}[${i}]`);
    if (r !== undefined) out.push(r);
  });
  if (new Set(out.map((e) => JSON.stringify(e))).size !== out.length) v.push({ field, message: 'values must be distinct' });
  return out.length === x.length ? out : undefined;
}

function opt<T>(o: Record<string, unknown>, field: string, dflt: T, check: (x: unknown, f: string) => T | undefined): T | undefined {
  return o[field] === undefined || o[field] === null ? dflt : check(o[field], field);
}

function int(x: unknown, field: string, v: FieldViolation[], min: number, max: number, allowed: string): number | undefined {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) {
    v.push({ field, message: `must be ${allowed}; got ${JSON.stringify(x)}` });
    return undefined;
  }
  return x;
}

function num(x: unknown, field: string, v: FieldViolation[], ok: (n: number) => boolean, allowed: string): number | undefined {
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) {
    v.push({ field, message: `must be ${allowed}; got ${JSON.stringify(x)}` });
    return undefined;
  }
  return x;
}
