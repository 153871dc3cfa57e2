/**
 * The augmentation recipe (Keras `ImageDataGenerator` knobs the seed
 * tutorials use), its defaults and its validation. Free of tfjs so the
 * coordinator can validate specs with it; the pixels move in augment.ts.
 */

/** A closed range [min, max] a value is drawn from uniformly. */
export type Range = [number, number];

/** As the spec writes it: a number n means the symmetric range [-n, n] (zoom: [1-n, 1+n]), as in Keras. */
export interface AugmentationInput {
  /** Rotation in degrees; positive turns the content counter-clockwise. @default 0 */
  rotation?: number | Range;
  /** Horizontal shift as a fraction of the width; positive moves the content right. @default 0 */
  widthShift?: number | Range;
  /** Vertical shift as a fraction of the height; positive moves the content down. @default 0 */
  heightShift?: number | Range;
  /** Mirror left-right with probability 1/2. @default false */
  horizontalFlip?: boolean;
  /**
   * Zoom factor range, Keras semantics: a factor z samples z× the image
   * extent, so z < 1 zooms in and z > 1 zooms out; x and y are drawn
   * independently. @default 0 (none)
   */
  zoom?: number | Range;
  /** How points outside the image are filled. Only Keras' default, `nearest` (repeat the edge), is supported. @default 'nearest' */
  fillMode?: string;
  /**
   * Augmented views of the training split computed through the frozen
   * prefix; epoch e trains on view (e−1) mod passes. @default 4
   */
  passes?: number;
}

/** A validated recipe with every default filled in and every knob as a range. */
export interface AugmentationConfig {
  rotation: Range;
  widthShift: Range;
  heightShift: Range;
  horizontalFlip: boolean;
  zoom: Range;
  fillMode: 'nearest';
  passes: number;
}

/**
 * 4 views: the frozen prefix costs `passes` forward runs of the training
 * split, so every view is paid for once per cache key, while each additional
 * view adds less regularisation than the one before. With the default recipe
 * (5 head + 3 fine-tune epochs) 4 views show each one twice — still half the
 * cost of Keras' fresh view every epoch, and the views are shared by every
 * trial with the same key.
 */
export const DEFAULT_AUGMENT_PASSES = 4;
export const MAX_AUGMENT_PASSES = 64;
export const AUGMENT_FIELDS = ['rotation', 'widthShift', 'heightShift', 'horizontalFlip', 'zoom', 'fillMode', 'passes'] as const;

export interface AugmentViolation {
  field: string;
  message: string;
}

function range(x: unknown, field: string, v: AugmentViolation[], o: { symmetricAround: number; min: number; max: number; unit: string }): Range | undefined {
  const bad = () => {
    v.push({ field, message: `must be a number n (the range [${o.symmetricAround}-n, ${o.symmetricAround}+n]) or [min, max], within [${o.min}, ${o.max}] ${o.unit}; got ${JSON.stringify(x)}` });
    return undefined;
  };
  let r: Range;
  if (typeof x === 'number') {
    if (!Number.isFinite(x) || x < 0) return bad();
    r = [o.symmetricAround - x, o.symmetricAround + x];
  } else if (Array.isArray(x) && x.length === 2 && x.every((e) => typeof e === 'number' && Number.isFinite(e))) {
    r = [x[0] as number, x[1] as number];
    if (r[0] > r[1]) return bad();
  } else {
    return bad();
  }
  return r[0] < o.min || r[1] > o.max ? bad() : r;
}

/**
 * Validates the spec's `augmentation` mapping and fills in defaults.
 * Returns null (no augmentation) for an absent value; pushes one violation
 * per bad field, named `<field>.<knob>`.
 */
export function normalizeAugmentation(raw: unknown, v: AugmentViolation[], field = 'augmentation'): AugmentationConfig | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    v.push({ field, message: `must be a mapping of ${AUGMENT_FIELDS.join(', ')}` });
    return null;
  }
  const o = raw as Record<string, unknown>;
  const before = v.length;
  for (const k of Object.keys(o)) {
    if (!(AUGMENT_FIELDS as readonly string[]).includes(k)) v.push({ field: `${field}.${k}`, message: `unknown field; allowed: ${AUGMENT_FIELDS.join(', ')}` });
  }
  const knob = (k: string, dflt: Range, opts: Parameters<typeof range>[3]) => (o[k] === undefined ? dflt : range(o[k], `${field}.${k}`, v, opts));
  const rotation = knob('rotation', [0, 0], { symmetricAround: 0, min: -180, max: 180, unit: 'degrees' });
  const widthShift = knob('widthShift', [0, 0], { symmetricAround: 0, min: -1, max: 1, unit: '(fraction of the width)' });
  const heightShift = knob('heightShift', [0, 0], { symmetricAround: 0, min: -1, max: 1, unit: '(fraction of the height)' });
  // A zoom factor near 0 would sample a single point; 0.1 (10× in) is already extreme.
  const zoom = knob('zoom', [1, 1], { symmetricAround: 1, min: 0.1, max: 10, unit: '(factor; Keras: z < 1 zooms in)' });
  const horizontalFlip = o.horizontalFlip ?? false;
  if (typeof horizontalFlip !== 'boolean') v.push({ field: `${field}.horizontalFlip`, message: `must be true or false; got ${JSON.stringify(horizontalFlip)}` });
  const fillMode = o.fillMode ?? 'nearest';
  if (fillMode !== 'nearest') {
    v.push({ field: `${field}.fillMode`, message: `only 'nearest' (repeat the edge pixels, Keras' default) is supported; got ${JSON.stringify(fillMode)}` });
  }
  const passes = o.passes ?? DEFAULT_AUGMENT_PASSES;
  if (typeof passes !== 'number' || !Number.isInteger(passes) || passes < 1 || passes > MAX_AUGMENT_PASSES) {
    v.push({ field: `${field}.passes`, message: `must be an integer in 1..${MAX_AUGMENT_PASSES} (augmented views of the training split); got ${JSON.stringify(passes)}` });
  }
  if (v.length > before) return null;
  return { rotation: rotation!, widthShift: widthShift!, heightShift: heightShift!, horizontalFlip: horizontalFlip as boolean, zoom: zoom!, fillMode: 'nearest', passes: passes as number };
}

/** What is wrong with an already normalized recipe (e.g. one that came over the wire), or null. */
export function augmentationProblem(a: AugmentationConfig): string | null {
  const v: AugmentViolation[] = [];
  normalizeAugmentation(a, v, 'augmentation');
  return v.length ? v.map((e) => `${e.field}: ${e.message}`).join('; ') : null;
}

/** True when the recipe leaves every image unchanged (then no augmentation runs at all). */
export function isIdentityAugmentation(a: AugmentationConfig | null | undefined): boolean {
  if (!a) return true;
  const zero = (r: Range) => r[0] === 0 && r[1] === 0;
  return zero(a.rotation) && zero(a.widthShift) && zero(a.heightShift) && !a.horizontalFlip && a.zoom[0] === 1 && a.zoom[1] === 1;
}

/** A stable text of the recipe for cache keys (field order fixed). */
export function augmentationKey(a: AugmentationConfig): string {
  return `aug(r=${a.rotation},w=${a.widthShift},h=${a.heightShift},f=${a.horizontalFlip},z=${a.zoom},fill=${a.fillMode},passes=${a.passes})`;
}
