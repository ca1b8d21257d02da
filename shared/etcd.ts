/**
 * Builds etcd clients from `host:port` endpoint lists. Only composition roots call this
 * (STYLE.md: nothing else constructs clients).
 */
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { ExponentialBackoff, handleWhen, noop, retry, wrap } from 'cockatiel';
import { InvalidArgumentError } from './errors';
import { GRPC_OPTIONS } from './grpc-limits';

/** etcd's ErrAuthOldRevision: the request was refused unapplied, and may be sent again. */
export function isAuthRevisionRace(err: unknown): boolean {
  return err instanceof Error && /revision of auth store is old/.test(err.message);
}

/** etcd refuses writes: its database reached its quota (NOSPACE). Every member refuses them alike. */
export function isEtcdFull(err: unknown): boolean {
  return err instanceof Error && /database space exceeded/.test(err.message);
}

/**
 * Worth one more try on another endpoint: what etcd3 counts as recoverable (a member down, a
 * connection lost, a busy member), except a full database, which every member refuses alike.
 */
export function isRetriedOnAnotherEndpoint(err: unknown): boolean {
  return isRecoverableError(err as Error) && !isEtcdFull(err);
}

/** Must equal ETCD_SERVER_NAME of shared/pki/cluster-ca.ts (not imported: that module loads the issuing library). */
const ETCD_SERVER_NAME = 'etcd';

/**
 * What an etcd client presents and trusts: the cluster CA (which issued etcd's serving
 * certificate) and a client certificate whose CN is the etcd user (etcd's --client-cert-auth).
 */
export interface EtcdTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Endpoints as URLs: https:// when the client speaks TLS, http:// otherwise (a bare HOST:PORT takes the client's scheme). */
export function endpointsToHosts(endpoints: readonly string[], tls = false): string[] {
  if (endpoints.length === 0) throw new InvalidArgumentError('no etcd endpoints: pass --etcd HOST:PORT[,HOST:PORT...] or set CLUSTER_ETCD');
  return endpoints.map((e) => {
    const url = /^https?:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`;
    if (tls && url.startsWith('http://')) throw new InvalidArgumentError(`etcd endpoint ${JSON.stringify(e)} says http:// but this client has TLS credentials: use HOST:PORT or https://`);
    try {
      const u = new URL(url);
      if (!u.hostname || !u.port) throw new Error('missing host or port');
    } catch {
      throw new InvalidArgumentError(`invalid etcd endpoint ${JSON.stringify(e)}: use HOST:PORT, e.g. 127.0.0.1:2379`);
    }
    return url;
  });
}

export interface EtcdClientOptions {
  endpoints: readonly string[];
  /** Per-call timeout, so a dead etcd turns into an error rather than a hang. */
  dialTimeoutMs?: number;
  /**
   * Its own TCP connection: grpc-js otherwise shares one connection between clients with the
   * same target and options (its global subchannel pool), and this client's calls would share
   * flow control with the others' bulk traffic.
   */
  dedicatedConnection?: boolean;
  /** TLS with a client certificate; without it the client speaks plaintext (only for an etcd without TLS). */
  tls?: EtcdTls;
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const opts: IOptions = {
    hosts: endpointsToHosts(options.endpoints, options.tls !== undefined),
    ...(options.tls ? {
      credentials: { rootCertificate: Buffer.from(options.tls.caPem), certChain: Buffer.from(options.tls.certPem), privateKey: Buffer.from(options.tls.keyPem) },
    } : {}),
    dialTimeout: options.dialTimeoutMs ?? 3000,
    grpcOptions: {
      ...GRPC_OPTIONS,
      ...(options.dedicatedConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
      // etcd's certificate names `etcd` (cluster-coordinator init): checked instead of the
      // address, which keeps IP addresses out of SNI (Node's DEP0123).
      ...(options.tls ? { 'grpc.ssl_target_name_override': ETCD_SERVER_NAME, 'grpc.default_authority': ETCD_SERVER_NAME } : {}),
    },
    // We run our own retry loops with backoff (lease-membership, reconciler); the client's
    // own retries would hide an outage from them. The default per-host circuit breaker would
    // also keep a recovered etcd "open" for 5 s after a restart; with several endpoints one
    // retry on another host is still worth it.
    //
    // With etcd auth on, etcd refuses any request that raced an auth change (an agent's join
    // adds a user and a role) with "revision of auth store is old", before doing anything:
    // sent again it succeeds. Seen in the suite as a refused join when two agents joined at once.
    faultHandling: {
      host: () => noop,
      global: wrap(
        retry(handleWhen(isAuthRevisionRace), { maxAttempts: 5, backoff: new ExponentialBackoff({ initialDelay: 10, maxDelay: 200 }) }),
        options.endpoints.length > 1 ? retry(handleWhen(isRetriedOnAnotherEndpoint), { maxAttempts: options.endpoints.length - 1 }) : noop,
      ),
    },
  };
  return new Etcd3(opts);
}
