/**
 * The one wrapper for async unary handlers of every service the coordinator serves: whatever a
 * handler throws becomes the call's status through shared/errors toGrpcStatus (the one mapping
 * of typed errors to gRPC codes, STYLE.md "typed errors, mapped once at the edge"). The call is
 * passed along so a handler can read the caller's verified identity (caller.ts). The handler
 * runs bound to its call's deadline and idempotency key (request-binding.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { toGrpcStatus } from '../shared/errors';
import { bindingOf, runBound } from './request-binding';

export function unary<Req, Res>(fn: (request: Req, call: grpc.ServerUnaryCall<Req, NoInfer<Res>>) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let pending: Promise<Res>;
    try {
      pending = runBound(bindingOf(call), () => fn(call.request, call));
    } catch (err) {
      callback(toGrpcStatus(err));
      return;
    }
    pending.then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcStatus(err)),
    );
  };
}
