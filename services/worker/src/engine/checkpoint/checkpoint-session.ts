import type * as tf from '@tensorflow/tfjs';
import type { SeededRng } from '../../data/prng.js';
import type { EarlyStopReport } from '../early-stopping.js';
import { dropoutCallCount, setDropoutCallCount, type Head } from '../head.js';
import type { PhaseProgress } from '../run-phase.js';
import type { EpochReport } from '../train-trial.js';
import { captureOptimizer, captureWeights, dataOfNamed, restoreOptimizer, restoreWeights, tensorsOf } from './checkpoint-tensors.js';
import type { TrialCheckpoint, TrialCheckpointing } from './trial-checkpoint.js';

/** What the trial is training when it takes a checkpoint. */
export interface PhaseState {
  phase: TrialCheckpoint['phase'];
  model: tf.LayersModel;
  optimizer: tf.Optimizer;
  head: Head;
  random: SeededRng;
  history: readonly EpochReport[];
  earlyStops: readonly EarlyStopReport[];
}

/**
 * One trial's checkpointing inside trainTrial: loads the checkpoint to
 * resume from (ignoring one taken with other settings), saves one after
 * every epoch, and puts a saved phase's state back into freshly built
 * models. Save failures never fail the trial.
 *
 * A save captures the state at once but writes it in the background: the
 * upload (megabytes to the Object Store for a fine-tuned tail) overlaps the
 * next epoch instead of adding to it (measured ~0.5 s of a 4 s epoch).
 * The next save waits for it first, so writes stay in order and at most one
 * is in flight; flush() waits for the last one, and the trial calls it
 * before it ends, so a finished, drained or failed trial's last checkpoint
 * is stored before anyone acts on its end. A worker killed mid-upload leaves
 * the previous checkpoint in place (an Object Store put replaces the old
 * object only once complete): the retry resumes one epoch earlier.
 */
export class CheckpointSession {
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly c: TrialCheckpointing, private readonly fingerprint: string) {}

  /** Waits for the last save's write (its failure went to onSaveError). */
  flush(): Promise<void> {
    return this.inFlight;
  }

  /** The checkpoint to resume from, or null to start afresh. */
  async load(): Promise<TrialCheckpoint | null> {
    const cp = this.c.resumeFrom !== undefined ? this.c.resumeFrom : await this.c.store.load(this.c.trialId);
    return cp && cp.v === 1 && cp.fingerprint === this.fingerprint ? cp : null;
  }

  async save(s: PhaseState, p: PhaseProgress): Promise<void> {
    await this.inFlight;
    try {
      const es = p.earlyStopping;
      const cp: TrialCheckpoint = {
        v: 1,
        fingerprint: this.fingerprint,
        phase: s.phase,
        epochsDone: s.history.length,
        progress: {
          epochsDone: p.epochsDone,
          ended: p.ended,
          earlyStopping: es ? { ...es, bestWeights: es.bestWeights ? await dataOfNamed(es.bestWeights) : null } : null,
        },
        history: [...s.history],
        earlyStops: [...s.earlyStops],
        rngState: s.random.state,
        dropoutCalls: dropoutCallCount(s.head),
        learningRate: s.history.at(-1)?.learningRate ?? Number.NaN,
        weights: await captureWeights(s.model),
        optimizer: await captureOptimizer(s.optimizer, s.model),
      };
      this.inFlight = this.c.store.save(this.c.trialId, cp).catch((err: unknown) => this.c.onSaveError?.(err));
    } catch (err) {
      this.c.onSaveError?.(err);
    }
  }
}

/** Puts a checkpoint's weights, optimizer slots and dropout position into the phase's freshly built model. */
export async function restorePhase(cp: TrialCheckpoint, model: tf.LayersModel, optimizer: tf.Optimizer, head: Head): Promise<void> {
  restoreWeights(model, cp.weights);
  await restoreOptimizer(optimizer, model, cp.optimizer);
  setDropoutCallCount(head, cp.dropoutCalls);
}

/**
 * The saved phase progress for runPhase's `resume`; the early-stopping best
 * weights become tensors that `release` frees once runPhase has copied them.
 */
export function resumeProgress(cp: TrialCheckpoint): { progress: PhaseProgress; release(): void } {
  const es = cp.progress.earlyStopping;
  const best = es?.bestWeights ? tensorsOf(es.bestWeights) : null;
  return {
    progress: { epochsDone: cp.progress.epochsDone, ended: cp.progress.ended, earlyStopping: es ? { ...es, bestWeights: best } : null },
    release: () => best?.forEach(([, t]) => t.dispose()),
  };
}

/** What a checkpoint must match: the trial's hyperparameters and the data's shape. */
export function checkpointFingerprint(hp: object, data: { classNames: readonly string[]; train: { x: tf.Tensor }; val: { x: tf.Tensor }; test: { x: tf.Tensor } }): string {
  return JSON.stringify({ hp, classes: data.classNames, sizes: [data.train.x.shape, data.val.x.shape, data.test.x.shape] });
}
