/**
 * Typed errors, mapped to gRPC status codes in one table (etcd3's `castGrpcError`).
 * Servers throw these; the gRPC edge turns them into a status with the same message, and
 * clients turn a status back into the same class, so a message a person can act on survives
 * the wire.
 */
import { status as Status, Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';

export class ClusterError extends Error {
  /** gRPC status code this error travels as. */
  readonly code: Status = Status.UNKNOWN;
  /** Whether a retry policy may try the same call again. */
  readonly retryable: boolean = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The class of one row of the status table: the code it travels as and whether a retry may
 * help. Each error below is one such row, a named class (so `instanceof` and `name` work).
 */
function statusError(code: Status, retryable = false): typeof ClusterError {
  return class extends ClusterError {
    override readonly code = code;
    override readonly retryable = retryable;
  };
}

/** The request is malformed: a bad flag, selector, bundle or message. */
export class InvalidArgumentError extends statusError(Status.INVALID_ARGUMENT) {}
/** The named thing (node, job, bundle, group, file) does not exist. */
export class NotFoundError extends statusError(Status.NOT_FOUND) {}
/** The thing being created exists already (a duplicate job, an existing bundle version). */
export class AlreadyExistsError extends statusError(Status.ALREADY_EXISTS) {}
/** The system is not in a state that allows this (illegal transition, group rule broken). */
export class FailedPreconditionError extends statusError(Status.FAILED_PRECONDITION) {}
/** A concurrent change won (compare-and-swap lost); the caller may re-read and retry. */
export class ConflictError extends statusError(Status.ABORTED, true) {}
/** A dependency (etcd, the leader, an agent) cannot be reached right now. */
export class UnavailableError extends statusError(Status.UNAVAILABLE, true) {}
/** The operation did not finish within its deadline. */
export class DeadlineExceededError extends statusError(Status.DEADLINE_EXCEEDED, true) {}
/** The operation was cancelled by an operator or by shutdown. */
export class CancelledError extends statusError(Status.CANCELLED) {}
/** This replica is not the leader (or no longer is): leader-only work refused. */
export class NotLeaderError extends statusError(Status.FAILED_PRECONDITION, true) {}
/** No certificate, a certificate the cluster CA did not issue, an expired or a revoked one. */
export class UnauthenticatedError extends statusError(Status.UNAUTHENTICATED) {}
/** A valid identity whose role does not allow the call; the message names the role needed. */
export class PermissionDeniedError extends statusError(Status.PERMISSION_DENIED) {}
/** One client or agent sent more than its share (calls in flight, messages per second); it may retry later. */
export class ResourceExhaustedError extends statusError(Status.RESOURCE_EXHAUSTED, true) {}
/** A bug or an unexpected failure; the message says what was being done. */
export class InternalError extends statusError(Status.INTERNAL) {}

type ErrorClass = new (message: string, options?: { cause?: unknown }) => ClusterError;

/** Status code → error class on the client side (one class per code). */
const byCode = new Map<Status, ErrorClass>([
  [Status.INVALID_ARGUMENT, InvalidArgumentError],
  [Status.NOT_FOUND, NotFoundError],
  [Status.ALREADY_EXISTS, AlreadyExistsError],
  [Status.FAILED_PRECONDITION, FailedPreconditionError],
  [Status.ABORTED, ConflictError],
  [Status.UNAVAILABLE, UnavailableError],
  [Status.DEADLINE_EXCEEDED, DeadlineExceededError],
  [Status.CANCELLED, CancelledError],
  [Status.INTERNAL, InternalError],
  [Status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
  [Status.UNAUTHENTICATED, UnauthenticatedError],
  [Status.PERMISSION_DENIED, PermissionDeniedError],
]);

/** The longest status message sent: a person reads it, and a parser's echo of a 1 MB input must not travel back. */
export const MAX_STATUS_MESSAGE_CHARS = 1024;

/**
 * The one rule for the text of a status message and of anything printed from input: lone
 * UTF-16 surrogates become U+FFFD (grpc-js sends `grpc-message` through encodeURI, which throws
 * URIError on them and so ended the process), control characters are escaped as \uXXXX (no
 * terminal escape or forged line reaches a terminal or a log), and the text is cut to `max`
 * characters with a note of how much was cut.
 */
export function safeText(text: string, max = MAX_STATUS_MESSAGE_CHARS): string {
  const wellFormed = text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  // eslint-disable-next-line no-control-regex
  const escaped = wellFormed.replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (escaped.length <= max) return escaped;
  // Never cut a surrogate pair in two.
  let cut = max;
  if (/[\uD800-\uDBFF]/.test(escaped.charAt(cut - 1))) cut--;
  return `${escaped.slice(0, cut)}… (${escaped.length - cut} more characters)`;
}

/** Turns anything thrown inside a handler into a gRPC status for the caller. */
export function toGrpcStatus(err: unknown): Partial<StatusObject> {
  if (err instanceof ClusterError) {
    const metadata = new Metadata();
    metadata.set('x-cluster-error', err.name);
    return { code: err.code, details: safeText(err.message), metadata };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: safeText(`internal error: ${message}`) };
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** Turns a gRPC client error back into the matching ClusterError, keeping the server's message. */
export function fromGrpcError(err: unknown): ClusterError {
  if (err instanceof ClusterError) return err;
  if (isServiceError(err)) {
    const cls = byCode.get(err.code) ?? ClusterError;
    const named = err.metadata?.get('x-cluster-error')[0];
    const instance = named === 'NotLeaderError' ? new NotLeaderError(err.details, { cause: err }) : new cls(err.details, { cause: err });
    return instance;
  }
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
