import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { BACKBONE_CATALOG } from '../services/worker/src/engine/backbones/catalog.js';
import { loadBackbone } from '../services/worker/src/engine/index.js';

describe('backbone catalog (what the coordinator validates specs against)', () => {
  it.each(Object.entries(BACKBONE_CATALOG))('%s: layer count, default size and pretrained flag match the built model', async (name, info) => {
    await tf.setBackend('cpu');
    const b = await loadBackbone(name);
    try {
      expect(b.model.layers.length).toBe(info.layers);
      expect(b.inputSize).toEqual([info.defaultSize, info.defaultSize]);
      expect(b.pretrained).toBe(info.pretrained);
      if (info.blocks !== undefined) expect(b.blockStarts).toHaveLength(info.blocks);
    } finally {
      b.model.dispose();
    }
  });
});
