import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseSweepSpec, validateSweepSpec } from '../services/coordinator/src/index.js';
import { featureKey, fusableGroups, fusionKey, planUnits } from '../services/coordinator/src/planner/plan-units.js';
import { affinityKeyOf } from '../services/coordinator/src/queue/affinity-key.js';
import type { TrialConfig } from '../services/coordinator/src/spec/sweep-spec.js';
import { catalogCut } from '../services/worker/src/engine/backbones/catalog-cut.js';
import { RECIPE_DEFAULTS } from '../services/worker/src/engine/recipe-options.js';

const base = { name: 'g', dataset: { kind: 'synthetic' }, unfreeze: [0], learningRates: [0.01], dropouts: [0.2] };

function violations(extra: object): string[] {
  try {
    validateSweepSpec({ ...base, ...extra });
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as InvalidArgumentError).violations.map((v) => `${v.field}: ${v.message}`);
  }
}

describe('graph backbones in the sweep spec', () => {
  it('takes graph:<ref> and the mapping form, names them graph:<label>, fills the defaults', () => {
    const s = parseSweepSpec(`
name: hub
dataset: { kind: synthetic }
backbones:
  - tiny_cnn
  - graph:/models/mobilenet_v2_mid
  - { graph: "https://models.example/hub/effnet/model.json", inputSize: 240, preprocessing: tf, output: feature_vector/SpatialSqueeze }
  - { graph: "objstore:mnv2-hub", name: mnv2, preprocessing: none }
unfreeze: [0]
learningRates: [0.01]
dropouts: [0.2]
imageSize: 32
`);
    expect(s.backbones).toEqual(['tiny_cnn', 'graph:mobilenet_v2_mid', 'graph:effnet', 'graph:mnv2']);
    expect(s.graphBackbones).toEqual({
      // The spec's imageSize is the default input size; TF Hub's [0, 1] pixels the default preprocessing.
      'graph:mobilenet_v2_mid': { ref: '/models/mobilenet_v2_mid', inputSize: 32, preprocessing: 'unit', output: null },
      'graph:effnet': { ref: 'https://models.example/hub/effnet/model.json', inputSize: 240, preprocessing: 'tf', output: 'feature_vector/SpatialSqueeze' },
      'graph:mnv2': { ref: 'objstore:mnv2-hub', inputSize: 32, preprocessing: 'unit', output: null },
    });
    // Without imageSize a graph runs at 224, TF Hub's usual size.
    expect(validateSweepSpec({ ...base, backbones: ['graph:file:///m/hub/model.json'] }).graphBackbones).toEqual({
      'graph:hub': { ref: 'file:///m/hub/model.json', inputSize: 224, preprocessing: 'unit', output: null },
    });
    // Sweeps without graph backbones look as before.
    expect(validateSweepSpec({ ...base, backbones: ['tiny_cnn'] })).not.toHaveProperty('graphBackbones');
  });

  it('refuses any unfreeze depth but 0 with a graph backbone, naming the field and why', () => {
    const v = violations({ backbones: ['mobilenet_v2', 'graph:/m/hub'], unfreeze: [0, 11, { blocks: 2 }] });
    expect(v).toHaveLength(2);
    expect(v[0]).toMatch(/^unfreeze\[1\]: must be 0 with graph backbone graph:hub: a GraphModel is frozen \(hub\.KerasLayer trainable=False\), only the head trains; got 11/);
    expect(v[1]).toMatch(/^unfreeze\[2\]: must be 0 .* got blocks:2/);
    expect(violations({ backbones: ['graph:/m/hub'], unfreeze: [{ layers: 0 }] })).toEqual([]);
  });

  it('names each bad field of a graph backbone and what is allowed', () => {
    const v = violations({
      backbones: [
        { graph: 'relative/dir' },
        { graph: '/m/a', inputSize: 8, preprocessing: 'imagenet', output: 'a b', name: '../x', trainable: true },
        { name: 'x' },
        'graph:',
      ],
    });
    expect(v).toEqual(expect.arrayContaining([
      expect.stringMatching(/^backbones\[0\]\.graph: unrecognised weights ref "relative\/dir"; use an absolute path .* objstore:<name>/),
      expect.stringMatching(/^backbones\[1\]\.inputSize: must be an integer in 16\.\.1024/),
      expect.stringMatching(/^backbones\[1\]\.preprocessing: must be one of: unit, tf, torch, caffe, raw255, none/),
      expect.stringMatching(/^backbones\[1\]\.output: must be a node name/),
      expect.stringMatching(/^backbones\[1\]\.name: must be 1-64 letters/),
      expect.stringMatching(/^backbones\[1\]\.trainable: unknown field of a graph backbone; allowed: graph, name, inputSize, preprocessing, output/),
      expect.stringMatching(/^backbones\[2\]: must be one of: .*graph:<model.json ref>/),
      expect.stringMatching(/^backbones\[3\]\.graph: required: where the tfjs GraphModel's model.json is/),
    ]));
    // Two graphs that would share a label, and weights for a graph backbone.
    expect(violations({ backbones: ['graph:/a/hub', 'graph:/b/hub'] })).toEqual(expect.arrayContaining([
      'backbones[1].name: another graph backbone is already called graph:hub; give this one a different name',
    ]));
    expect(violations({ backbones: ['graph:/a/hub'], weights: { 'graph:hub': '/w' } })).toEqual([
      'weights.graph:hub: a graph backbone loads its weights from its own graph ref; weights applies to catalog backbones',
    ]);
    // imageSize minimums of catalog backbones do not apply to a graph's own size.
    expect(violations({ backbones: ['graph:/a/hub'], imageSize: 16 })).toEqual([]);
  });
});

describe('graph backbones in the planner', () => {
  const graph = { ref: '/m/hub', inputSize: 224, preprocessing: 'unit' as const, output: 'feature_vector/SpatialSqueeze' };
  function config(index: number, over: Partial<TrialConfig> = {}): TrialConfig {
    return {
      trialId: `sw-t${index}`, sweepId: 'sw', index, backbone: 'graph:hub', graph, unfreeze: 0, learningRate: 0.01, dropout: 0.2,
      dataset: { kind: 'synthetic' }, datasetLabel: 'synthetic', imageSize: 224, headUnits: 16, headEpochs: 2, fineTuneEpochs: 3,
      fineTuneLrFactor: 0.1, batchSize: 8, seed: 0, split: { valFraction: 0.15, testFraction: 0.15 }, recipe: { ...RECIPE_DEFAULTS }, augmentation: null,
      ...over,
    };
  }

  it('is a head-only unit: learning rate, dropout and head units fuse', () => {
    expect(catalogCut('graph:hub', 0, 3)).toBe('none');
    const trials = [config(0), config(1, { learningRate: 0.001 }), config(2, { dropout: 0.5 }), config(3, { headUnits: 64 })];
    expect(new Set(trials.map(featureKey)).size).toBe(1);
    expect(new Set(trials.map(fusionKey)).size).toBe(1);
    expect(fusableGroups(trials)).toEqual([trials]);
    expect(planUnits(trials, { maxTrials: 8 }, 8)).toEqual([{ unitId: 'sw-t0+3', trialIds: trials.map((t) => t.trialId) }]);
  });

  it('keys features by the graph, its node and preprocessing, not by the label alone', () => {
    const a = config(0);
    for (const other of [
      config(1, { graph: { ...graph, ref: '/n/hub' } }),
      config(2, { graph: { ...graph, output: null } }),
      config(3, { graph: { ...graph, preprocessing: 'tf' } }),
    ]) {
      expect(featureKey(other)).not.toBe(featureKey(a));
      expect(affinityKeyOf(other)).not.toBe(affinityKeyOf(a));
    }
    // The graph's weights do not depend on the trial seed.
    expect(affinityKeyOf(a)).toContain('graph=');
  });
});
