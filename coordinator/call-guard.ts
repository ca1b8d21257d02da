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
 * - one client (one certificate, else one address) starts at most `callsPerSecondPerPeer` calls
 *   a second and has at most `maxCallsPerPeer` unary calls and `maxStreamsPerPeer` streams in
 *   flight; more are refused at once with RESOURCE_EXHAUSTED, so one client's flood does not
 *   queue in front of every other client's calls, nor keep the coordinator (and etcd behind it)
 *   too busy to renew its own leadership lease (test/edge/bad-requests.test.ts: a flood of
 *   ListNodes and WatchNodes lost the leader its lease again and again before these limits);
 * - of those, at most `maxExpensivePerPeer` may be *expensive* at once (EXPENSIVE_METHODS: a
 *   read of a whole prefix decoded and serialised, a parse, a key rotation): 32 whole-inventory
 *   reads in flight from one client kept the event loop busy serialising them; a client's cheap
 *   calls (GetNode, GetJob) are not held back by its own expensive ones.
 */
import * as grpc from '@grpc/grpc-js';
import { safeText } from '../shared/errors';
import { peerIdentity, shortMethod } from '../shared/pki';
import type { Logger } from '../shared/logger';
import { MAX_GRPC_REQUEST_BYTES } from '../shared/grpc-limits';
import { MessageRate } from './message-rate';

export interface CallGuardOptions {
  logger: Logger;
  /**
   * Unary calls one client may have in flight at once.
   * @default 32
   */
  maxCallsPerPeer?: number;
  /**
   * Streams (watches, an agent's Connect) one client may have open at once.
   * @default 32
   */
  maxStreamsPerPeer?: number;
  /**
   * New calls (unary or streams) per second one client may start, on average; bursts of twice
   * that. Beyond, RESOURCE_EXHAUSTED at once, before any handler or etcd read.
   * @default 200
   */
  callsPerSecondPerPeer?: number;
  /**
   * Unary calls of EXPENSIVE_METHODS one client may have in flight at once (within maxCallsPerPeer).
   * @default 4
   */
  maxExpensivePerPeer?: number;
  /** The clock of the rate limit and of the warnings' throttle. @default Date.now */
  now?: () => number;
}

export const DEFAULT_MAX_CALLS_PER_PEER = 32;
export const DEFAULT_MAX_STREAMS_PER_PEER = 32;
export const DEFAULT_CALLS_PER_SECOND_PER_PEER = 200;
export const DEFAULT_MAX_EXPENSIVE_PER_PEER = 4;

/**
 * Unary methods whose cost grows with the cluster or the request: a whole prefix read, decoded
 * and serialised (nodes, events, jobs, history), a bundle or cluster file parsed, every key
 * scanned (a rotation). Named as `Service/Method` (shared/pki/authorization.ts shortMethod).
 */
export const EXPENSIVE_METHODS: ReadonlySet<string> = new Set([
  'ClusterService/ListNodes', 'ClusterService/ListEvents', 'ClusterService/GetStatus', 'ClusterService/GetNodeHistory', 'ClusterService/DiffNodes',
  'JobService/ListJobs', 'JobService/StartJob', 'ConfigService/PushBundle', 'ConfigService/ListBundles', 'ConfigService/ListGroups',
  'FileService/Upload', 'FileService/ListFiles', 'DeclarativeService/Plan', 'DeclarativeService/Apply', 'SecretService/RotateKey',
]);

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
  const limits = {
    unary: options.maxCallsPerPeer ?? DEFAULT_MAX_CALLS_PER_PEER,
    stream: options.maxStreamsPerPeer ?? DEFAULT_MAX_STREAMS_PER_PEER,
  };
  const perSecond = options.callsPerSecondPerPeer ?? DEFAULT_CALLS_PER_SECOND_PER_PEER;
  const now = options.now ?? Date.now;
  const maxExpensive = options.maxExpensivePerPeer ?? DEFAULT_MAX_EXPENSIVE_PER_PEER;
  const inFlight = { unary: new Map<string, number>(), stream: new Map<string, number>(), expensive: new Map<string, number>() };
  const rates = new Map<string, MessageRate>();
  // One warning per client per 10 s, with the count: a flood of refusals logged one line each
  // would cost the coordinator more than the refused calls themselves.
  const warned = new Map<string, { at: number; refused: number }>();
  const warn = (peer: string, method: string, why: string): void => {
    const t = now();
    const w = warned.get(peer);
    if (w && t - w.at < 10_000) { w.refused++; return; }
    log.warn(`calls refused: ${why}`, { peer, method, refusedSinceLastWarning: w?.refused ?? 0 });
    warned.set(peer, { at: t, refused: 0 });
    if (warned.size > 10_000) for (const [k, v] of warned) if (t - v.at >= 10_000) warned.delete(k);
  };
  const rateOf = (peer: string): MessageRate => {
    let r = rates.get(peer);
    if (!r) {
      // A bucket idle long enough to be full again is forgotten: the map holds recent clients only.
      if (rates.size > 10_000) for (const [k, v] of rates) if (v.idleFor(now()) > 10_000) rates.delete(k);
      r = new MessageRate(perSecond, now());
      rates.set(peer, r);
    }
    return r;
  };

  return (descriptor, call) => {
    const kind = descriptor.requestStream || descriptor.responseStream ? 'stream' : 'unary';
    const counts = inFlight[kind];
    const expensive = kind === 'unary' && EXPENSIVE_METHODS.has(shortMethod(descriptor.path));
    let key: string | undefined;
    let finished = false;
    const decrement = (m: Map<string, number>, k: string): void => {
      const left = (m.get(k) ?? 1) - 1;
      if (left <= 0) m.delete(k);
      else m.set(k, left);
    };
    const release = (): void => {
      if (finished || key === undefined) return;
      finished = true;
      decrement(counts, key);
      if (expensive) decrement(inFlight.expensive, key);
    };
    const refuse = (code: grpc.status, details: string): void => {
      release();
      call.sendStatus({ code, details: safeText(details), metadata: new grpc.Metadata() });
    };

    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const k = peerKey(call);
        // Not counted yet when refused here: nothing to release.
        if (!rateOf(k).take(now())) {
          warn(k, descriptor.path, `more than ${perSecond} calls per second from one client`);
          call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `too many calls from this client (limit ${perSecond} per second); retry later`, metadata: new grpc.Metadata() });
          return;
        }
        const n = counts.get(k) ?? 0;
        if (n >= limits[kind]) {
          const what = kind === 'unary' ? 'calls' : 'streams';
          warn(k, descriptor.path, `too many ${what} in flight from one client`);
          call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details: `too many ${what} in flight from this client (limit ${limits[kind]}); retry later`, metadata: new grpc.Metadata() });
          return;
        }
        const e = expensive ? inFlight.expensive.get(k) ?? 0 : 0;
        if (expensive && e >= maxExpensive) {
          warn(k, descriptor.path, 'too many expensive calls in flight from one client');
          call.sendStatus({
            code: grpc.status.RESOURCE_EXHAUSTED,
            details: `too many expensive calls (${shortMethod(descriptor.path)} and the like) in flight from this client (limit ${maxExpensive}); retry later`,
            metadata: new grpc.Metadata(),
          });
          return;
        }
        key = k;
        counts.set(k, n + 1);
        if (expensive) inFlight.expensive.set(k, e + 1);
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
