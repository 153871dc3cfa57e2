/**
 * Weights that cannot be loaded. `retryable` maps onto JetStream acks like
 * every engine error: a wrong or missing file is final (`term`), a network or
 * NATS hiccup may pass (`nak`).
 */
export class WeightsError extends Error {
  readonly code = 'WEIGHTS';
  readonly retryable: boolean;
  constructor(message: string, opts: { retryable: boolean; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = 'WeightsError';
    this.retryable = opts.retryable;
  }
}
