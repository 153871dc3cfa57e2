import * as tf from '@tensorflow/tfjs';
import { disposeDataset, loadDataset } from '../../services/worker/src/data/load-dataset.js';
import { backboneInputSize } from '../../services/worker/src/engine/index.js';
import type { SweepBenchOptions } from './options.js';
import { writePortCheck } from './port-check.js';
import { BENCH_SPLIT, benchDataset } from './sweep-spec.js';
import { writeTensorFile } from './tensor-file.js';

/** Test images the torch port is checked on before the PyTorch sweep starts. */
export const PORT_CHECK_IMAGES = 8;

export interface ExportedDataset {
  classNames: string[];
  sizes: { train: number; val: number; test: number };
  source: string;
}

/**
 * Builds the bench's data exactly as a worker does (runner/run-trial.ts:
 * loadDataset with the spec's dataset, the backbone input size, and the
 * split seeded by the spec seed) and writes it for the PyTorch side:
 * `<dataDir>/data.{json,bin}` with trainX/trainY/valX/valY/testX/testY
 * (images NHWC float32 in [0, 1], labels int32), so both frameworks see the
 * same pixels in the same splits. Also writes `<checkDir>/check.*`: the first
 * test images and tfjs' out_relu features of them (port-check.ts).
 */
export async function exportBenchDataset(dataDir: string, checkDir: string, o: SweepBenchOptions): Promise<ExportedDataset> {
  const imageSize = backboneInputSize('mobilenet_v2', o.imageSize);
  const data = await loadDataset(benchDataset(o), { imageSize, split: { ...BENCH_SPLIT, seed: o.seed } });
  try {
    const tensors: Parameters<typeof writeTensorFile>[2] = {};
    for (const s of ['train', 'val', 'test'] as const) {
      tensors[`${s}X`] = { data: (await data[s].x.data()) as Float32Array, shape: [...data[s].x.shape] };
      tensors[`${s}Y`] = { data: (await data[s].y.data()) as Int32Array, shape: [...data[s].y.shape] };
    }
    writeTensorFile(dataDir, 'data', tensors, { classNames: data.classNames, source: data.source, backend: tf.getBackend() });
    const n = Math.min(PORT_CHECK_IMAGES, data.test.x.shape[0]);
    const sample = data.test.x.slice([0, 0, 0, 0], [n, -1, -1, -1]);
    try {
      await writePortCheck(checkDir, sample);
    } finally {
      sample.dispose();
    }
    return {
      classNames: data.classNames,
      sizes: { train: data.train.x.shape[0], val: data.val.x.shape[0], test: data.test.x.shape[0] },
      source: data.source,
    };
  } finally {
    disposeDataset(data);
  }
}
