import { describe, expect, it } from 'vitest';
import { validateSweepSpec, InvalidArgumentError } from '../services/coordinator/src/index.js';

const base = { name: 'w', dataset: { kind: 'synthetic' }, backbones: ['tiny_cnn', 'mobilenet_v2'], unfreeze: [0], learningRates: [0.01], dropouts: [0.2] };

function violations(extra: object): string[] {
  try {
    validateSweepSpec({ ...base, ...extra });
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as InvalidArgumentError).violations.map((v) => `${v.field}: ${v.message}`);
  }
}

describe('spec weights and keepModels', () => {
  it('defaults to no weights and keeping the best model', () => {
    const s = validateSweepSpec(base);
    expect(s.weights).toEqual({});
    expect(s.keepModels).toBe(1);
  });

  it('accepts a weights ref per backbone of the spec', () => {
    const s = validateSweepSpec({ ...base, weights: { tiny_cnn: 'objstore:tiny', mobilenet_v2: 'https://h/m/model.json' }, keepModels: 3 });
    expect(s.weights).toEqual({ tiny_cnn: 'objstore:tiny', mobilenet_v2: 'https://h/m/model.json' });
    expect(s.keepModels).toBe(3);
  });

  it('names the backbone and the allowed forms for bad entries', () => {
    const v = violations({ weights: { vgg99: '/w', tiny_cnn: 'relative/dir' }, keepModels: -1 });
    expect(v.some((m) => m.startsWith('weights.vgg99: unknown backbone'))).toBe(true);
    expect(v.some((m) => m.startsWith('weights.tiny_cnn: unrecognised weights ref') && m.includes('objstore:<name>'))).toBe(true);
    expect(v.some((m) => m.startsWith('keepModels: must be an integer in 0..100'))).toBe(true);
    expect(violations({ backbones: ['tiny_cnn'], weights: { mobilenet_v2: '/w' } })).toEqual(['weights.mobilenet_v2: backbone mobilenet_v2 is not in backbones (tiny_cnn)']);
    expect(violations({ weights: ['objstore:x'] })).toEqual(['weights: must be a mapping {<backbone>: <weights ref>}']);
  });
});
