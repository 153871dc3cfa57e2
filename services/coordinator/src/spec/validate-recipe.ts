import { NOOP_BACKBONE } from '../../../worker/src/runner/noop-runner.js';
import type { FieldViolation } from '../errors.js';
import type { DatasetSpec } from './sweep-spec.js';
import { backboneInfo } from '../../../worker/src/engine/backbones/catalog.js';
import { unfreezeLabel, unfreezesAnything, type Recipe, type UnfreezeSpec } from '../../../worker/src/engine/recipe-options.js';
import { isGraphBackbone } from '../../../worker/src/engine/backbones/graph-backbone-spec.js';

/**
 * Checks each unfreeze depth against every chosen backbone's catalog entry:
 * layer counts and indices always, block counts where the catalog knows them.
 * Layer names can only be checked once the model is built, by the worker.
 */
export function checkUnfreezeAgainstBackbones(unfreeze: UnfreezeSpec[], backbones: string[], v: FieldViolation[]): void {
  const graphs = backbones.filter(isGraphBackbone);
  unfreeze.forEach((u, i) => {
    // Every backbone meets every depth (the axes are crossed), so one frozen backbone rules out fine-tuning in the sweep.
    if (graphs.length > 0 && unfreezesAnything(u)) {
      v.push({
        field: `unfreeze[${i}]`,
        message: `must be 0 with graph backbone ${graphs.join(', ')}: a GraphModel is frozen (hub.KerasLayer trainable=False), only the head trains; ` +
          `got ${unfreezeLabel(u)} (fine-tune other backbones in a sweep of their own)`,
      });
    }
    for (const b of backbones) {
      if (isGraphBackbone(b)) continue;
      // The noop benchmark backbone has no layers to unfreeze; an unknown name is reported on its own.
      const info = b === NOOP_BACKBONE ? { layers: 1, blocks: 0 } : backboneInfo(b);
      if (!info) continue;
      if (typeof u === 'number') {
        if (u >= info.layers) v.push({ field: `unfreeze[${i}]`, message: `must be below ${info.layers}, the layer count of backbone ${b}; got ${u}` });
      } else if ('blocks' in u) {
        if (info.blocks !== undefined && u.blocks > info.blocks) {
          v.push({ field: `unfreeze[${i}].blocks`, message: `must be at most ${info.blocks}, the block count of backbone ${b}; got ${u.blocks}` });
        }
      } else if (typeof u.fineTuneAt === 'number' && u.fineTuneAt >= info.layers) {
        v.push({ field: `unfreeze[${i}].fineTuneAt`, message: `must be a layer index below ${info.layers}, the layer count of backbone ${b}; got ${u.fineTuneAt}` });
      }
    }
  });
}

/** Classes of a dataset when the spec alone tells (folders are only known to the worker). */
function classCount(d: DatasetSpec): number | undefined {
  if (d.kind === 'fashion-mnist') return 10;
  if (d.kind === 'synthetic') return d.classes ?? 3;
  return undefined;
}

/** Recipe rules that depend on the rest of the spec. */
export function checkRecipeAgainstSpec(recipe: Recipe, datasets: DatasetSpec[], v: FieldViolation[]): void {
  if (recipe.binaryHead === 'sigmoid') {
    datasets.forEach((d, i) => {
      const k = classCount(d);
      if (k !== undefined && k !== 2) {
        v.push({ field: 'binaryHead', message: `'sigmoid' needs exactly 2 classes; dataset${datasets.length > 1 ? `[${i}]` : ''} has ${k}` });
      }
    });
  }
}
