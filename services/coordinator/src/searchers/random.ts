import type { SweepSpec } from '../spec/sweep-spec.js';
import { mulberry32 } from '../../../worker/src/data/prng.js';
import { gridPoint, gridSize } from './grid.js';
import { hasRanges, samplePoint } from './search-space.js';
import type { SearchPoint, Searcher } from './searcher.js';

/**
 * `maxTrials` distinct points drawn uniformly from the grid without
 * replacement (all of it when maxTrials >= grid size), reproducible from the
 * seed: a lazy Fisher–Yates shuffle over grid indices, so memory is
 * O(maxTrials) however large the grid. With a range axis (learningRates or
 * dropouts as `{min, max}`) there is no grid: every axis is drawn
 * independently, ranges uniformly (log-uniformly with `log: true`).
 */
export class RandomSearcher implements Searcher {
  private readonly rand: () => number;
  private readonly size: number;
  private readonly count: number;
  private readonly swapped = new Map<number, number>();
  private drawn = 0;
  constructor(private readonly spec: SweepSpec, seed = spec.seed) {
    this.rand = mulberry32(seed);
    this.size = gridSize(spec);
    this.count = hasRanges(spec) ? (spec.maxTrials ?? 1) : Math.min(spec.maxTrials ?? this.size, this.size);
  }
  suggest(): SearchPoint | 'FINISHED' {
    if (this.drawn >= this.count) return 'FINISHED';
    if (hasRanges(this.spec)) {
      this.drawn++;
      return samplePoint(this.spec, this.rand);
    }
    const i = this.drawn++;
    const j = i + Math.floor(this.rand() * (this.size - i));
    const at = (k: number) => this.swapped.get(k) ?? k;
    const pick = at(j);
    this.swapped.set(j, at(i));
    return gridPoint(this.spec, pick);
  }
}
