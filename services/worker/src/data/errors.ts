import { stat } from 'node:fs/promises';

/** What went wrong while reading a dataset; stable, machine-readable. */
export type DatasetErrorCode =
  /** A path named by the spec (directory or file) does not exist. */
  | 'DATASET_NOT_FOUND'
  /** The spec or the files are malformed (bad field value, bad IDX header, ...). */
  | 'DATASET_INVALID'
  /** A class has no readable images. */
  | 'DATASET_EMPTY_CLASS';

/**
 * A dataset could not be loaded. Never retryable: the same spec on the same
 * worker will fail the same way. Messages name the spec field or path and what
 * was expected, e.g. `dataset.path: directory /x does not exist`.
 */
export class DatasetError extends Error {
  readonly code: DatasetErrorCode;
  readonly retryable = false as const;
  override readonly name = 'DatasetError';

  constructor(code: DatasetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Type guard usable across module copies (checks `name` and `code`). */
export function isDatasetError(e: unknown): e is DatasetError {
  return (
    e instanceof DatasetError ||
    (e instanceof Error && e.name === 'DatasetError' && typeof (e as { code?: unknown }).code === 'string')
  );
}

/**
 * Validates an optional integer spec field, returning `fallback` when absent.
 * @throws DatasetError DATASET_INVALID naming `field` and the accepted range.
 */
export function intField(
  value: unknown,
  field: string,
  fallback: number,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new DatasetError('DATASET_INVALID', `${field}: expected an integer ${range}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** @throws DatasetError DATASET_NOT_FOUND / DATASET_INVALID naming `field`. */
export async function assertDirectory(dir: string, field: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) {
      throw new DatasetError('DATASET_NOT_FOUND', `${field}: directory ${dir} does not exist`, { cause: e });
    }
    throw new DatasetError('DATASET_INVALID', `${field}: cannot access directory ${dir} (${(e as Error).message})`, { cause: e });
  }
  if (!st.isDirectory()) {
    throw new DatasetError('DATASET_INVALID', `${field}: expected a directory, but ${dir} is not one`);
  }
}

/** True when `e` is a Node system error with the given `code` (e.g. ENOENT). */
export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}
