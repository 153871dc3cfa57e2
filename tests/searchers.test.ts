import { describe, expect, it } from 'vitest';
import { expandAll, GridSearcher, gridSize, parseSweepSpec, RandomSearcher, samplePoint, TpeSearcher } from '../services/coordinator/src/index.js';

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

type Point = ReturnType<typeof samplePoint>;
/** Runs a searcher to the end, answering each suggestion at once with `objective`. */
function runSequential(s: TpeSearcher, objective: (p: Point) => number): Point[] {
  const out: Point[] = [];
  for (;;) {
    const p = s.suggest();
    if (p === 'FINISHED') return out;
    if (p === null) throw new Error('a sequential run never waits');
    out.push(p);
    s.onTrialComplete(p, objective(p));
  }
}
const tpeSpec = (extra: string) => parseSweepSpec(`
name: t
dataset: { kind: synthetic }
backbones: [mobilenet_v2, tiny_cnn]
unfreeze: [0, 5]
search: tpe
${extra}`);
const quadratic = (p: Point) => -((p.dropout - 0.3) ** 2);
const geoMean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);

describe('TPE', () => {
  const mixed = (seed: number) => tpeSpec(`learningRates: { min: 0.0001, max: 0.1, log: true }\ndropouts: [0.1, 0.3, 0.5]\nmaxTrials: 30\nseed: ${seed}`);
  // Best: tiny_cnn, unfreeze 5, lr near 1e-2, dropout 0.3.
  const objective = (p: Point) => (p.backbone === 'tiny_cnn' ? 1 : 0) + (p.unfreeze === 5 ? 0.5 : 0) - Math.abs(Math.log10(p.learningRate) + 2) - Math.abs(p.dropout - 0.3);

  it('is deterministic per seed and suggests only the spec\'s values and ranges', () => {
    const a = runSequential(new TpeSearcher(mixed(7)), objective);
    const b = runSequential(new TpeSearcher(mixed(7)), objective);
    const c = runSequential(new TpeSearcher(mixed(8)), objective);
    expect(a).toHaveLength(30);
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    for (const p of a) {
      expect(['mobilenet_v2', 'tiny_cnn']).toContain(p.backbone);
      expect([0, 5]).toContain(p.unfreeze);
      expect([0.1, 0.3, 0.5]).toContain(p.dropout);
      expect(p.learningRate).toBeGreaterThanOrEqual(0.0001);
      expect(p.learningRate).toBeLessThanOrEqual(0.1);
      expect(p.dataset).toEqual({ kind: 'synthetic' });
    }
    // After the 10 random startup trials the model favours the good categories.
    const late = a.slice(10);
    expect(late.filter((p) => p.backbone === 'tiny_cnn').length).toBeGreaterThan(late.length * 0.6);
  });

  it('waits for the startup results before using the model, then stops at maxTrials', () => {
    const s = new TpeSearcher(tpeSpec(`learningRates: [0.1, 0.01]\ndropouts: { min: 0, max: 0.9 }\nmaxTrials: 5\ntpe: { nStartupTrials: 3 }`));
    const startup = [s.suggest(), s.suggest(), s.suggest()] as Point[];
    expect(startup.every((p) => p !== null && typeof p === 'object')).toBe(true);
    expect(s.suggest()).toBeNull();
    s.onTrialComplete(startup[0], 0.5);
    s.onTrialComplete(startup[1], null); // a failed trial ends the wait too, but teaches nothing
    expect(s.suggest()).toBeNull();
    s.onTrialComplete(startup[2], 0.7);
    expect(s.suggest()).not.toBeNull();
    expect(s.suggest()).not.toBeNull();
    expect(s.suggest()).toBe('FINISHED');
  });

  it('a resumed searcher fed the same results suggests what the original would have (restart)', () => {
    const spec = tpeSpec(`learningRates: { min: 0.0001, max: 0.1, log: true }\ndropouts: { min: 0, max: 0.9 }\nmaxTrials: 40\nseed: 5`);
    const first = new TpeSearcher(spec);
    const seen: Point[] = [];
    for (let i = 0; i < 20; i++) {
      const p = first.suggest() as Point;
      seen.push(p);
      first.onTrialComplete(p, objective(p));
    }
    const resumed = new TpeSearcher(spec);
    resumed.resume(20);
    // Results arrive in another order after a restart (it reads them from KV).
    for (const p of [...seen].reverse()) resumed.onTrialComplete(p, objective(p));
    expect(resumed.suggest()).toEqual(first.suggest());
  });

  it('concentrates on the good region: on a 1-D quadratic its best after 40 trials is far closer to the optimum than random search\'s', () => {
    const tpeBest: number[] = [];
    const randomBest: number[] = [];
    let near = 0;
    for (let seed = 0; seed < 10; seed++) {
      const extra = `learningRates: [0.01]\ndropouts: { min: 0, max: 0.9 }\nmaxTrials: 40\nseed: ${seed}`;
      const one = (x: string) => parseSweepSpec(`name: q\ndataset: { kind: synthetic }\nbackbones: [tiny_cnn]\nunfreeze: [0]\n${x}`);
      const t = runSequential(new TpeSearcher(one(`search: tpe\n${extra}`)), quadratic);
      const r = expandAll(new RandomSearcher(one(`search: random\n${extra}`)));
      expect(r).toHaveLength(40);
      tpeBest.push(Math.min(...t.map((p) => Math.abs(p.dropout - 0.3))));
      randomBest.push(Math.min(...r.map((p) => Math.abs(p.dropout - 0.3))));
      near += t.slice(20).filter((p) => Math.abs(p.dropout - 0.3) < 0.05).length;
    }
    // Random search's best is ~0.9/82 ≈ 0.011 away on average; TPE's must be at least 4x closer (geometric mean over 10 seeds).
    expect(geoMean(tpeBest)).toBeLessThan(geoMean(randomBest) / 4);
    // Uniform draws land within 0.05 of the optimum 11% of the time; TPE's late suggestions, over 40%.
    expect(near / 200).toBeGreaterThan(0.4);
  });
});

describe('ranges (random and tpe)', () => {
  it('random search draws each axis independently within the ranges, log-uniformly when asked', () => {
    const s = spec('search: random\nmaxTrials: 200\nseed: 1').learningRates; // lists still work
    expect(s).toEqual([0.1, 0.01]);
    const r = parseSweepSpec(`name: r\ndataset: { kind: synthetic }\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: { min: 0.0001, max: 0.1, log: true }\ndropouts: { min: 0.1, max: 0.5 }\nsearch: random\nmaxTrials: 200\nseed: 1`);
    const pts = expandAll(new RandomSearcher(r));
    expect(pts).toHaveLength(200);
    for (const p of pts) {
      expect(p.learningRate).toBeGreaterThanOrEqual(0.0001);
      expect(p.learningRate).toBeLessThanOrEqual(0.1);
      expect(p.dropout).toBeGreaterThanOrEqual(0.1);
      expect(p.dropout).toBeLessThanOrEqual(0.5);
    }
    // Log-uniform over 3 decades: about a third below 1e-3 (uniform would put 0.9% there).
    const below = pts.filter((p) => p.learningRate < 0.001).length / pts.length;
    expect(below).toBeGreaterThan(0.2);
    expect(below).toBeLessThan(0.45);
    expect(expandAll(new RandomSearcher(r)).map((p) => p.learningRate)).toEqual(pts.map((p) => p.learningRate));
  });

  it('refuses ranges for grid, and bad tpe settings, naming the field', () => {
    const base = `name: r\ndataset: { kind: synthetic }\nbackbones: [tiny_cnn]\nunfreeze: [0]\nlearningRates: [0.1]\ndropouts: [0.2]\n`;
    const violations = (y: string) => {
      try {
        parseSweepSpec(y);
      } catch (e) {
        return (e as { violations: { field: string; message: string }[] }).violations;
      }
      throw new Error('accepted');
    };
    expect(violations(base.replace('learningRates: [0.1]', 'learningRates: { min: 0.001, max: 0.1 }'))).toContainEqual({ field: 'learningRates', message: expect.stringMatching(/needs search: random or tpe; grid requires a list/) });
    expect(violations(base + 'search: tpe')).toContainEqual({ field: 'maxTrials', message: expect.stringMatching(/required when search is tpe/) });
    expect(violations(base + 'search: tpe\nmaxTrials: 5\ntpe: { gamma: 1 }')).toContainEqual({ field: 'tpe.gamma', message: expect.stringMatching(/\(0, 1\)/) });
    expect(violations(base + 'search: random\nmaxTrials: 5\ntpe: { gamma: 0.2 }')).toContainEqual({ field: 'tpe', message: expect.stringMatching(/only used with search: tpe/) });
    expect(violations(base.replace('dropouts: [0.2]', 'dropouts: { min: 0, max: 0.5, log: true }') + 'search: random\nmaxTrials: 5')).toContainEqual({ field: 'dropouts.min', message: expect.stringMatching(/> 0 with log: true/) });
    expect(violations(base.replace('dropouts: [0.2]', 'dropouts: { min: 0.5, max: 0.2 }') + 'search: tpe\nmaxTrials: 5')).toContainEqual({ field: 'dropouts.max', message: expect.stringMatching(/greater than min/) });
    expect(parseSweepSpec(base + 'search: tpe\nmaxTrials: 5').tpe).toEqual({ nStartupTrials: 10, gamma: 0.25, nEiCandidates: 24, metric: 'val_accuracy' });
  });
});
