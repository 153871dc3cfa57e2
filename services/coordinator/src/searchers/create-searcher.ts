import type { SweepSpec } from '../spec/sweep-spec.js';
import { GridSearcher } from './grid.js';
import { RandomSearcher } from './random.js';
import type { Searcher } from './searcher.js';
import { TpeSearcher } from './tpe.js';

/** The searcher the spec asks for. */
export function createSearcher(spec: SweepSpec): Searcher {
  switch (spec.search) {
    case 'grid':
      return new GridSearcher(spec);
    case 'random':
      return new RandomSearcher(spec);
    case 'tpe':
      return new TpeSearcher(spec);
  }
}
