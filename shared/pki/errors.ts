/**
 * The two refusals of the trust layer, defined with the other typed errors in shared/errors.ts
 * (the one table of gRPC codes). They travel as their own codes, so a client can tell "you
 * have no valid certificate" (UNAUTHENTICATED) from "your role may not do this" (PERMISSION_DENIED).
 */
export { UnauthenticatedError, PermissionDeniedError } from '../errors';
