/**
 * Engine errors carry `retryable`, which the worker's `toTrialError` maps onto
 * JetStream acks: false → `term()` (the trial can never work), true → `nak`.
 */

/** A trial's configuration can never work: unknown backbone, bad size, bad hyperparameter. */
export class EngineConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  readonly retryable = false;
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'EngineConfigError';
  }
}

/**
 * No usable tfjs backend on this machine (or not the one asked for). Another
 * worker may have it, so a trial that hit this may be retried elsewhere.
 */
export class BackendUnavailableError extends Error {
  readonly code = 'BACKEND_UNAVAILABLE';
  readonly retryable = true;
  constructor(
    message: string,
    readonly tried: Array<{ name: string; error?: string }>,
  ) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}
