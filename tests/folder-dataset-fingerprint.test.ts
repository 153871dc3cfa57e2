import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrialConfig } from '../services/coordinator/src/spec/sweep-spec.js';
import { selectBackend } from '../services/worker/src/engine/index.js';
import { FeatureMemo } from '../services/worker/src/engine/feature-memo.js';
import { DiskFeatureStore } from '../services/worker/src/engine/feature-cache/disk-cache.js';
import type { FeatureCacheEvent } from '../services/worker/src/engine/feature-cache/tiered-lookup.js';
import { loadRawDatasetCached } from '../services/worker/src/data/load-dataset.js';
import { runTrial } from '../services/worker/src/runner/run-trial.js';

const { PNG } = pngjs;

/** A 12×12 PNG: a bright square whose position depends on the class, shifted by `k`. */
function image(cls: number, k: number, tint = 0): Buffer {
  const p = new PNG({ width: 12, height: 12 });
  for (let y = 0; y < 12; y++) for (let x = 0; x < 12; x++) {
    const on = cls === 0 ? x < 6 && y < 6 + (k % 3) : x >= 6 - (k % 3) && y >= 6;
    const v = on ? 230 : 20 + tint;
    p.data.set([v, on ? v : tint, 40, 255], 4 * (y * 12 + x));
  }
  return PNG.sync.write(p);
}

describe('folder dataset: the feature cache keys on the files\' content', () => {
  let root: string;
  beforeAll(async () => {
    await selectBackend('cpu');
    root = await mkdtemp(join(tmpdir(), 'tlsweep-folder-fp-'));
    for (const [c, name] of ['circle', 'square'].entries()) {
      await mkdir(join(root, 'data', name), { recursive: true });
      for (let k = 0; k < 10; k++) await writeFile(join(root, 'data', name, `${k}.png`), image(c, k));
    }
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('reuses features while the files are unchanged and computes them again after one image is edited', async () => {
    const disk = new DiskFeatureStore({ dir: join(root, 'cache'), maxBytes: 1 << 26 });
    const config: TrialConfig = {
      trialId: 't', sweepId: 's', index: 0, backbone: 'tiny_cnn', unfreeze: 0, learningRate: 0.01, dropout: 0.1,
      dataset: { kind: 'folder', path: join(root, 'data') }, datasetLabel: 'folder', imageSize: 16,
      headUnits: 8, headEpochs: 1, fineTuneEpochs: 0, fineTuneLrFactor: 0.1, batchSize: 8, seed: 1,
      split: { valFraction: 0.2, testFraction: 0.2 }, augmentation: null,
    };
    const run = async () => {
      const events: FeatureCacheEvent[] = [];
      // A fresh memo each time, as a fresh worker process: only the disk tier remembers.
      await runTrial(config, { onEpoch: async () => 'CONTINUE' }, { memo: new FeatureMemo(1 << 26), stores: [disk], onEvent: (e) => events.push(e) });
      return events.map((e) => e.type === 'hit' ? `hit:${(e as { tier: string }).tier}` : e.type);
    };
    expect(await run()).toContain('computed');
    expect(await run()).toEqual(['hit:disk']);

    // Same path, same file names and count; one image's pixels differ.
    const before = await loadRawDatasetCached(config.dataset);
    const edited = join(root, 'data', 'square', '3.png');
    await writeFile(edited, image(1, 3, 90));
    const later = new Date(Date.now() + 5000);
    await utimes(edited, later, later);
    const after = await loadRawDatasetCached(config.dataset);
    expect(after.contentDigest).not.toBe(before.contentDigest);
    expect(after).not.toBe(before); // the decoded-image cache reloaded the changed folder
    expect(await run()).toContain('computed');
    expect(await run()).toEqual(['hit:disk']);
  });
});
