/**
 * The bookkeeping every server-streaming watch RPC needs (WatchNodes, WatchEvents): its etcd
 * watchers are cancelled exactly once, when the caller cancels, the call closes or the
 * stream fails; a failure reaches the caller as a gRPC status unless the call already ended.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Watcher } from 'etcd3';
import { toGrpcStatus } from '../shared';

export interface WatchStream {
  /** True once the call was cancelled, closed or failed: write nothing more. */
  readonly done: boolean;
  /** Keeps `watcher` to be cancelled when the stream ends; returns it. */
  add(watcher: Watcher): Watcher;
  /** Ends the call with `err` as its status (unless it already ended), then cancels the watchers. */
  fail(err: unknown): void;
}

export function watchStream<Req, Res>(call: grpc.ServerWritableStream<Req, Res>): WatchStream {
  const watchers: Watcher[] = [];
  let done = false;
  const cleanup = (): void => {
    if (done) return;
    done = true;
    for (const w of watchers) {
      w.removeAllListeners();
      w.cancel().catch(() => undefined);
    }
  };
  call.on('cancelled', cleanup);
  call.on('close', cleanup);
  return {
    get done() { return done; },
    add(watcher) {
      watchers.push(watcher);
      return watcher;
    },
    fail(err) {
      if (!done && !call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(err));
      cleanup();
    },
  };
}
