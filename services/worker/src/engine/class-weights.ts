import { EngineConfigError } from './errors.js';
import type { ClassWeightsSpec } from './recipe-options.js';

/**
 * Per-class loss weights by class index, as tfjs' `fit({ classWeight })`
 * takes them. 'balanced' is scikit-learn's `n_samples / (n_classes ·
 * bincount(y))` over the training labels; a mapping names classes (missing
 * ones weigh 1, as in Keras).
 *
 * @throws EngineConfigError for a class name the dataset lacks, or 'balanced' with a class absent from training.
 */
export function classWeightsFor(spec: ClassWeightsSpec, trainLabels: ArrayLike<number>, classNames: readonly string[]): Record<number, number> {
  const weights: Record<number, number> = {};
  if (spec === 'balanced') {
    const counts = new Array<number>(classNames.length).fill(0);
    for (let i = 0; i < trainLabels.length; i++) counts[trainLabels[i]] += 1;
    counts.forEach((c, k) => {
      if (c === 0) throw new EngineConfigError(`classWeights 'balanced': class '${classNames[k]}' has no training images`);
      weights[k] = trainLabels.length / (classNames.length * c);
    });
    return weights;
  }
  for (const name of Object.keys(spec)) {
    if (!classNames.includes(name)) {
      throw new EngineConfigError(`classWeights.${name}: the dataset has no class '${name}'; classes: ${classNames.join(', ')}`);
    }
  }
  classNames.forEach((name, k) => {
    weights[k] = Object.hasOwn(spec, name) ? spec[name] : 1;
  });
  return weights;
}
