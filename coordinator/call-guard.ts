/**
 * The edge every call of the coordinator's port passes, whatever its service (STYLE.md "typed
 * errors, mapped once at the edge"):
 *
 * - every status leaves with a safe message (shared/errors safeText): grpc-js puts the message
 *   through encodeURI, which throws URIError on a lone surrogate, and nothing caught that
 *   throw, so one request whose group name held one ended the process;
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
