import type { TrialConfig } from '../../../coordinator/src/spec/sweep-spec.js';
import type { EpochReport, TrialOutcome } from '../engine/train-trial.js';
import type { RunTrialHooks } from './run-trial.js';

/**
 * The `noop` backbone: a benchmark and test mode for the control plane
 * (`npm run bench:control`). A trial on it loads no data and trains
 * nothing; it reports its planned epochs with synthetic, deterministic
 * numbers through the same hooks, gRPC reports and acks as a real trial.
 * The coordinator refuses specs naming it unless started with
 * `allowNoopBackbone` (TLSWEEP_ALLOW_NOOP_BACKBONE=1), and every such trial
 * is stored with backend `noop` and NOOP_WEIGHTS_SOURCE, so its numbers
 * cannot pass for training results.
 */
import { unfreezesAnything } from '../engine/recipe-options.js';

export const NOOP_BACKBONE = 'noop';
export const NOOP_BACKEND = 'noop';
export const NOOP_WEIGHTS_SOURCE = 'noop backbone: synthetic metrics, nothing trained (control-plane benchmark mode)';

/** Runs a `noop` trial: one onEpoch per planned epoch (until STOP), synthetic metrics in [0, 1). */
export async function runNoopTrial(config: TrialConfig, hooks: RunTrialHooks): Promise<TrialOutcome> {
  const started = performance.now();
  const planned = config.headEpochs + (unfreezesAnything(config.unfreeze) ? config.fineTuneEpochs : 0);
  // A fixed score per trial (from its id and hyperparameters) so leaderboards built from it have ties and spread to sort.
  const base = fraction(`${config.trialId}|${config.learningRate}|${config.dropout}`);
  const history: EpochReport[] = [];
  let stopped = false;
  for (let epoch = 1; epoch <= planned; epoch++) {
    const valAccuracy = round(base * (epoch / planned));
    const r: EpochReport = {
      phase: epoch <= config.headEpochs ? 'head' : 'finetune',
      epoch,
      loss: round(1 - valAccuracy / 2),
      accuracy: valAccuracy,
      valLoss: round(1 - valAccuracy),
      valAccuracy,
      seconds: 0,
    };
    history.push(r);
    if ((await hooks.onEpoch(r)) === 'STOP') {
      stopped = epoch < planned;
      break;
    }
  }
  const last = history[history.length - 1];
  return {
    valAccuracy: last.valAccuracy,
    valLoss: last.valLoss,
    testAccuracy: last.valAccuracy,
    testLoss: last.valLoss,
    epochs: history.length,
    seconds: (performance.now() - started) / 1000,
    stopped,
    pretrained: false,
    weightsSource: NOOP_WEIGHTS_SOURCE,
    backend: NOOP_BACKEND,
    totalParams: 0,
    trainableParams: 0,
    cutLayer: '',
    unfreezeLayers: 0,
    earlyStops: [],
    resumedEpochs: 0,
    history,
    testMetrics: { count: 0, accuracy: last.valAccuracy, top5Accuracy: null, perClass: [], confusion: [] },
    phaseSeconds: { features: 0, head: 0, finetune: 0, evaluate: 0 },
  };
}

/** FNV-1a of a string, as a number in [0, 1). */
function fraction(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}

/** Three decimals: many trials share a score, as real accuracies on small validation sets do. */
const round = (x: number) => Math.round(x * 1000) / 1000;
