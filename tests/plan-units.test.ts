import { describe, expect, it } from 'vitest';
import { featureKey, fusableGroups, fusionKey, headFusionKey, planUnits } from '../services/coordinator/src/planner/plan-units.js';
import { expandAll } from '../services/coordinator/src/searchers/searcher.js';
import { createSearcher } from '../services/coordinator/src/searchers/create-searcher.js';
import { parseSweepSpec } from '../services/coordinator/src/spec/validate-spec.js';
import type { TrialConfig } from '../services/coordinator/src/spec/sweep-spec.js';
import { RECIPE_DEFAULTS } from '../services/worker/src/engine/recipe-options.js';

function config(index: number, over: Partial<TrialConfig> = {}): TrialConfig {
  return {
    trialId: `sw-t${index}`, sweepId: 'sw', index, backbone: 'mobilenet_v2', unfreeze: 0, learningRate: 0.01, dropout: 0.2,
    dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic', imageSize: 32, headUnits: 16, headEpochs: 2, fineTuneEpochs: 1,
    fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 }, recipe: { ...RECIPE_DEFAULTS }, augmentation: null,
    ...over,
  };
}

describe('planner: work units and fusable groups', () => {
  it('trials that differ only in learning rate, dropout or head units share a unit and fuse', () => {
    const a = config(0);
    const b = config(1, { learningRate: 0.001, dropout: 0.5, headUnits: 64 });
    expect(featureKey(a)).toBe(featureKey(b));
    expect(fusionKey(a)).toBe(fusionKey(b));
    expect(fusableGroups([a, b])).toEqual([[a, b]]);
  });

  it('depths that resolve to the same clean cut share features but do not fuse', () => {
    // MobileNetV2 (155 layers): unfreeze 15 and 18 put the first trainable layer inside block_15 (140, 137): both cut at 134 (block_14_add).
    const a = config(0, { unfreeze: 15 });
    const b = config(1, { unfreeze: 18 });
    const c = config(2, { unfreeze: { blocks: 2 } }); // first trainable 135: cut 134 too
    expect(featureKey(a)).toBe(featureKey(b));
    expect(featureKey(a)).toBe(featureKey(c));
    expect(fusionKey(a)).not.toBe(fusionKey(b));
    expect(fusableGroups([a, b, c])).toHaveLength(3);
    // A deeper cut, head-only, another size, seed, dataset or augmentation: other features.
    for (const other of [config(3, { unfreeze: 30 }), config(4, { unfreeze: 0 }), config(5, { unfreeze: 15, imageSize: 48 }), config(6, { unfreeze: 15, seed: 1 }),
      config(7, { unfreeze: 15, dataset: { kind: 'synthetic', seed: 3 } }), config(8, { unfreeze: 15, backbone: 'tiny_cnn' })]) {
      expect(featureKey(other)).not.toBe(featureKey(a));
    }
    // fineTuneAt by name: the catalog cannot resolve it, the depth as written stands in.
    expect(featureKey(config(9, { unfreeze: { fineTuneAt: 'block_15_expand' } }))).not.toBe(featureKey(a));
    // A recipe difference keeps the features but not the fusion.
    const d = config(10, { unfreeze: 15, recipe: { ...RECIPE_DEFAULTS, optimizer: 'sgd' } });
    expect(featureKey(d)).toBe(featureKey(a));
    expect(fusionKey(d)).not.toBe(fusionKey(a));
  });

  it('caps units at min(fuse.maxTrials, maxParallel / 2), in near-equal parts, and fuse: null gives one trial per unit', () => {
    const spec = parseSweepSpec(`
name: plan
dataset: { kind: synthetic }
backbones: [mobilenet_v2]
imageSize: 32
unfreeze: [0, 15]
learningRates: [0.1, 0.01, 0.001]
dropouts: [0.2, 0.3, 0.5]
maxParallel: 16
`);
    expect(spec.fuse).toEqual({ maxTrials: 8 });
    const configs = expandAll(createSearcher(spec)).map((p, index) => config(index, { ...p, trialId: `sw-t${index}` }));
    const units = planUnits(configs, spec.fuse!, spec.maxParallel);
    // 9 trials per depth, cap 8 → 5 + 4 per depth.
    expect(units.map((u) => u.trialIds.length)).toEqual([5, 4, 5, 4]);
    expect(new Set(units.flatMap((u) => u.trialIds)).size).toBe(18);
    for (const u of units) expect(new Set(u.trialIds.map((id) => featureKey(configs.find((c) => c.trialId === id)!))).size).toBe(1);
    expect(units[0].unitId).toBe(`${units[0].trialIds[0]}+4`);
    expect(planUnits(configs, { maxTrials: 8 }, 6).map((u) => u.trialIds.length)).toEqual([3, 3, 3, 3, 3, 3]);
    expect(planUnits(configs, { maxTrials: 8 }, 1)).toHaveLength(18);
    const single = planUnits(configs, null, 8);
    expect(single).toHaveLength(18);
    expect(single[0]).toEqual({ unitId: configs[0].trialId, trialIds: [configs[0].trialId] });
    // Deterministic: a restarted coordinator plans the same units.
    expect(planUnits([...configs].reverse(), spec.fuse!, spec.maxParallel)).toEqual(units);
  });

  it('fuse: false and bad fuse values', () => {
    const base = 'name: f\ndataset: {kind: synthetic}\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.01]\ndropouts: [0.1]\n';
    expect(parseSweepSpec(`${base}fuse: false`).fuse).toBeNull();
    expect(parseSweepSpec(`${base}fuse: {maxTrials: 3}`).fuse).toEqual({ maxTrials: 3 });
    expect(() => parseSweepSpec(`${base}fuse: {maxTrials: 0}`)).toThrow(/fuse.maxTrials/);
    expect(() => parseSweepSpec(`${base}fuse: {max: 3}`)).toThrow(/fuse.max/);
    expect(() => parseSweepSpec(`${base}fuse: 3`)).toThrow(/fuse/);
    expect(parseSweepSpec(`${base}fuse: {maxTrials: 3, shareHeads: true}`).fuse).toEqual({ maxTrials: 3, shareHeads: true });
    expect(parseSweepSpec(`${base}fuse: {shareHeads: false}`).fuse).toEqual({ maxTrials: 8 });
    expect(() => parseSweepSpec(`${base}fuse: {shareHeads: 1}`)).toThrow(/fuse.shareHeads/);
  });
});

describe('planner: shared phase 1 (fuse.shareHeads)', () => {
  // The bench grid: unfreeze {0, 11, 20} × 3 learning rates × 2 dropouts on MobileNetV2 (cuts 143 and 134).
  const spec = parseSweepSpec(`
name: share
dataset: { kind: synthetic }
backbones: [mobilenet_v2]
imageSize: 32
unfreeze: [0, 11, 20]
learningRates: [0.001, 0.0003, 0.0001]
dropouts: [0.2, 0.5]
maxParallel: 36
fuse: { maxTrials: 12, shareHeads: true }
`);
  const configs = expandAll(createSearcher(spec)).map((p, index) => config(index, { ...p, trialId: `sw-t${index}` }));
  const byId = (id: string) => configs.find((c) => c.trialId === id)!;

  it('head-only trials join the fine-tune unit that unfreezes the fewest layers; each fine-tune depth keeps its own unit', () => {
    const units = planUnits(configs, spec.fuse!, spec.maxParallel);
    expect(units).toHaveLength(2);
    const depths = units.map((u) => [...new Set(u.trialIds.map((id) => byId(id).unfreeze))].sort((a, b) => Number(a) - Number(b)));
    expect(depths).toEqual(expect.arrayContaining([[0, 11], [20]]));
    expect(new Set(units.flatMap((u) => u.trialIds)).size).toBe(18);
    // The worker sees one fusable group per unit: head-only trials ride on the fine-tune group.
    for (const u of units) expect(fusableGroups(u.trialIds.map(byId), { shareHeads: true })).toHaveLength(1);
    // Without shareHeads: one unit per cut, head-only trials on their own.
    const plain = planUnits(configs, { maxTrials: 12 }, spec.maxParallel);
    expect(plain).toHaveLength(3);
    for (const u of plain) expect(new Set(u.trialIds.map((id) => featureKey(byId(id)))).size).toBe(1);
    // Deterministic.
    expect(planUnits([...configs].reverse(), spec.fuse!, spec.maxParallel)).toEqual(units);
  });

  it('only trials whose phase 1 is the same join: other head epochs, seed or data stay apart', () => {
    const tuned = config(0, { unfreeze: 11, fineTuneEpochs: 2 });
    const twin = config(1, { unfreeze: 0, learningRate: 0.5 });
    const noFineTune = config(2, { unfreeze: 20, fineTuneEpochs: 0 });
    expect(headFusionKey(twin)).toBe(headFusionKey(tuned));
    expect(headFusionKey(noFineTune)).toBe(headFusionKey(tuned));
    for (const other of [config(3, { unfreeze: 0, headEpochs: 3 }), config(4, { unfreeze: 0, seed: 9 }), config(5, { unfreeze: 0, dataset: { kind: 'synthetic', seed: 3 } })]) {
      expect(headFusionKey(other)).not.toBe(headFusionKey(tuned));
      const units = planUnits([tuned, other], { maxTrials: 8, shareHeads: true }, 16);
      expect(units.map((u) => u.trialIds)).toEqual([[tuned.trialId], [other.trialId]]);
    }
    expect(planUnits([tuned, twin, noFineTune], { maxTrials: 8, shareHeads: true }, 16).map((u) => u.trialIds)).toEqual([[tuned.trialId, twin.trialId, noFineTune.trialId]]);
    // Two fine-tune depths never fuse, shared heads or not.
    expect(fusableGroups([tuned, config(6, { unfreeze: 20 }), twin], { shareHeads: true })).toEqual([[tuned, twin], [config(6, { unfreeze: 20 })]]);
  });
});
