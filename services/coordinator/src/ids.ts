import { randomBytes } from 'node:crypto';

/**
 * Sweep ids are NATS subject tokens and KV key segments: lowercase letters
 * and digits only. Time-ordered prefix so listings sort by age.
 */
export function newSweepId(now = Date.now()): string {
  const rand = [...randomBytes(5)].map((b) => (b % 36).toString(36)).join('');
  return `sw${now.toString(36)}${rand}`;
}

export function trialIdOf(sweepId: string, index: number): string {
  return `${sweepId}-t${String(index).padStart(4, '0')}`;
}
