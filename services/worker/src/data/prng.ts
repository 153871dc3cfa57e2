/**
 * Small, fast, seeded pseudo-random number generation for reproducible
 * sampling, splitting and synthetic data. Not cryptographically secure.
 */

/** A function returning uniformly distributed floats in [0, 1). */
export type Rng = () => number;

/** An Rng whose position can be read and restored (checkpoints resume a shuffle stream exactly). */
export interface SeededRng extends Rng {
  /** The generator's 32-bit state after the draws so far; `mulberry32FromState(state)` continues from here. */
  readonly state: number;
}

/**
 * mulberry32: a 32-bit-state PRNG (Tommy Ettinger). Same seed → same stream
 * on every platform.
 *
 * @param seed any number; only its low 32 bits (after truncation toward
 *   zero) are used, so `1` and `1.9` give the same stream.
 * @returns a generator of floats in [0, 1).
 */
export function mulberry32(seed: number): SeededRng {
  return mulberry32FromState((Math.trunc(seed) | 0) >>> 0);
}

/** A mulberry32 generator continuing from a state read from another one's `state`. */
export function mulberry32FromState(state: number): SeededRng {
  let a = state | 0;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Object.defineProperty(next, 'state', { get: () => a >>> 0, enumerable: true }) as SeededRng;
}

/**
 * Derives a 32-bit seed from a base seed and a list of strings/numbers
 * (FNV-1a over their text), so independent streams (e.g. one per class name)
 * can be drawn from one user-facing seed.
 */
export function deriveSeed(base: number, ...parts: Array<string | number>): number {
  let h = (0x811c9dc5 ^ (Math.trunc(base) | 0)) >>> 0;
  for (const part of parts) {
    const s = `\u0000${String(part)}`;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

/** Uniform integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher–Yates shuffle of `arr` in place; returns `arr`. */
export function shuffleInPlace<T>(arr: T[], rng: Rng): T[] {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const tmp = arr[i];
    arr[i] = arr[j];
    arr[j] = tmp;
  }
  return arr;
}

/** Approximately standard-normal sample (Box–Muller). */
export function randNormal(rng: Rng): number {
  const u = 1 - rng(); // (0, 1]
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
