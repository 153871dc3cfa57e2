/**
 * A stored feature-cache entry failed verification (bad magic, header,
 * length or digest). Never trusted: the tier deletes it and the features are
 * fetched from the next tier or computed again.
 */
export class FeatureCacheCorruptError extends Error {
  readonly code = 'FEATURE_CACHE_CORRUPT';
  readonly retryable = true;
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'FeatureCacheCorruptError';
  }
}
