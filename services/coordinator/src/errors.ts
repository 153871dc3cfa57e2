import { status as GrpcStatus } from '@grpc/grpc-js';

/** Stable error codes of the coordinator; clients may switch on them. */
export type CoordinatorErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL';

/** Base class: every error the coordinator raises on purpose has a code. */
export class CoordinatorError extends Error {
  readonly code: CoordinatorErrorCode;
  /** Whether the same call may succeed later unchanged. */
  readonly retryable: boolean;
  constructor(code: CoordinatorErrorCode, message: string, opts: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'CoordinatorError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** One problem with one field of a request or spec. */
export interface FieldViolation {
  /** Dotted path of the field, e.g. `learningRates[1]`. */
  field: string;
  /** What is wrong and what is allowed. */
  message: string;
}

/** Bad input. The message lists every violation with its field. */
export class InvalidArgumentError extends CoordinatorError {
  readonly violations: FieldViolation[];
  constructor(violations: FieldViolation[], context = 'invalid request') {
    super('INVALID_ARGUMENT', `${context}: ${violations.map((v) => `${v.field}: ${v.message}`).join('; ')}`);
    this.name = 'InvalidArgumentError';
    this.violations = violations;
  }
  /** The first offending field (most messages have exactly one). */
  get field(): string {
    return this.violations[0]?.field ?? '';
  }
}

export class NotFoundError extends CoordinatorError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} '${id}' not found`);
    this.name = 'NotFoundError';
  }
}

export class FailedPreconditionError extends CoordinatorError {
  constructor(message: string) {
    super('FAILED_PRECONDITION', message);
    this.name = 'FailedPreconditionError';
  }
}

/** No credentials, or ones nobody issued (a missing or unknown bearer token). */
export class UnauthenticatedError extends CoordinatorError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message);
    this.name = 'UnauthenticatedError';
  }
}

/** Known caller, wrong role (or a report without the trial's lease). */
export class PermissionDeniedError extends CoordinatorError {
  constructor(message: string) {
    super('PERMISSION_DENIED', message);
    this.name = 'PermissionDeniedError';
  }
}

/** A limit was reached (running sweeps, submissions per minute); the same call may work later. */
export class ResourceExhaustedError extends CoordinatorError {
  /** When a retry may succeed, if known. */
  readonly retryAfterMs: number | null;
  constructor(message: string, retryAfterMs: number | null = null) {
    super('RESOURCE_EXHAUSTED', message, { retryable: true });
    this.name = 'ResourceExhaustedError';
    this.retryAfterMs = retryAfterMs;
  }
}

const NATS_TRANSIENT_ERRORS = new Set(['TimeoutError', 'NoRespondersError', 'RequestError', 'ClosedConnectionError', 'DrainingConnectionError', 'ConnectionError']);

/** Maps any thrown value to a gRPC status code and message. */
export function toGrpcStatus(err: unknown): { code: GrpcStatus; details: string } {
  if (err instanceof CoordinatorError) {
    const code = {
      INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
      NOT_FOUND: GrpcStatus.NOT_FOUND,
      FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
      UNAVAILABLE: GrpcStatus.UNAVAILABLE,
      UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
      PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
      RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
      INTERNAL: GrpcStatus.INTERNAL,
    }[err.code];
    return { code, details: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  // NATS/JetStream hiccups (a timeout, a restarting server) are worth retrying: say UNAVAILABLE, not INTERNAL.
  const name = err instanceof Error ? err.name : '';
  if (NATS_TRANSIENT_ERRORS.has(name)) return { code: GrpcStatus.UNAVAILABLE, details: `storage unavailable: ${message}` };
  return { code: GrpcStatus.INTERNAL, details: message };
}
