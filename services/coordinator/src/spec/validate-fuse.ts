import type { FieldViolation } from '../errors.js';
import { SPEC_DEFAULTS, SPEC_LIMITS, type FuseSpec } from './sweep-spec.js';

/**
 * `fuse:` as written: absent or `true` → the defaults; `false` → off (one
 * trial per work unit); `{ maxTrials, shareHeads }` → at most that many
 * trials per unit, and head-only trials join a fine-tune unit whose phase 1 they share.
 */
export function validateFuse(x: unknown, v: FieldViolation[]): FuseSpec | null {
  if (x === undefined || x === null || x === true) return { maxTrials: SPEC_DEFAULTS.fuse.maxTrials };
  if (x === false) return null;
  if (typeof x !== 'object' || Array.isArray(x)) {
    v.push({ field: 'fuse', message: `must be false, true or a mapping {maxTrials, shareHeads}; got ${JSON.stringify(x)}` });
    return null;
  }
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'maxTrials' && k !== 'shareHeads') v.push({ field: `fuse.${k}`, message: 'unknown field; allowed: maxTrials, shareHeads' });
  if (o.shareHeads !== undefined && typeof o.shareHeads !== 'boolean') {
    v.push({ field: 'fuse.shareHeads', message: `must be true or false; got ${JSON.stringify(o.shareHeads)}` });
    return null;
  }
  const m = o.maxTrials ?? SPEC_DEFAULTS.fuse.maxTrials;
  if (!Number.isInteger(m) || (m as number) < 1 || (m as number) > SPEC_LIMITS.maxFuseTrials) {
    v.push({ field: 'fuse.maxTrials', message: `must be an integer in 1..${SPEC_LIMITS.maxFuseTrials}; got ${JSON.stringify(m)}` });
    return null;
  }
  return { maxTrials: m as number, ...(o.shareHeads ? { shareHeads: true } : {}) };
}
