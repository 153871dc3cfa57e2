import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage } from '../../../worker/src/data/image-folder.js';
import type { TlsweepModelMeta } from '../../../worker/src/engine/export-model.js';
import { applyPreprocessing, PREPROCESS_MODES } from '../../../worker/src/engine/preprocess.js';

export interface Prediction {
  image: string;
  /** Best first. */
  top: Array<{ className: string; probability: number }>;
}

export interface PredictOptions {
  /** Classes listed per image. @default 3 */
  top?: number;
  json?: boolean;
}

/** An exported model folder (`tlsweep export`) loaded for inference. */
export interface LoadedClassifier {
  model: tf.LayersModel;
  meta: TlsweepModelMeta;
}

/** Reads model.json + weights.bin + tlsweep.json from `dir`. */
export async function loadClassifier(dir: string): Promise<LoadedClassifier> {
  const read = (f: string) =>
    readFile(join(dir, f)).catch((err: Error) => {
      throw new Error(`cannot read ${join(dir, f)}: ${err.message} (give a folder written by \`tlsweep export\`)`);
    });
  const meta = JSON.parse((await read('tlsweep.json')).toString('utf8')) as TlsweepModelMeta;
  if (meta.format !== 'tlsweep-model' || !Array.isArray(meta.classNames) || !PREPROCESS_MODES.includes(meta.preprocessing)) {
    throw new Error(`${join(dir, 'tlsweep.json')} is not a tlsweep model description (format, classNames, preprocessing)`);
  }
  const json = JSON.parse((await read('model.json')).toString('utf8')) as { modelTopology: object; weightsManifest: tf.io.WeightsManifestConfig };
  const shards = await Promise.all(json.weightsManifest.flatMap((g) => g.paths).map((p) => read(p)));
  const joined = Buffer.concat(shards);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer,
    }),
  );
  return { model, meta };
}

/**
 * Classifies image files as the trial's data pipeline saw images: decoded to
 * RGB in [0, 1], resized (half-pixel-centre bilinear, as the dataset
 * loaders do), preprocessed with the model's saved mode.
 */
export async function classifyImages(c: LoadedClassifier, images: string[], top = 3): Promise<Prediction[]> {
  const [H, W] = c.meta.inputSize;
  const out: Prediction[] = [];
  for (const image of images) {
    let raw;
    try {
      raw = decodeImage(await readFile(image));
    } catch (err) {
      throw new Error(`${image}: ${(err as Error).message}`);
    }
    const probs = tf.tidy(() => {
      let x = tf.tensor4d(raw.data, [1, raw.height, raw.width, raw.channels], 'int32').toFloat().div(255) as tf.Tensor4D;
      if (raw.channels === 1) x = tf.tile(x, [1, 1, 1, 3]);
      const sized = raw.height === H && raw.width === W ? x : (tf.clipByValue(tf.image.resizeBilinear(x, [H, W], false, true), 0, 1) as tf.Tensor4D);
      return (c.model.predict(applyPreprocessing(c.meta.preprocessing, sized)) as tf.Tensor2D).reshape([-1]) as tf.Tensor1D;
    });
    let p = Array.from(await probs.data());
    probs.dispose();
    // The binary sigmoid head (recipe binaryHead) outputs P(class 1) alone.
    if (p.length === 1 && c.meta.classNames.length === 2) p = [1 - p[0], p[0]];
    const ranked = p.map((probability, k) => ({ className: c.meta.classNames[k] ?? `class_${k}`, probability })).sort((a, b) => b.probability - a.probability);
    out.push({ image, top: ranked.slice(0, top) });
  }
  return out;
}

/** `tlsweep predict <dir> <images...> [--top N] [--json]`. */
export async function predictImages(dir: string, images: string[], o: PredictOptions = {}, out: (s: string) => void = console.log): Promise<Prediction[]> {
  if (images.length === 0) throw new Error('predict: give at least one PNG or JPEG image');
  const c = await loadClassifier(dir);
  try {
    const preds = await classifyImages(c, images, o.top ?? 3);
    if (o.json) out(JSON.stringify(preds, null, 2));
    else for (const p of preds) out(`${p.image}: ${p.top.map((t) => `${t.className} ${(100 * t.probability).toFixed(1)}%`).join(', ')}`);
    return preds;
  } finally {
    c.model.dispose();
  }
}
