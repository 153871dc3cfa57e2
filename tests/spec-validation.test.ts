import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseSweepSpec, SPEC_DEFAULTS } from '../services/coordinator/src/index.js';
import { RECIPE_DEFAULTS } from '../services/worker/src/engine/recipe-options.js';

const good = `
name: ok
dataset: { kind: fashion-mnist, perClass: 10 }
backbones: [mobilenet_v2]
unfreeze: [0, 11]
learningRates: [0.001, 0.0001]
dropouts: [0.2, 0.5]
`;

function violation(text: string): InvalidArgumentError {
  try {
    parseSweepSpec(text);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error('spec was accepted');
}

describe('sweep spec validation', () => {
  it('accepts a YAML spec and fills in the documented defaults', () => {
    const s = parseSweepSpec(good);
    expect(s).toMatchObject({
      name: 'ok',
      datasets: [{ kind: 'fashion-mnist', perClass: 10 }],
      unfreeze: [0, 11],
      headEpochs: SPEC_DEFAULTS.headEpochs,
      fineTuneEpochs: SPEC_DEFAULTS.fineTuneEpochs,
      fineTuneLrFactor: 0.1,
      batchSize: 32,
      search: 'grid',
      maxParallel: 4,
      imageSize: null,
      split: { valFraction: 0.15, testFraction: 0.15 },
    });
  });

  it('accepts the same spec as JSON, and a list of datasets', () => {
    const s = parseSweepSpec(JSON.stringify({
      name: 'json', dataset: [{ kind: 'synthetic' }, { kind: 'folder', path: '/data/x' }],
      backbones: ['tiny_cnn'], unfreeze: [0], learningRates: [0.01], dropouts: [0], search: 'random', maxTrials: 1,
    }));
    expect(s.datasets).toHaveLength(2);
    expect(s.maxTrials).toBe(1);
  });

  it.each([
    ['learningRates: [0.001, -1]', 'learningRates[1]', 'a number in (0, 10]'],
    ['dropouts: [1.5]', 'dropouts[0]', 'a number in [0, 1)'],
    ['unfreeze: [2.5]', 'unfreeze[0]', 'an integer'],
    ['batchSize: 0', 'batchSize', 'an integer in 1..4096'],
    ['search: bayes', 'search', 'grid, random'],
    ['search: random', 'maxTrials', 'required when search is random'],
    ['search: random\nmaxTrials:', 'maxTrials', 'required when search is random'],
    ['backbones: []', 'backbones', 'non-empty list'],
    ['backbones: [MobileNet!]', 'backbones[0]', 'one of: mobilenet_v2, tiny_cnn'],
    ['backbones: [alexnet]', 'backbones[0]', 'one of: mobilenet_v2, tiny_cnn'],
    ['unfreeze: [0, 155]', 'unfreeze[1]', 'below 155, the layer count of backbone mobilenet_v2'],
    ['imageSize: 24', 'imageSize', 'at least 32 for backbone mobilenet_v2'],
    ['colour: blue', 'colour', 'unknown field'],
    ['imageSize: 8', 'imageSize', '16..1024'],
    ['split: { valFraction: 0.7 }', 'split.valFraction', '(0, 0.5)'],
  ])('rejects %s naming %s', (line, field, allowed) => {
    const key = line.split(':')[0];
    const text = good.split('\n').filter((l) => !l.startsWith(`${key}:`)).join('\n') + `\n${line}\n`;
    const err = violation(text);
    expect(err.violations.map((v) => v.field)).toContain(field);
    expect(err.message).toContain(field);
    expect(err.message).toContain(allowed);
  });

  it('accepts every unfreeze form and the recipe knobs, with Keras defaults where silent', () => {
    const s = parseSweepSpec(`${good.replace('unfreeze: [0, 11]', 'unfreeze: [0, { layers: 5 }, { blocks: 2 }, { fineTuneAt: block_14_add }, { fineTuneAt: 100 }]')}
optimizer: sgd
momentum: 0.9
lrSchedule: { step: { everyEpochs: 2, factor: 0.5 } }
earlyStopping: { patience: 2, restoreBestWeights: true }
classWeights: balanced
trainBatchNorm: true
gradualUnfreeze: { everyEpochs: 1 }
`);
    expect(s.unfreeze).toEqual([0, 5, { blocks: 2 }, { fineTuneAt: 'block_14_add' }, { fineTuneAt: 100 }]);
    expect(s.recipe).toEqual({
      l2: 0, binaryHead: 'softmax', optimizer: 'sgd', momentum: 0.9, lrSchedule: { step: { everyEpochs: 2, factor: 0.5 } },
      earlyStopping: { patience: 2, minDelta: 0, restoreBestWeights: true }, labelSmoothing: 0, classWeights: 'balanced',
      trainBatchNorm: true, gradualUnfreeze: { everyEpochs: 1 },
    });
    expect(parseSweepSpec(good).recipe).toEqual(RECIPE_DEFAULTS);
    const two = parseSweepSpec(good.replace('{ kind: fashion-mnist, perClass: 10 }', '{ kind: synthetic, classes: 2 }') + 'binaryHead: sigmoid\nclassWeights: { class_0: 2 }\n');
    expect(two.recipe).toMatchObject({ binaryHead: 'sigmoid', classWeights: { class_0: 2 } });
  });

  it.each([
    ['unfreeze: [{ blocks: 0 }]', 'unfreeze[0]', '{ blocks: N } (N 1..1000)'],
    ['unfreeze: [{ blocks: 19 }]', 'unfreeze[0].blocks', 'at most 18, the block count of backbone mobilenet_v2'],
    ['unfreeze: [{ fineTuneAt: 155 }]', 'unfreeze[0].fineTuneAt', 'below 155'],
    ['unfreeze: [{ fineTuneAt: "a b" }]', 'unfreeze[0].fineTuneAt', 'a Keras layer name'],
    ['unfreeze: [{ layer: 3 }]', 'unfreeze[0]', '{ fineTuneAt: <layer name or index> }'],
    ['optimizer: adamw', 'optimizer', 'one of: adam, sgd, rmsprop'],
    ['momentum: 0.9', 'momentum', 'sgd only'],
    ['momentum: 1', 'momentum', '[0, 1)'],
    ['lrSchedule: linear', 'lrSchedule', "'constant', 'cosine' or { step"],
    ['lrSchedule: { step: { everyEpochs: 0, factor: 0.5 } }', 'lrSchedule.step.everyEpochs', '1..1000'],
    ['lrSchedule: { step: { everyEpochs: 2, factor: 2 } }', 'lrSchedule.step.factor', '(0, 1]'],
    ['earlyStopping: { patience: 1.5 }', 'earlyStopping.patience', 'an integer in 0..1000'],
    ['earlyStopping: { monitor: val_acc }', 'earlyStopping.monitor', 'unknown field'],
    ['earlyStopping: { restoreBestWeights: yes }', 'earlyStopping.restoreBestWeights', 'true or false'],
    ['labelSmoothing: 1', 'labelSmoothing', '[0, 1)'],
    ['classWeights: { cat: 0 }', 'classWeights.cat', '(0, 1e6]'],
    ['classWeights: inverse', 'classWeights', "'balanced' or a mapping"],
    ['l2: -1', 'l2', '[0, 1]'],
    ['binaryHead: tanh', 'binaryHead', "'softmax' or 'sigmoid'"],
    ['binaryHead: sigmoid', 'binaryHead', 'needs exactly 2 classes; dataset has 10'],
    ['trainBatchNorm: 1', 'trainBatchNorm', 'true or false'],
    ['gradualUnfreeze: { everyEpochs: 0 }', 'gradualUnfreeze', '{ everyEpochs: <integer 1..1000> }'],
  ])('rejects recipe value %s naming %s', (line, field, allowed) => {
    const key = line.split(':')[0];
    const text = good.split('\n').filter((l) => !l.startsWith(`${key}:`)).join('\n') + `\n${line}\n`;
    const err = violation(text);
    expect(err.violations.map((v) => v.field)).toContain(field);
    expect(err.message).toContain(allowed);
  });

  it('names dataset fields', () => {
    expect(violation(good.replace('{ kind: fashion-mnist, perClass: 10 }', '{ kind: imagenet }')).field).toBe('dataset.kind');
    expect(violation(good.replace('{ kind: fashion-mnist, perClass: 10 }', '{ kind: folder }')).field).toBe('dataset.path');
    expect(violation(good.replace('perClass: 10', 'perClass: 7000')).field).toBe('dataset.perClass');
  });

  it('accepts fashion-mnist test: official and refuses a bad test source or a too-large perClass for it', () => {
    const official = parseSweepSpec(good.replace('perClass: 10', 'perClass: 1000, test: official'));
    expect(official.datasets).toEqual([{ kind: 'fashion-mnist', perClass: 1000, test: 'official' }]);
    expect(parseSweepSpec(good.replace('perClass: 10', 'perClass: 10, test: split')).datasets[0]).toMatchObject({ test: 'split' });
    const bad = violation(good.replace('perClass: 10', 'perClass: 10, test: t10k'));
    expect(bad.field).toBe('dataset.test');
    expect(bad.message).toContain('official');
    // 6000 per class: 5300 + round(5300 × 0.15) = 6095 do not fit, 5200 + 780 do.
    const big = violation(good.replace('perClass: 10', 'perClass: 5300, test: official'));
    expect(big.field).toBe('dataset.perClass');
    expect(big.message).toMatch(/test: official.*795/);
    expect(() => parseSweepSpec(good.replace('perClass: 10', 'perClass: 5200, test: official'))).not.toThrow();
    // The bench:fmnist spec is valid and uses the official test set.
    const bench = parseSweepSpec(readFileSync(new URL('../examples/fmnist-90.yaml', import.meta.url), 'utf8'));
    expect(bench.datasets).toEqual([{ kind: 'fashion-mnist', perClass: 1000, test: 'official' }]);
    // Without test: official the whole class may be sampled.
    expect(() => parseSweepSpec(good.replace('perClass: 10', 'perClass: 6000'))).not.toThrow();
  });

  it('rejects what is not a mapping, and broken YAML', () => {
    expect(violation('- a\n- b').field).toBe('spec');
    expect(violation('name: [unclosed').field).toBe('spec');
  });

  it('lists every violation at once', () => {
    const err = violation('name: x\ndataset: { kind: synthetic }\nbackbones: [tiny_cnn]\nunfreeze: [-1]\nlearningRates: [0]\ndropouts: [0.1]');
    expect(err.violations.map((v) => v.field).sort()).toEqual(['learningRates[0]', 'unfreeze[0]']);
  });
});
