/**
 * The connection layer under clusterctl's one client (coordinator-client.ts): the channel
 * credentials (the one place they are made: mutual TLS with the credentials file, the server
 * checked against the cluster CA for the coordinator role; there is no plaintext), one channel
 * per replica with its service stubs made on first use, and the pool that says which replica
 * a call goes to first (the last one that answered) and where to go after a failure.
 */
import * as grpc from '@grpc/grpc-js';
import { connect as tlsConnect } from 'node:tls';
import { GRPC_OPTIONS } from '../shared/grpc-limits';
import { loadProto, type ProtoGrpcType } from '../shared/proto';
import { UnavailableError } from '../shared/errors';
import type { ClusterServiceClient } from '../generated/cluster/v1/ClusterService';
import type { ConfigServiceClient } from '../generated/cluster/v1/ConfigService';
import type { DeclarativeServiceClient } from '../generated/cluster/v1/DeclarativeService';
import type { FileServiceClient } from '../generated/cluster/v1/FileService';
import type { JobServiceClient } from '../generated/cluster/v1/JobService';
import type { PkiServiceClient } from '../generated/cluster/v1/PkiService';
import type { SecretServiceClient } from '../generated/cluster/v1/SecretService';
import type { ClientOptions } from './global-options';
import { checkServerCertificate, clientCredentials, CLUSTER_CHANNEL_OPTIONS } from '../shared/pki/grpc-credentials';
import type { Credentials } from '../shared/pki/credentials-file';

/** The channel credentials of every connection to the coordinator: mutual TLS with the credentials file. */
export function channelCredentials(options: ClientOptions): grpc.ChannelCredentials {
  const c = options.credentials;
  return clientCredentials({ caPem: c.ca, certPem: c.certificate, keyPem: c.key });
}

/** Errors that mean nothing answered at all, as opposed to a TLS handshake that failed. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Why mutual TLS with `address` fails, if it does (undefined when the handshake succeeds or
 * nothing answers). A gRPC channel reports a refused certificate only as "not ready", which
 * would read as "cannot reach the coordinator"; this one handshake says what is wrong.
 */
export function tlsProblem(address: string, c: Credentials, timeoutMs: number): Promise<string | undefined> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: m[1], port: Number(m[2]), ca: c.ca, cert: c.certificate, key: c.key, minVersion: 'TLSv1.3', ALPNProtocols: ['h2'],
      servername: String(CLUSTER_CHANNEL_OPTIONS['grpc.ssl_target_name_override']),
      checkServerIdentity: (_host, cert) => checkServerCertificate(c.ca, 'coordinator', cert),
    });
    const done = (problem: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('secureConnect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code && UNREACHABLE_CODES.has(err.code) ? undefined : err.message));
  });
}


export interface Stubs {
  cluster: ClusterServiceClient;
  jobs: JobServiceClient;
  config: ConfigServiceClient;
  files: FileServiceClient;
  declarative: DeclarativeServiceClient;
  pki: PkiServiceClient;
  secrets: SecretServiceClient;
}

type Api = ProtoGrpcType['cluster']['v1'];

const STUB_MAKERS: { [K in keyof Stubs]: (api: Api, address: string, credentials: grpc.ChannelCredentials, options: grpc.ClientOptions) => Stubs[K] } = {
  cluster: (api, address, credentials, options) => new api.ClusterService(address, credentials, options),
  jobs: (api, address, credentials, options) => new api.JobService(address, credentials, options),
  config: (api, address, credentials, options) => new api.ConfigService(address, credentials, options),
  files: (api, address, credentials, options) => new api.FileService(address, credentials, options),
  declarative: (api, address, credentials, options) => new api.DeclarativeService(address, credentials, options),
  pki: (api, address, credentials, options) => new api.PkiService(address, credentials, options),
  secrets: (api, address, credentials, options) => new api.SecretService(address, credentials, options),
};

export type Connected = 'ready' | 'failed' | 'deadline';

/** One replica: its channel (made on first use) and the service stubs on it. */
export class Endpoint {
  private channel: grpc.Channel | undefined;
  private readonly stubs: Partial<Stubs> = {};

  constructor(readonly address: string, private readonly credentials: grpc.ChannelCredentials) {}

  private open(): grpc.Channel {
    this.channel ??= new grpc.Channel(this.address, this.credentials, { ...GRPC_OPTIONS, ...CLUSTER_CHANNEL_OPTIONS });
    return this.channel;
  }

  stub<K extends keyof Stubs>(service: K): Stubs[K] {
    const made = this.stubs[service];
    if (made) return made;
    const stub = STUB_MAKERS[service](loadProto().api.cluster.v1, this.address, this.credentials, { channelOverride: this.open() });
    this.stubs[service] = stub;
    return stub;
  }

  /**
   * Waits until the channel is ready, or until `deadline`. With `throughFailures` false, a
   * failed connection attempt (refused, unresolvable) ends the wait at once as 'failed', so
   * the caller can try another replica; with true it waits for the channel's own reconnects,
   * as grpc's `waitForReady` does.
   */
  connect(deadline: Date, throughFailures: boolean): Promise<Connected> {
    const channel = this.open();
    return new Promise((resolve) => {
      const check = (): void => {
        const state = channel.getConnectivityState(true);
        if (state === grpc.connectivityState.READY) return resolve('ready');
        if (state === grpc.connectivityState.SHUTDOWN) return resolve('failed');
        if (state === grpc.connectivityState.TRANSIENT_FAILURE && !throughFailures) return resolve('failed');
        channel.watchConnectivityState(state, deadline, (err) => (err ? resolve('deadline') : check()));
      };
      check();
    });
  }

  close(): void {
    this.channel?.close();
  }
}

/** The replicas, and which one calls go to first: the last one that answered. */
export class EndpointPool {
  readonly endpoints: readonly Endpoint[];
  private current = 0;

  constructor(options: ClientOptions) {
    const credentials = channelCredentials(options);
    this.endpoints = options.endpoints.map((a) => new Endpoint(a, credentials));
  }

  /** Every replica, starting at the current one. */
  ordered(): Endpoint[] {
    return this.endpoints.map((_, i) => this.endpoints[(this.current + i) % this.endpoints.length]);
  }

  use(e: Endpoint): Endpoint {
    this.current = this.endpoints.indexOf(e);
    return e;
  }

  /** After `e` failed, calls go first to the replica listed after it. */
  moveOn(e: Endpoint): void {
    this.current = (this.endpoints.indexOf(e) + 1) % this.endpoints.length;
  }

  close(): void {
    for (const e of this.endpoints) e.close();
  }
}

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number';
}

export function isUnavailable(err: unknown): boolean {
  return isServiceError(err) ? err.code === grpc.status.UNAVAILABLE : err instanceof UnavailableError;
}
