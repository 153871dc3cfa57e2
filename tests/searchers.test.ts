import { describe, expect, it } from 'vitest';
import { expandAll, GridSearcher, gridSize, parseSweepSpec, RandomSearcher } from '../services/coordinator/src/index.js';

const spec = (extra = '') => parseSweepSpec(`
name: s
dataset: { kind: synthetic }
backbones: [mobilenet_v2, tiny_cnn]
unfreeze: [0, 5, 10]
learningRates: [0.1, 0.01]
dropouts: [0.2, 0.5]
${extra}`);

const key = (p: { backbone: string; unfreeze: unknown; learningRate: number; dropout: number }) => `${p.backbone}/${p.unfreeze}/${p.learningRate}/${p.dropout}`;

describe('searchers', () => {
  it('grid expands the full cartesian product once, in a fixed order', () => {
    const s = spec();
    const pts = expandAll(new GridSearcher(s));
    expect(pts).toHaveLength(gridSize(s));
    expect(pts).toHaveLength(24);
    expect(new Set(pts.map(key)).size).toBe(24);
    expect(key(pts[0])).toBe('mobilenet_v2/0/0.1/0.2');
    expect(key(pts[1])).toBe('mobilenet_v2/0/0.1/0.5');
    expect(key(pts[23])).toBe('tiny_cnn/10/0.01/0.5');
  });

  it('random draws maxTrials distinct points, reproducibly from the seed', () => {
    const s = spec('search: random\nmaxTrials: 7\nseed: 3');
    const a = expandAll(new RandomSearcher(s)).map(key);
    const b = expandAll(new RandomSearcher(s)).map(key);
    expect(a).toHaveLength(7);
    expect(new Set(a).size).toBe(7);
    expect(a).toEqual(b);
    const c = expandAll(new RandomSearcher(spec('search: random\nmaxTrials: 7\nseed: 4'))).map(key);
    expect(c).not.toEqual(a);
    const grid = new Set(expandAll(new GridSearcher(s)).map(key));
    for (const k of a) expect(grid.has(k)).toBe(true);
  });

  it('random with maxTrials above the grid size returns the whole grid', () => {
    const pts = expandAll(new RandomSearcher(spec('search: random\nmaxTrials: 100'))).map(key);
    expect(new Set(pts).size).toBe(24);
  });
});
