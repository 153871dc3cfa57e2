import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { EarlyStopping } from '../services/worker/src/engine/early-stopping.js';

await tf.setBackend('cpu');

describe('EarlyStopping minDelta (Keras semantics)', () => {
  it('counts an epoch as an improvement only when val_loss beats the best by more than minDelta', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
    const es = new EarlyStopping('head', model, { patience: 1, minDelta: 0.1, restoreBestWeights: false });
    expect(es.onEpochEnd(1, 1.0)).toBe(false); // first epoch: best = 1.0
    expect(es.onEpochEnd(2, 0.95)).toBe(true); // 0.95 + 0.1 is not < 1.0: no improvement, patience 1 runs out
    const es2 = new EarlyStopping('head', model, { patience: 1, minDelta: 0.1, restoreBestWeights: false });
    es2.onEpochEnd(1, 1.0);
    expect(es2.onEpochEnd(2, 0.85)).toBe(false); // 0.85 + 0.1 < 1.0: an improvement
    model.dispose();
  });
});
