import type { TrainHooks, TrialPhase } from './train-trial.js';

/** Wall seconds a trial spent in each phase; 0 for a phase that did not run. */
export type PhaseSeconds = Record<TrialPhase, number>;

/**
 * Measures wall time per phase from the trial's own `onPhase` calls, so the
 * phases are timed exactly where the trial announces them: a phase ends when
 * the next one starts or at `stop()`.
 */
export class PhaseTimer {
  private readonly seconds: PhaseSeconds = { features: 0, head: 0, finetune: 0, evaluate: 0 };
  private current: TrialPhase | null = null;
  private since = 0;

  enter(phase: TrialPhase): void {
    this.stop();
    this.current = phase;
    this.since = performance.now();
  }

  /** Ends the running phase; returns the totals so far. */
  stop(): PhaseSeconds {
    if (this.current) this.seconds[this.current] += (performance.now() - this.since) / 1000;
    this.current = null;
    return { ...this.seconds };
  }

  /** `hooks` with `onPhase` also timing the phases. */
  wrap(hooks: TrainHooks): TrainHooks {
    return {
      ...hooks,
      onPhase: (phase) => {
        this.enter(phase);
        hooks.onPhase?.(phase);
      },
    };
  }
}
