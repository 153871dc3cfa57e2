import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { BACKBONE_CATALOG, expandRanges } from '../services/worker/src/engine/backbones/catalog.js';
import { catalogCut } from '../services/worker/src/engine/backbones/catalog-cut.js';
import { cleanCutIndices, cutForUnfreeze, loadBackbone, resolveUnfreeze } from '../services/worker/src/engine/index.js';
import type { UnfreezeSpec } from '../services/worker/src/engine/recipe-options.js';

describe('backbone catalog (what the coordinator validates specs against)', () => {
  it.each(Object.entries(BACKBONE_CATALOG))('%s: layer count, default size, pretrained flag, clean cuts and block starts match the built model', async (name, info) => {
    await tf.setBackend('cpu');
    const b = await loadBackbone(name);
    try {
      expect(b.model.layers.length).toBe(info.layers);
      expect(b.inputSize).toEqual([info.defaultSize, info.defaultSize]);
      expect(b.pretrained).toBe(info.pretrained);
      if (info.blocks !== undefined) expect(b.blockStarts).toHaveLength(info.blocks);
      expect(expandRanges(info.cleanCuts!)).toEqual(cleanCutIndices(b.model));
      expect(expandRanges(info.blockStarts!)).toEqual([...b.blockStarts]);
      // The planner's tfjs-free cut equals the worker's for every form of the depth.
      const depths: UnfreezeSpec[] = [0, 1, 3, Math.floor(info.layers / 2), info.layers - 1, { blocks: 1 }, { blocks: b.blockStarts.length }, { fineTuneAt: 1 }, { fineTuneAt: b.blockStarts[1] + 1 }];
      for (const unfreeze of depths) {
        const depth = resolveUnfreeze(unfreeze, b);
        const expected = depth.layers === 0 ? 'none' : cutForUnfreeze(b.model, depth.layers);
        expect(catalogCut(name, unfreeze, 3), JSON.stringify(unfreeze)).toBe(expected);
      }
    } finally {
      b.model.dispose();
    }
  });
});
