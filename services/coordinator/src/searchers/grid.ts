import type { SweepSpec } from '../spec/sweep-spec.js';
import type { SearchPoint, Searcher } from './searcher.js';

/** Number of points in the full cartesian product of the spec's axes. */
export function gridSize(spec: SweepSpec): number {
  return spec.datasets.length * spec.backbones.length * spec.unfreeze.length * spec.learningRates.length * spec.dropouts.length;
}

/**
 * The i-th point of the grid, in a fixed order (dataset, backbone, unfreeze,
 * learning rate, dropout; the last varies fastest), so a point is addressable
 * by index without materialising the grid.
 */
export function gridPoint(spec: SweepSpec, i: number): SearchPoint {
  let r = i;
  const pick = <T>(axis: T[]): T => {
    const v = axis[r % axis.length];
    r = Math.floor(r / axis.length);
    return v;
  };
  const dropout = pick(spec.dropouts);
  const learningRate = pick(spec.learningRates);
  const unfreeze = pick(spec.unfreeze);
  const backbone = pick(spec.backbones);
  const dataset = pick(spec.datasets);
  return { dataset, backbone, unfreeze, learningRate, dropout };
}

/** Every point of the grid, once, in order. */
export class GridSearcher implements Searcher {
  private next = 0;
  private readonly size: number;
  constructor(private readonly spec: SweepSpec) {
    this.size = gridSize(spec);
  }
  suggest(): SearchPoint | 'FINISHED' {
    if (this.next >= this.size) return 'FINISHED';
    return gridPoint(this.spec, this.next++);
  }
}
