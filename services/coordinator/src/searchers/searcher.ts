import type { DatasetSpec, UnfreezeSpec } from '../spec/sweep-spec.js';

/** One point of the search space: the axes' values of one trial. */
export interface SearchPoint {
  dataset: DatasetSpec;
  backbone: string;
  unfreeze: UnfreezeSpec;
  learningRate: number;
  dropout: number;
}

/**
 * Ray Tune's searcher contract: `suggest()` returns the next point, `null`
 * when none can be suggested right now (e.g. waiting for results), or
 * `'FINISHED'` when the search space is exhausted.
 */
export interface Searcher {
  suggest(): SearchPoint | 'FINISHED' | null;
  /** Results feed model-based searchers (TPE); grid and random ignore them. */
  onTrialComplete?(point: SearchPoint, metric: number | null): void;
}

/** Drains a searcher that never answers `null` (grid, random) into a list. */
export function expandAll(searcher: Searcher): SearchPoint[] {
  const out: SearchPoint[] = [];
  for (;;) {
    const s = searcher.suggest();
    if (s === 'FINISHED') return out;
    if (s === null) throw new Error('expandAll: searcher is waiting for results; use it incrementally');
    out.push(s);
  }
}
