/**
 * ClusterService's `GetStatus`, served by EVERY replica from etcd: the leader and replicas
 * (election candidates), etcd health and database size against its quota per member, node counts by state and running jobs.
 *
 * The etcd probe is its own: the member list and each member's status go through short-lived
 * clients, not the replica's shared one, whose channel a flood of calls can fill (then a 2 s
 * probe through it timed out and status said "etcd is unreachable" of a healthy etcd). When no
 * member answers in time, the members' ports are tried: a port that accepts a connection is a
 * member that is slow (stopped, overloaded), and status says so with the time it waited,
 * rather than calling it unreachable.
 */
import { connect } from 'node:net';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient, errorMessage, UnavailableError, type EtcdTls, type Keyspace } from '../shared';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { ClusterStatus } from '../generated/cluster/v1/ClusterStatus';
import type { EtcdEndpointStatus } from '../generated/cluster/v1/EtcdEndpointStatus';
import type { ReplicaStatus } from '../generated/cluster/v1/ReplicaStatus';
import { readPrefixes } from './etcd-txn';
import { isRunnable } from './jobs/job-record';
import { decodeSnapshot } from './snapshot';
import { pickLeader } from '../shared/leader-record';
import type { CoordinatorSettings } from './options';
import { unary } from './unary-handler';

export type StatusServiceHandlers = Pick<ClusterServiceHandlers, 'GetStatus'>;

/** One etcd member's answer to the maintenance Status call. */
export interface EndpointProbe {
  version: string;
  dbSize: string;
  /** Absent when the probe does not say (then shown as the db size). */
  dbSizeInUse?: string;
  isLeader: boolean;
}

export interface StatusServiceOptions {
  client: Etcd3;
  keyspace: Keyspace;
  settings: Pick<CoordinatorSettings, 'etcdProbeTimeoutMs' | 'etcdQuotaBytes'>;
  /** This replica (named when etcd does not answer it). */
  replicaId?: string;
  /** The endpoints the etcd client was given: named when even the member list fails. */
  etcdEndpoints?: readonly string[];
  /** The TLS credentials of the shared client, for the default per-member probe. @default none (plaintext) */
  etcdTls?: EtcdTls;
  /**
   * Asks ONE etcd endpoint (a client URL) for its status. Default: a short-lived one-host client
   * (the shared client balances over hosts, so it cannot say which member answered).
   */
  probeEndpoint?: (endpoint: string, timeoutMs: number) => Promise<EndpointProbe>;
}

/** One call through a short-lived client over `endpoints` (not the shared, possibly busy one), closed after it. */
async function withOwnClient<T>(endpoints: readonly string[], timeoutMs: number, tls: EtcdTls | undefined, call: (client: Etcd3, deadline: Date) => Promise<T>): Promise<T> {
  const probe = createEtcdClient({ endpoints: [...endpoints], dialTimeoutMs: timeoutMs, ...(tls ? { tls } : {}) });
  try {
    return await call(probe, new Date(Date.now() + timeoutMs));
  } finally {
    probe.close();
  }
}

/** The client URLs of etcd's members, through a short-lived client over `endpoints`. */
function membersWithOwnClient(endpoints: readonly string[], timeoutMs: number, tls?: EtcdTls): Promise<string[]> {
  return withOwnClient(endpoints, timeoutMs, tls, async (probe, deadline) => (await probe.cluster.memberList({}, { deadline })).members.flatMap((m) => m.clientURLs));
}

/** Whether something accepts a TCP connection at HOST:PORT within `timeoutMs`. */
export function acceptsConnections(endpoint: string, timeoutMs: number): Promise<boolean> {
  const i = endpoint.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: endpoint.slice(0, i), port: Number(endpoint.slice(i + 1)) });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Default probe: a one-host client, closed after the call. */
function probeWithOwnClient(endpoint: string, timeoutMs: number, tls?: EtcdTls): Promise<EndpointProbe> {
  return withOwnClient([endpoint], timeoutMs, tls, async (probe, deadline) => {
    const s = await probe.maintenance.status({ deadline });
    return { version: s.version, dbSize: String(s.dbSize), dbSizeInUse: String(s.dbSizeInUse), isLeader: s.leader === s.header.member_id };
  });
}

export function createStatusServiceHandlers(options: StatusServiceOptions): StatusServiceHandlers {
  const { client, keyspace } = options;
  const probe = options.probeEndpoint ?? ((endpoint: string, timeoutMs: number) => probeWithOwnClient(endpoint, timeoutMs, options.etcdTls));
  const probeTimeoutMs = options.settings.etcdProbeTimeoutMs;
  const quotaBytes = String(options.settings.etcdQuotaBytes);

  // The members of the last member list that answered: who to name when etcd stops answering.
  let knownMembers: string[] = (options.etcdEndpoints ?? []).map((e) => e.replace(/^https?:\/\//, ''));

  const listMembers = async (): Promise<string[]> => {
    const configured = options.etcdEndpoints ?? [];
    if (configured.length > 0) return membersWithOwnClient(configured, probeTimeoutMs, options.etcdTls);
    const members = await client.cluster.memberList({}, { deadline: new Date(Date.now() + probeTimeoutMs) });
    return members.members.flatMap((m) => m.clientURLs);
  };

  async function etcdEndpoints(): Promise<EtcdEndpointStatus[]> {
    let urls: string[];
    try {
      urls = await listMembers();
      knownMembers = urls.map((u) => u.replace(/^https?:\/\//, ''));
    } catch (err) {
      const error = `member list failed: ${errorMessage(err)}`;
      if (knownMembers.length === 0) return [{ endpoint: '(cluster)', healthy: false, version: '', dbSize: '0', dbSizeInUse: '0', quotaBytes, isLeader: false, error }];
      return knownMembers.map((endpoint) => ({ endpoint, healthy: false, version: '', dbSize: '0', dbSizeInUse: '0', quotaBytes, isLeader: false, error }));
    }
    return Promise.all(urls.map(async (url): Promise<EtcdEndpointStatus> => {
      const endpoint = url.replace(/^https?:\/\//, '');
      try {
        const s = await probe(endpoint, probeTimeoutMs);
        return { endpoint, healthy: true, version: s.version, dbSize: s.dbSize, dbSizeInUse: s.dbSizeInUse ?? s.dbSize, quotaBytes, isLeader: s.isLeader, error: '' };
      } catch (err) {
        return { endpoint, healthy: false, version: '', dbSize: '0', dbSizeInUse: '0', quotaBytes, isLeader: false, error: errorMessage(err) };
      }
    }));
  }

  const getStatus = unary(async (): Promise<ClusterStatus> => {
    // etcd first, with the probe's short deadline: when no member answers, the read below would
    // hang until the caller's deadline and the operator would be told the coordinator is silent.
    const started = performance.now();
    const etcd = await etcdEndpoints();
    if (!etcd.some((e) => e.healthy)) {
      const waited = Math.round(performance.now() - started);
      const who = options.replicaId ? `coordinator ${options.replicaId}` : 'this coordinator';
      const members = etcd.map((e) => e.endpoint).join(', ');
      const listening = (await Promise.all(etcd.map((e) => e.endpoint ?? '').filter((e) => e !== '' && e !== '(cluster)').map((e) => acceptsConnections(e, Math.min(probeTimeoutMs, 1000))))).some(Boolean);
      if (listening) {
        throw new UnavailableError(
          `etcd is slow from ${who}: no member answered its status probe within ${probeTimeoutMs} ms (waited ${waited} ms; ${members}), ` +
            'but a member accepts connections: etcd or this coordinator is overloaded or stopped, not unreachable',
        );
      }
      throw new UnavailableError(`etcd is unreachable from ${who}: no member answered (${members}): ${etcd[0]?.error ?? 'no members'}`);
    }
    const snap = await readPrefixes(client, [
      { prefix: keyspace.electionPrefix() }, { prefix: keyspace.nodesPrefix() }, { prefix: keyspace.jobsPrefix() },
    ]);
    const [candidateKvs, nodeKvs, jobKvs] = snap.kvs;
    // The leader is the candidate with the lowest create revision (the agreed election rule).
    const { candidates } = pickLeader(candidateKvs.map((kv) => ({ key: kv.key.toString(), createRevision: kv.create_revision, value: kv.value.toString() })), keyspace);
    const replicas: ReplicaStatus[] = candidates.map((c, i) => ({ id: c.id, address: c.address, startedAt: c.startedAt, leader: i === 0 }));
    // Nodes and jobs decoded by the one snapshot decoder, so these counts agree with `nodes`.
    const { nodes, jobs } = decodeSnapshot(keyspace, snap.revision, ['nodes', 'jobs'], [nodeKvs, jobKvs]);
    const counts: Record<string, number> = {};
    let reachable = 0;
    let connected = 0;
    for (const { record: n } of nodes.values()) {
      counts[n.state] = (counts[n.state] ?? 0) + 1;
      if (n.reachable) reachable++;
      if (n.connected) connected++;
    }
    const total = nodes.size;
    // A Paused job is unfinished but not running (it shows in `clusterctl jobs --state paused`).
    const jobsRunning = [...jobs.values()].filter((j) => isRunnable(j.record.state)).length;
    const leader = replicas[0];
    return {
      leader: leader ? { id: leader.id, address: leader.address } : null,
      replicas,
      etcdEndpoints: etcd,
      nodeCountsByState: counts,
      reachable,
      unreachable: total - reachable,
      connected,
      jobsRunning,
      revision: snap.revision,
    };
  });

  return { GetStatus: getStatus };
}
