/**
 * The one wrapper for async unary handlers of every service the coordinator serves: whatever a
 * handler throws becomes the call's status through shared/errors toGrpcStatus (the one mapping
 * of typed errors to gRPC codes, STYLE.md "typed errors, mapped once at the edge").
 */
import type * as grpc from '@grpc/grpc-js';
import { toGrpcStatus } from '../shared/errors';

export function unary<Req, Res>(fn: (request: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcStatus(err)),
    );
  };
}
