/**
 * The coordinator's one gRPC port: AgentService (leader only), ClusterService (every
 * replica), standard health checking (grpc.health.v1: "" = SERVING while etcd answers,
 * "cluster.v1.AgentService" = SERVING only on the leader, so a load balancer or an agent can
 * find the leader with a plain health probe) and server reflection, so that
 * `grpcurl -cacert ca.crt -cert me.crt -key me.key HOST:PORT list` works without the .proto at hand.
 *
 * The port speaks TLS 1.3 only, with the cluster's server credentials (shared/pki): every
 * service, health and reflection included, is behind the interceptor that refuses a call
 * without a client certificate of the cluster CA. There is no plaintext listener.
 */
import type * as http2 from 'node:http2';
import type { Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { loadProto, InvalidArgumentError, type Logger } from '../shared';
import { LOADER_OPTIONS, protoPath } from '../shared/proto';
import { protocStyleDescriptors } from './reflection-descriptors';
import { callGuard, withTotalDeserializers } from './call-guard';
import { FdHeadroom } from './fd-headroom';
import { ConnectionKeepalive, peerKey } from './connection-keepalive';
import { applyTcpLiveness, livenessSettings, loadTcpLiveness, SILENCE_ERRORS, socketFd, type TcpLivenessSettings } from './tcp-liveness';
import { toGrpcStatus } from '../shared/errors';
import type { AgentServiceHandlers } from '../generated/cluster/v1/AgentService';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { CoordinatorSettings } from './options';
import type { ClusterServerCredentials } from '../shared/pki';

export const AGENT_SERVICE_NAME = 'cluster.v1.AgentService';
export const CLUSTER_SERVICE_NAME = 'cluster.v1.ClusterService';

/** Another service of the contract served on the same port (files, declarative config, ...). */
export interface ExtraService {
  definition: grpc.ServiceDefinition;
  handlers: grpc.UntypedServiceImplementation;
}

/** The server's message limit, shared with every client (shared/grpc-limits.ts explains its size). */
export { MAX_GRPC_MESSAGE_BYTES as MAX_MESSAGE_BYTES } from '../shared/grpc-limits';
import { GRPC_OPTIONS, MAX_GRPC_REQUEST_BYTES } from '../shared/grpc-limits';

export interface GrpcServerOptions {
  logger: Logger;
  settings: Pick<CoordinatorSettings, 'grpcKeepaliveTimeMs' | 'grpcKeepaliveTimeoutMs' | 'grpcMinPingIntervalMs' | 'tcpLivenessMs'>;
  /** Clock ms for the keepalive (the coordinator's clock). @default Date.now */
  now?: () => number;
  agentService: AgentServiceHandlers;
  clusterService: ClusterServiceHandlers;
  services?: readonly ExtraService[];
  /** Unary calls one client may have in flight (call-guard.ts). @default 32 */
  maxCallsPerPeer?: number;
}

/**
 * Every handler with a last line of defence: a synchronous throw becomes the call's status
 * instead of an exception in grpc-js's event handler, which would end the process.
 */
function guardHandlers(handlers: grpc.UntypedServiceImplementation, log: Logger): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    const fn = handler as (call: grpc.ServerUnaryCall<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => void;
    out[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>): void => {
      try {
        fn(call, callback);
      } catch (err) {
        log.error('handler threw', { method: name, err: err instanceof Error ? err.message : String(err) });
        const status = toGrpcStatus(err);
        if (callback) callback(status);
        else call.emit('error', status);
      }
    }) as grpc.UntypedHandleCall;
  }
  return out;
}

/** Splits "host:port" / "[v6]:port"; port 0 = any free port. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(text)}: use HOST:PORT, e.g. 127.0.0.1:7400 (port 0 picks a free port)`);
  return { host: m[1], port };
}

/** grpc-js's own record of its HTTP/2 servers and their connections (not part of its typed API). */
type Http2ServersInternal = Map<http2.Http2Server | http2.Http2SecureServer, { sessions?: Set<http2.ServerHttp2Session> }>;

export class GrpcServer {
  readonly server: grpc.Server;
  /** PINGs every client connection and drops the silent ones (and says which, for agent streams). */
  readonly keepalive: ConnectionKeepalive;
  /** Warns while client connections near the open-files limit (fd-headroom.ts). */
  private readonly fdHeadroom: FdHeadroom;
  private readonly followed = new Set<http2.Http2Server | http2.Http2SecureServer>();
  /** The kernel's liveness check on every client connection (tcp-liveness.ts); undefined when off. */
  private readonly tcpLiveness?: { addon: ReturnType<typeof loadTcpLiveness>; settings: TcpLivenessSettings };
  private readonly now: () => number;
  private tcpLivenessFailures = 0;
  private readonly health: HealthImplementation;
  private readonly log: Logger;
  private port?: number;

  constructor(options: GrpcServerOptions) {
    this.log = options.logger.child({ component: 'grpc-server' });
    const { api } = loadProto();
    // Agents keep one idle stream each for days: the transport must notice dead peers. The
    // kernel does (tcp-liveness.ts, watchTcpLiveness); our HTTP/2 PING (connection-keepalive.ts:
    // one sweep for all connections, not grpc-js's timers) checks the program at the other end.
    this.keepalive = new ConnectionKeepalive({
      periodMs: options.settings.grpcKeepaliveTimeMs, timeoutMs: options.settings.grpcKeepaliveTimeoutMs, logger: this.log, ...(options.now ? { now: options.now } : {}),
    });
    this.now = options.now ?? Date.now;
    if (options.settings.tcpLivenessMs > 0) {
      // Loaded here, so that a coordinator without the addon refuses to start, saying why.
      this.tcpLiveness = { addon: loadTcpLiveness(), settings: livenessSettings(options.settings.tcpLivenessMs) };
    } else {
      const foundMs = options.settings.grpcKeepaliveTimeMs + options.settings.grpcKeepaliveTimeoutMs;
      if (foundMs > 5000) {
        this.log.warn('TCP liveness is off: a cut or powered-off agent is found only by the HTTP/2 PING, up to --grpc-keepalive + --grpc-keepalive-timeout after it went silent; set --grpc-keepalive 2 --grpc-keepalive-timeout 2 for seconds', { foundWithinMs: foundMs });
      }
    }
    this.fdHeadroom = new FdHeadroom({ logger: this.log });
    this.server = new grpc.Server({
      'grpc.http2.min_ping_interval_without_data_ms': options.settings.grpcMinPingIntervalMs,
      ...GRPC_OPTIONS,
      // Responses may be large (ListNodes of a big fleet); requests may not.
      'grpc.max_receive_message_length': MAX_GRPC_REQUEST_BYTES,
      interceptors: [callGuard({ logger: options.logger, maxCallsPerPeer: options.maxCallsPerPeer })],
    });
    const add = (definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation): void => {
      this.server.addService(withTotalDeserializers(definition), guardHandlers(handlers, this.log));
    };
    add(api.cluster.v1.AgentService.service, options.agentService);
    add(api.cluster.v1.ClusterService.service, options.clusterService);
    for (const extra of options.services ?? []) add(extra.definition, extra.handlers);

    this.health = new HealthImplementation({ '': 'NOT_SERVING', [AGENT_SERVICE_NAME]: 'NOT_SERVING', [CLUSTER_SERVICE_NAME]: 'NOT_SERVING' });
    this.health.addToServer(this.server);

    // Reflection over our contract plus the health service (loaded by relative name so the
    // descriptor's file name is the conventional "health/v1/health.proto"), with the .proto's
    // own field names (keepCase) and descriptors rewritten as protoc writes them.
    const reflected = protoLoader.loadSync(protoPath(), { ...LOADER_OPTIONS, keepCase: true });
    const healthDefinition = protoLoader.loadSync('health/v1/health.proto', {
      includeDirs: [resolve(dirname(healthProtoPath), '..', '..')],
    });
    new ReflectionService(protocStyleDescriptors({ ...reflected, ...healthDefinition })).addToServer(this.server);
  }

  /** Binds `listen` (HOST:PORT, port 0 = any) with the cluster's TLS credentials; returns the bound port. */
  bind(listen: string, credentials: ClusterServerCredentials): Promise<number> {
    parseHostPort(listen, '--listen address');
    return new Promise((res, rej) => {
      this.server.bindAsync(listen, credentials, (err, port) => {
        if (err) {
          rej(new InvalidArgumentError(`cannot listen on ${listen}: ${err.message}`));
          return;
        }
        this.port = port;
        try {
          this.followConnections();
        } catch (followErr) {
          rej(followErr instanceof Error ? followErr : new Error(String(followErr)));
          return;
        }
        res(port);
      });
    });
  }

  /**
   * Hands the HTTP/2 servers grpc-js made for our listeners to the keepalive. grpc-js has no
   * public hook for its connections; its server map is read here, and if a grpc-js upgrade
   * changes it, bind fails loudly rather than leaving agents' connections unwatched.
   */
  private followConnections(): void {
    const servers = (this.server as unknown as { http2Servers?: unknown }).http2Servers;
    if (!(servers instanceof Map)) throw new Error('cannot watch client connections for keepalive: grpc-js no longer exposes its HTTP/2 servers (Server.http2Servers); check the grpc-js version');
    for (const [server, info] of (servers as Http2ServersInternal)) {
      if (this.followed.has(server)) continue;
      this.followed.add(server);
      this.keepalive.attach(server, info.sessions ?? []);
      if (this.tcpLiveness) this.watchTcpLiveness(server, this.tcpLiveness);
      // After the keepalive's own listener: its count includes the connection that just came.
      server.on('session', () => this.fdHeadroom.check(this.keepalive.size));
    }
  }

  /**
   * Sets the kernel's liveness window on each new connection of `server`, and when the kernel
   * gives up on one (its read fails with ETIMEDOUT), records the peer as silent since the window
   * began, before the connection's streams end (the error listener runs ahead of HTTP/2's).
   */
  private watchTcpLiveness(server: http2.Http2Server | http2.Http2SecureServer, t: NonNullable<GrpcServer['tcpLiveness']>): void {
    server.prependListener('connection', (socket: Socket) => {
      const fd = socketFd(socket);
      try {
        if (fd === undefined) throw new Error('the connection has no file descriptor');
        applyTcpLiveness(t.addon, fd, t.settings);
      } catch (err) {
        // Once at warn (a systematic failure would say the same for every connection), then debug.
        this.tcpLivenessFailures++;
        const fields = { peer: peerKey(socket), error: err instanceof Error ? err.message : String(err), failures: this.tcpLivenessFailures };
        if (this.tcpLivenessFailures === 1) this.log.warn('cannot set TCP liveness on a connection; only the keepalive PINGs watch it (further failures are logged at debug)', fields);
        else this.log.debug('cannot set TCP liveness on a connection', fields);
      }
    });
    server.prependListener('secureConnection', (socket: Socket) => {
      const peer = peerKey(socket);
      socket.prependListener('error', (err: NodeJS.ErrnoException) => {
        if (err.code === undefined || !SILENCE_ERRORS.has(err.code)) return;
        const now = this.now();
        const windowMs = t.settings.userTimeoutMs;
        this.keepalive.markSilent(peer, now - windowMs, now);
        this.log.info('connection dropped by TCP liveness', { peer, why: `nothing received for ${windowMs} ms (kernel keepalive / TCP_USER_TIMEOUT)`, error: err.code });
      });
    });
  }

  get boundPort(): number | undefined {
    return this.port;
  }

  setHealth(service: string, status: ServingStatus): void {
    this.health.setStatus(service, status);
  }

  /** Graceful stop: refuse new calls, wait up to `graceMs` for open ones, then force. */
  async shutdown(graceMs: number): Promise<void> {
    this.keepalive.stop();
    await new Promise<void>((res) => {
      const force = setTimeout(() => {
        this.log.warn('grace period over; closing remaining calls', { graceMs });
        this.server.forceShutdown();
        res();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        res();
      });
    });
  }
}
