/**
 * Why a trial could not run, and whether running it again can help. The
 * retry policy maps onto JetStream acks: unrecoverable → `term()`,
 * transient → `nak(delay)` (until deliveries run out).
 */
export type TrialErrorCode =
  | 'INVALID_TRIAL' // the trial's own configuration can never work (unknown backbone, bad size)
  | 'DATASET' // the dataset is missing or unusable on this worker
  | 'WEIGHTS' // the backbone's weights file is missing, unreachable or does not fit
  | 'TRAINING' // training threw; may be transient (memory pressure, a flaky backend)
  | 'REPORT' // the coordinator could not be reached in time
  | 'DRAINING' // the worker is shutting down; the trial goes back to the queue
  | 'DIVERGED' // the loss became NaN or exploded: the recipe, not the worker, is at fault
  | 'OUT_OF_MEMORY'; // an allocation failed at this batch size; the same worker would fail again

export class TrialError extends Error {
  readonly code: TrialErrorCode;
  readonly retryable: boolean;
  constructor(code: TrialErrorCode, message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'TrialError';
    this.code = code;
    this.retryable = opts.retryable;
  }
}

/** Classifies anything thrown while running a trial. */
export function toTrialError(err: unknown): TrialError {
  if (err instanceof TrialError) return err;
  const e = err as { name?: string; code?: string; retryable?: boolean; message?: string };
  const message = e?.message ?? String(err);
  if (isOutOfMemory(message)) return new TrialError('OUT_OF_MEMORY', `out of memory: ${message}`, { retryable: false, cause: err });
  if (e?.name === 'DatasetError') return new TrialError('DATASET', message, { retryable: false, cause: err });
  if (e?.name === 'WeightsError' || e?.name === 'WeightsRefError') return new TrialError('WEIGHTS', message, { retryable: e.retryable ?? false, cause: err });
  if (e?.retryable === false) return new TrialError('INVALID_TRIAL', message, { retryable: false, cause: err });
  return new TrialError('TRAINING', message, { retryable: true, cause: err });
}

/**
 * tfjs allocation failures: wasm ("memory access out of bounds", "Out of
 * memory", "Aborted(OOM)"), the cpu backend / V8 ("Array buffer allocation
 * failed", "Invalid typed array length"), tfjs-node ("OOM when allocating").
 */
export function isOutOfMemory(message: string): boolean {
  return /out of memory|memory access out of bounds|\bOOM\b|array buffer allocation failed|invalid typed array length|failed to allocate/i.test(message);
}
