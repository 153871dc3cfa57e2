import { unfreezesAnything, type UnfreezeSpec } from '../recipe-options.js';
import { isGraphBackbone } from './graph-backbone-spec.js';
import { backboneInfo, expandRanges } from './catalog.js';

/**
 * The layer whose output a trial's frozen features are taken at, from the
 * catalog alone (no TensorFlow.js): `'none'` when nothing fine-tunes (the
 * whole backbone is frozen and pooled), else the deepest clean cut strictly
 * below the first trainable layer — what the worker's cutForUnfreeze gives
 * for the resolved depth (graph backbones: always `'none'`, they are frozen
 * whole). null when the catalog cannot tell (an unknown
 * backbone, cuts not listed, or `fineTuneAt` naming a layer by name, which
 * only the built model knows): the planner then keys by the depth as written.
 */
export function catalogCut(backbone: string, unfreeze: UnfreezeSpec, fineTuneEpochs: number): number | 'none' | null {
  // A graph backbone is frozen whole (its spec refuses any other depth): its features are the pooled output.
  if (isGraphBackbone(backbone)) return unfreezesAnything(unfreeze) && fineTuneEpochs > 0 ? null : 'none';
  const info = backboneInfo(backbone);
  if (!info) return null;
  const firstTrainable = firstTrainableOf(unfreeze, info.layers, info.blockStarts);
  if (firstTrainable === null) return null;
  if (firstTrainable >= info.layers || fineTuneEpochs === 0) return 'none';
  if (!info.cleanCuts) return null;
  const below = expandRanges(info.cleanCuts).filter((i) => i < firstTrainable);
  return below.length > 0 ? below[below.length - 1] : null;
}

function firstTrainableOf(unfreeze: UnfreezeSpec, layers: number, blockStarts: string | undefined): number | null {
  if (typeof unfreeze === 'number') return layers - unfreeze;
  if ('blocks' in unfreeze) {
    if (!blockStarts) return null;
    const starts = expandRanges(blockStarts);
    return starts[starts.length - unfreeze.blocks] ?? null;
  }
  return typeof unfreeze.fineTuneAt === 'number' ? unfreeze.fineTuneAt : null;
}
