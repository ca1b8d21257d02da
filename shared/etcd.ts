/**
 * Builds etcd clients from `host:port` endpoint lists. Only composition roots call this
 * (STYLE.md: nothing else constructs clients).
 */
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { handleWhen, noop, retry } from 'cockatiel';
import { InvalidArgumentError } from './errors';
import { GRPC_MESSAGE_LIMITS } from './grpc-limits';

export function endpointsToHosts(endpoints: readonly string[]): string[] {
  if (endpoints.length === 0) throw new InvalidArgumentError('no etcd endpoints: pass --etcd HOST:PORT[,HOST:PORT...] or set CLUSTER_ETCD');
  return endpoints.map((e) => {
    const url = /^https?:\/\//.test(e) ? e : `http://${e}`;
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
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const opts: IOptions = {
    hosts: endpointsToHosts(options.endpoints),
    dialTimeout: options.dialTimeoutMs ?? 3000,
    grpcOptions: { ...GRPC_MESSAGE_LIMITS, ...(options.dedicatedConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}) },
    // We run our own retry loops with backoff (lease-membership, reconciler); the client's
    // own retries would hide an outage from them. The default per-host circuit breaker would
    // also keep a recovered etcd "open" for 5 s after a restart; with several endpoints one
    // retry on another host is still worth it.
    faultHandling: {
      host: () => noop,
      global: options.endpoints.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: options.endpoints.length - 1 }) : noop,
    },
  };
  return new Etcd3(opts);
}
