/**
 * The two refusals of the trust layer. They travel as their own gRPC codes, so a client can
 * tell "you have no valid certificate" (UNAUTHENTICATED) from "your role may not do this"
 * (PERMISSION_DENIED).
 */
import { status as Status } from '@grpc/grpc-js';
import { ClusterError } from '../errors';

/** No certificate, a certificate the cluster CA did not issue, an expired or a revoked one. */
export class UnauthenticatedError extends ClusterError {
  override readonly code = Status.UNAUTHENTICATED;
}

/** A valid identity whose role does not allow the call; the message names the role needed. */
export class PermissionDeniedError extends ClusterError {
  override readonly code = Status.PERMISSION_DENIED;
}
