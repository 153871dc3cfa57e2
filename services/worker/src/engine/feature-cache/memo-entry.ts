import * as tf from '@tensorflow/tfjs';
import type { MemoFeatures } from '../feature-memo.js';
import type { Split } from '../trial-features.js';
import type { RawTensor } from './entry-codec.js';

const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** Reads every tensor of `f` into named float32 arrays (pooled.*, activations.*, pass<i>.pooled, pass<i>.activations). */
export async function memoToRaw(f: MemoFeatures): Promise<RawTensor[]> {
  const named: Array<[string, tf.Tensor]> = [];
  for (const s of SPLITS) named.push([`pooled.${s}`, f.pooled[s]]);
  if (f.activations) for (const s of SPLITS) named.push([`activations.${s}`, f.activations[s]]);
  const extra = f.extraTrainPasses;
  extra?.pooled.forEach((t, i) => named.push([`pass${i + 1}.pooled`, t]));
  extra?.activations?.forEach((t, i) => named.push([`pass${i + 1}.activations`, t]));
  const out: RawTensor[] = [];
  for (const [name, t] of named) {
    if (t.dtype !== 'float32') throw new Error(`feature tensor '${name}' is ${t.dtype}; the cache stores float32`);
    out.push({ name, shape: [...t.shape], data: (await t.data()) as Float32Array });
  }
  return out;
}

/**
 * Tensors again from what `memoToRaw` wrote; the caller owns them. Throws
 * when names are missing or out of place, so a well-formed entry with the
 * wrong content is treated like a corrupt one.
 */
export function rawToMemo(raw: readonly RawTensor[]): MemoFeatures {
  const byName = new Map(raw.map((r) => [r.name, r]));
  if (byName.size !== raw.length) throw new Error('feature entry repeats a tensor name');
  const used = new Set<string>();
  const take = (name: string): RawTensor | undefined => {
    const r = byName.get(name);
    if (r) used.add(name);
    return r;
  };
  const need = (name: string): RawTensor => {
    const r = take(name);
    if (!r) throw new Error(`feature entry lacks '${name}'`);
    return r;
  };
  const passes = (kind: 'pooled' | 'activations'): RawTensor[] => {
    const out: RawTensor[] = [];
    for (let i = 1; ; i++) {
      const r = take(`pass${i}.${kind}`);
      if (!r) return out;
      out.push(r);
    }
  };
  const pooledRaw = SPLITS.map((s) => need(`pooled.${s}`));
  const hasActivations = byName.has('activations.train');
  const actRaw = hasActivations ? SPLITS.map((s) => need(`activations.${s}`)) : null;
  const extraPooled = passes('pooled');
  const extraAct = hasActivations ? passes('activations') : [];
  if (used.size !== raw.length) throw new Error(`feature entry has unexpected tensors: ${raw.map((r) => r.name).filter((n) => !used.has(n)).join(', ')}`);
  if (hasActivations && extraAct.length !== extraPooled.length) throw new Error('feature entry has unequal pooled and activation passes');
  // Only now make tensors, so a malformed entry leaks nothing.
  const t = (r: RawTensor) => tf.tensor(r.data, r.shape, 'float32');
  const splits = (rs: RawTensor[]) => ({ train: t(rs[0]), val: t(rs[1]), test: t(rs[2]) });
  return {
    pooled: splits(pooledRaw),
    activations: actRaw ? splits(actRaw) : null,
    extraTrainPasses: extraPooled.length > 0 ? { pooled: extraPooled.map(t), activations: hasActivations ? extraAct.map(t) : null } : undefined,
  };
}
