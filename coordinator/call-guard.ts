/**
 * The edge every call of the coordinator's port passes, whatever its service (STYLE.md "typed
 * errors, mapped once at the edge"):
 *
 * - every status leaves with a safe message (shared/errors safeText): grpc-js puts the message
 *   through encodeURI, which throws URIError on a lone surrogate, and nothing caught that
 *   throw, so one request whose group name held one ended the process;
 * - a request over the size bound is INVALID_ARGUMENT with a message that says the bound
 *   (grpc-js answers RESOURCE_EXHAUSTED, which says "the server is out of something", and
 *   sends it from its base call, past every interceptor's responder: see `oversizeRefusal`);
 * - a request that does not deserialize is INVALID_ARGUMENT (grpc-js answers INTERNAL, which
 *   says "our bug" when it is the client's): the method's deserializer is wrapped so that it
 *   never throws, and the interceptor turns its marker into the status;
 * - one client (one certificate, else one address) has at most `maxCallsPerPeer` unary calls
 *   in flight; more are refused at once with RESOURCE_EXHAUSTED, so one client's flood does not
 *   queue in front of every other client's calls. Streams (an agent's Connect, watches) are
 *   long-lived and not counted.
 */
import * as grpc from '@grpc/grpc-js';
import { safeText } from '../shared/errors';
import { peerIdentity } from '../shared/pki';
import type { Logger } from '../shared/logger';
import { MAX_GRPC_REQUEST_BYTES } from '../shared/grpc-limits';

export interface CallGuardOptions {
  logger: Logger;
  /**
   * Unary calls one client may have in flight at once.
   * @default 32
   */
  maxCallsPerPeer?: number;
}

export const DEFAULT_MAX_CALLS_PER_PEER = 32;

/** What a wrapped deserializer returns for bytes that are not a message of the method's type. */
class Undeserializable {
  constructor(readonly reason: string) {}
}

/**
 * `definition` with every method's request deserializer made total: bytes that do not decode
 * become an Undeserializable marker the guard refuses, instead of a throw grpc-js maps to INTERNAL.
 */
export function withTotalDeserializers(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const m = method as grpc.MethodDefinition<unknown, unknown>;
    out[name] = {
      ...m,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return m.requestDeserialize(bytes);
        } catch (err) {
          return new Undeserializable(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out;
}

/** Who a call counts against: its certificate's serial, else its address. */
function peerKey(call: grpc.ServerInterceptingCallInterface): string {
  try {
    return `cert:${peerIdentity(call).serial}`;
  } catch {
    return `addr:${call.getPeer()}`;
  }
}

/**
 * grpc-js refuses a request over `grpc.max_receive_message_length` inside its
 * BaseServerInterceptingCall (handleDataFrame, and decompressMessage for a compressed one), by
 * `this.sendStatus(...)` on that base call: no interceptor's responder sees the status. So this
 * interceptor must be the first of the chain, the one handed grpc-js's base call (the server
 * credentials' interceptors come before the server's: shared/pki ServerTlsOptions
 * `innermostInterceptors`); it wraps that object's sendStatus, and the size refusal leaves as
 * INVALID_ARGUMENT naming the bound. Matched by grpc-js's own messages ("Received message larger
 * than max (N vs M)", "Received message that decompresses to a size larger than M");
 * test/edge/call-guard.test.ts fails if they change.
 */
export function oversizeRefusal(maxBytes: number = MAX_GRPC_REQUEST_BYTES): grpc.ServerInterceptor {
  const MiB = 1024 * 1024;
  const details = `the request is larger than the limit of ${maxBytes} bytes${maxBytes % MiB === 0 ? ` (${maxBytes / MiB} MiB)` : ''}`;
  return (_descriptor, call) => {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (status: Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0]): void => {
      if (status.code === grpc.status.RESOURCE_EXHAUSTED && /^Received message (larger than max|that decompresses to a size larger than)/.test(status.details ?? '')) {
        send({ ...status, code: grpc.status.INVALID_ARGUMENT, details });
        return;
      }
      send(status);
    };
    return new grpc.ServerInterceptingCall(call);
  };
}

export function callGuard(options: CallGuardOptions): grpc.ServerInterceptor {
  const log = options.logger.child({ component: 'call-guard' });
  const limit = options.maxCallsPerPeer ?? DEFAULT_MAX_CALLS_PER_PEER;
  const inFlight = new Map<string, number>();

  return (descriptor, call) => {
    const counted = !descriptor.requestStream && !descriptor.responseStream;
    let key: string | undefined;
    let finished = false;
    const release = (): void => {
      if (finished || key === undefined) return;
      finished = true;
      const left = (inFlight.get(key) ?? 1) - 1;
      if (left <= 0) inFlight.delete(key);
      else inFlight.set(key, left);
    };
    const refuse = (code: grpc.status, details: string): void => {
      release();
      call.sendStatus({ code, details: safeText(details), metadata: new grpc.Metadata() });
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (counted) {
          const k = peerKey(call);
          const n = inFlight.get(k) ?? 0;
          if (n >= limit) {
            log.warn('call refused: too many calls in flight from one client', { peer: k, method: descriptor.path, limit });
            // Not counted yet: nothing to release.
            call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `too many calls in flight from this client (limit ${limit}); retry later`, metadata: new grpc.Metadata() });
            return;
          }
          key = k;
          inFlight.set(k, n + 1);
        }
        next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        if (message instanceof Undeserializable) {
          log.debug('undeserializable request refused', { method: descriptor.path, reason: safeText(message.reason, 200) });
          refuse(grpc.status.INVALID_ARGUMENT, `the request is not a valid ${descriptor.path} message`);
          return;
        }
        next(message);
      })
      .withOnCancel(() => {
        release();
      })
      .build();

    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        release();
        next({ ...status, details: safeText(status.details) });
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
