import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadBackbone } from '../../services/worker/src/engine/index.js';
import { runPython } from './run-python.js';
import { writeTensorFile } from './tensor-file.js';

export const PORT_CHECK_SCRIPT = fileURLToPath(new URL('./torch_port_check.py', import.meta.url));

/** torch_port_check.py's verdict. */
export interface PortCheckResult {
  ok: boolean;
  images: number;
  imageSize: number;
  featureShape: number[];
  /** Largest |torch − tfjs| over every out_relu value. */
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** Largest |tfjs feature|, for scale (ReLU6: at most 6). */
  maxFeature: number;
  tolerance: number;
  padding: string;
  error?: string;
}

/**
 * Writes `<dir>/check.{json,bin}`: `images` (NHWC in [0, 1], what the
 * mobilenet_v2 backbone receives; its preprocessing is the identity) and
 * tfjs' `out_relu` features of them from the pretrained backbone in inference
 * mode (`predict`), the reference the torch port must reproduce.
 */
export async function writePortCheck(dir: string, images: tf.Tensor4D): Promise<void> {
  const size = images.shape[1];
  const backbone = await loadBackbone('mobilenet_v2', { imageSize: size });
  try {
    const features = tf.tidy(() => backbone.model.predict(backbone.preprocess(images)) as tf.Tensor4D);
    try {
      writeTensorFile(dir, 'check', {
        images: { data: (await images.data()) as Float32Array, shape: [...images.shape] },
        features: { data: (await features.data()) as Float32Array, shape: [...features.shape] },
      }, { backend: tf.getBackend(), weightsSource: backbone.weightsSource });
    } finally {
      features.dispose();
    }
  } finally {
    backbone.model.dispose();
  }
}

/** Runs torch_port_check.py on a check written by {@link writePortCheck}. */
export async function runPortCheck(o: { python: string; weightsDir: string; checkDir: string; torchvisionPadding?: boolean }): Promise<PortCheckResult> {
  const args = ['--weights', o.weightsDir, '--check', o.checkDir, ...(o.torchvisionPadding ? ['--torchvision-padding'] : [])];
  const run = await runPython(o.python, PORT_CHECK_SCRIPT, args);
  if (run.code !== 0 || run.result === null) {
    throw new Error(`torch port check failed (exit ${run.code}): ${run.stderr.trim().split('\n').slice(-5).join('\n')}`);
  }
  return run.result as PortCheckResult;
}
