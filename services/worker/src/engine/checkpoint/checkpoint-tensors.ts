import * as tf from '@tensorflow/tfjs';
import { setSlotOrder, slotOrderOf } from '../optimizer.js';
import type { NamedTensorData, TensorData } from './trial-checkpoint.js';

async function dataOf(t: tf.Tensor): Promise<TensorData> {
  const dtype = t.dtype === 'int32' ? 'int32' : 'float32';
  const values = (await t.data()) as Float32Array | Int32Array;
  return { shape: [...t.shape], dtype, values: dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values) };
}

const tensorOf = (d: TensorData): tf.Tensor => tf.tensor(d.values, d.shape, d.dtype);

/** Every weight of `model` by originalName (unique variable names differ from process to process). */
export async function captureWeights(model: tf.LayersModel): Promise<NamedTensorData> {
  const out: NamedTensorData = [];
  const seen = new Set<string>();
  for (const w of model.weights) {
    if (seen.has(w.originalName)) throw new Error(`two weights named '${w.originalName}': cannot checkpoint by name`);
    seen.add(w.originalName);
    out.push([w.originalName, await dataOf(w.read())]);
  }
  return out;
}

/** Writes saved weights back into `model`, matched by originalName; every weight must be there with its shape. */
export function restoreWeights(model: tf.LayersModel, saved: NamedTensorData): void {
  const byName = new Map(saved);
  for (const w of model.weights) {
    const d = byName.get(w.originalName);
    if (!d) throw new Error(`checkpoint lacks weight '${w.originalName}'`);
    if (d.shape.join('x') !== w.shape.join('x')) throw new Error(`checkpoint weight '${w.originalName}' has shape [${d.shape}], the model [${w.shape}]`);
    const t = tensorOf(d);
    w.write(t); // the variable takes its own reference
    t.dispose();
  }
}

/** Unique variable name → originalName for a model's weights, and back. */
export function variableNames(model: tf.LayersModel): { toOriginal: Map<string, string>; toUnique: Map<string, string> } {
  const toOriginal = new Map<string, string>();
  const toUnique = new Map<string, string>();
  for (const w of model.weights) {
    toOriginal.set(w.name, w.originalName);
    toUnique.set(w.originalName, w.name);
  }
  return { toOriginal, toUnique };
}

/** `<variable>/<slot>` with the variable part renamed; names without a known variable (e.g. `iter`) stay. */
function renameSlot(name: string, map: Map<string, string>): string {
  const cut = name.lastIndexOf('/');
  if (cut < 0) return name;
  const variable = map.get(name.slice(0, cut));
  return variable === undefined ? name : `${variable}${name.slice(cut)}`;
}

/** The optimizer's slots and iteration count, named by originalName, and keepSlotsPerVariable's order. */
export async function captureOptimizer(optimizer: tf.Optimizer, model: tf.LayersModel): Promise<{ weights: NamedTensorData; slotOrder: string[] | null }> {
  const { toOriginal } = variableNames(model);
  const named = await optimizer.getWeights();
  const weights: NamedTensorData = [];
  try {
    for (const { name, tensor } of named) weights.push([renameSlot(name, toOriginal), await dataOf(tensor)]);
  } finally {
    // getWeights makes a fresh scalar for the iteration count; the slots are the optimizer's own variables.
    named.filter((w) => w.name === 'iter').forEach((w) => w.tensor.dispose());
  }
  const order = slotOrderOf(optimizer);
  return { weights, slotOrder: order ? order.map((n) => toOriginal.get(n) ?? n) : null };
}

/** Puts saved slots back into a fresh optimizer of the same kind, before its first step. */
export async function restoreOptimizer(optimizer: tf.Optimizer, model: tf.LayersModel, saved: { weights: NamedTensorData; slotOrder: string[] | null }): Promise<void> {
  const { toUnique } = variableNames(model);
  const tensors = saved.weights.map(([name, d]) => ({ name: renameSlot(name, toUnique), tensor: tensorOf(d) }));
  try {
    await optimizer.setWeights(tensors);
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
  if (saved.slotOrder) setSlotOrder(optimizer, saved.slotOrder.map((n) => toUnique.get(n) ?? n));
}

/** Tensors of a saved early-stopping state, for EarlyStopping.restore (the caller disposes them). */
export function tensorsOf(saved: NamedTensorData): Array<[string, tf.Tensor]> {
  return saved.map(([name, d]) => [name, tensorOf(d)]);
}

/** An early-stopping state's best weights as plain data. */
export async function dataOfNamed(named: Array<[string, tf.Tensor]>): Promise<NamedTensorData> {
  const out: NamedTensorData = [];
  for (const [name, t] of named) out.push([name, await dataOf(t)]);
  return out;
}
