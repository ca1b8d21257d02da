/**
 * ClusterService's admin RPCs, served by EVERY replica: operator writes on a node (maintenance
 * flag, labels), the audit trail (list and watch events/<seq>) and the cluster's status
 * (leader, replicas, etcd health per member, node counts). Reads come from etcd; writes go
 * through a NodeStore WITHOUT the leader fence (an operator's flag is data the leader acts on
 * later, like a job request), still one CAS transaction plus one event each.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import {
  createEtcdClient, decodeEvent, decodeNode, errorMessage, InvalidArgumentError, isValidSegment, NotFoundError, toGrpcStatus,
  UnavailableError, type EventRecord, type Keyspace, type Logger, type NodeRecord,
} from '../shared';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { ClusterStatus } from '../generated/cluster/v1/ClusterStatus';
import type { EtcdEndpointStatus } from '../generated/cluster/v1/EtcdEndpointStatus';
import type { Event } from '../generated/cluster/v1/Event';
import type { Node } from '../generated/cluster/v1/Node';
import type { ReplicaStatus } from '../generated/cluster/v1/ReplicaStatus';
import type { WatchEventsRequest__Output } from '../generated/cluster/v1/WatchEventsRequest';
import { readKeys, readPrefixes } from './etcd-txn';
import type { EventLog } from './event-log';
import { decodeJob, isActive } from './jobs/job-record';
import { parseCandidate } from './leader-election';
import type { NodeStore } from './node-store';
import { parseFacts, toNodeView } from './node-view';
import { unary } from './unary-handler';

/** What the admin RPCs add to ClusterService (composed with cluster-service.ts's reads). */
export type ClusterAdminHandlers = Pick<ClusterServiceHandlers, 'SetMaintenance' | 'SetLabels' | 'ListEvents' | 'WatchEvents' | 'GetStatus'>;

/** One etcd member's answer to the maintenance Status call. */
export interface EndpointProbe {
  version: string;
  dbSize: string;
  isLeader: boolean;
}

export interface ClusterAdminOptions {
  client: Etcd3;
  keyspace: Keyspace;
  /** Unfenced node store: operator writes are accepted by any replica. */
  nodes: NodeStore;
  events: EventLog;
  logger: Logger;
  /**
   * Asks ONE etcd endpoint (a client URL) for its status. Default: a short-lived one-host client
   * (the shared client balances over hosts, so it cannot say which member answered).
   */
  probeEndpoint?: (endpoint: string, timeoutMs: number) => Promise<EndpointProbe>;
  /** Per-endpoint status deadline (default 2 s): a dead member must not stall `clusterctl status`. */
  probeTimeoutMs?: number;
}

/** Same syntax as selector keys/values (shared/selector.ts): a label that cannot be selected is useless. */
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

const DEFAULT_EVENT_LIMIT = 100;
const MAX_EVENT_LIMIT = 10_000;

function nodeId(raw: string, rpc: string): string {
  const id = raw.trim();
  if (!id) throw new InvalidArgumentError(`${rpc} needs a node id (list nodes with \`clusterctl nodes\`)`);
  if (!isValidSegment(id)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(id)}: use 1-253 characters from A-Z a-z 0-9 . _ : -`);
  return id;
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`node ${id} not found (list nodes with \`clusterctl nodes\`)`);
}

/** Checks a label change; throws one line naming the bad key or value. Pure, for tables. */
export function checkLabelChange(set: Readonly<Record<string, string>>, remove: readonly string[]): void {
  for (const [k, v] of Object.entries(set)) {
    if (!LABEL_KEY.test(k)) throw new InvalidArgumentError(`invalid label key ${JSON.stringify(k)}: letters, digits and . _ / - (at most 253), starting with a letter or digit`);
    if (!LABEL_VALUE.test(v)) throw new InvalidArgumentError(`invalid value ${JSON.stringify(v)} of label ${k}: at most 63 letters, digits and . _ -, starting and ending with a letter or digit`);
  }
  for (const k of remove) {
    if (!LABEL_KEY.test(k)) throw new InvalidArgumentError(`invalid label key to remove ${JSON.stringify(k)}`);
    if (k in set) throw new InvalidArgumentError(`label ${k} is both set and removed; say one`);
  }
  if (Object.keys(set).length === 0 && remove.length === 0) throw new InvalidArgumentError('no label change given (e.g. rack=r1 to set, rack- to remove)');
}

/** The labels after the change (keys sorted so the stored record is stable). Pure. */
export function applyLabelChange(labels: Readonly<Record<string, string>>, set: Readonly<Record<string, string>>, remove: readonly string[]): Record<string, string> {
  const next: Record<string, string> = { ...labels, ...set };
  for (const k of remove) delete next[k];
  return Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function toEventView(e: EventRecord): Event {
  return {
    seq: String(e.seq), at: e.at, type: e.type, nodeId: e.nodeId ?? '', jobId: e.jobId ?? '', from: e.from ?? '', to: e.to ?? '',
    message: e.message, actor: e.actor,
  };
}

export interface EventFilter {
  nodeId: string;
  jobId: string;
  afterSeq: number;
}

export function matchesEvent(f: EventFilter, e: EventRecord): boolean {
  return e.seq > f.afterSeq && (!f.nodeId || e.nodeId === f.nodeId) && (!f.jobId || e.jobId === f.jobId);
}

function parseSeq(text: string | number | undefined, what: string): number {
  const n = Number(text ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return n;
}

function eventFilter(req: { nodeId: string; jobId: string; afterSeq: string }): EventFilter {
  const f = { nodeId: req.nodeId.trim(), jobId: req.jobId.trim(), afterSeq: parseSeq(req.afterSeq, 'after_seq') };
  if (f.nodeId && !isValidSegment(f.nodeId)) throw new InvalidArgumentError(`invalid node id ${JSON.stringify(f.nodeId)}`);
  if (f.jobId && !isValidSegment(f.jobId)) throw new InvalidArgumentError(`invalid job id ${JSON.stringify(f.jobId)}`);
  return f;
}

/** Default probe: a one-host client, closed after the call. */
async function probeWithOwnClient(endpoint: string, timeoutMs: number): Promise<EndpointProbe> {
  const probe = createEtcdClient({ endpoints: [endpoint], dialTimeoutMs: timeoutMs });
  try {
    const s = await probe.maintenance.status({ deadline: new Date(Date.now() + timeoutMs) });
    return { version: s.version, dbSize: String(s.dbSize), isLeader: s.leader === s.header.member_id };
  } finally {
    probe.close();
  }
}

export function createClusterAdminHandlers(options: ClusterAdminOptions): ClusterAdminHandlers {
  const { client, keyspace, nodes, events } = options;
  const log = options.logger.child({ component: 'cluster-admin' });
  const probe = options.probeEndpoint ?? probeWithOwnClient;
  const probeTimeoutMs = options.probeTimeoutMs ?? 2000;

  /** The Node view of a record just written, with its facts summary. */
  async function view(id: string, record: NodeRecord, modRevision: string): Promise<Node> {
    const { kvs } = await readKeys(client, [keyspace.facts(id)]);
    return toNodeView(record, modRevision, parseFacts(kvs[0]?.value.toString()));
  }

  const setMaintenance = unary(async (req: { id: string; maintenance: boolean; reason: string }) => {
    const id = nodeId(req.id, 'SetMaintenance');
    const reason = req.reason.trim();
    const result = await nodes.mutate(id, (current) => {
      if (!current) throw notFound(id);
      if (current.maintenance === req.maintenance) return undefined; // already so: no write, no event
      const what = req.maintenance ? 'maintenance on' : 'maintenance off';
      return {
        next: { ...current, maintenance: req.maintenance },
        event: { type: 'node.maintenance', message: reason ? `${what}: ${reason}` : what, actor: 'operator' },
      };
    });
    const node = result.node;
    if (!node) throw notFound(id);
    if (result.changed) log.info('maintenance set', { nodeId: id, maintenance: req.maintenance, reason });
    return view(id, node.record, node.modRevision);
  });

  const setLabels = unary(async (req: { id: string; set: Record<string, string>; remove: string[] }) => {
    const id = nodeId(req.id, 'SetLabels');
    checkLabelChange(req.set, req.remove);
    const result = await nodes.mutate(id, (current) => {
      if (!current) throw notFound(id);
      const labels = applyLabelChange(current.labels, req.set, req.remove);
      if (JSON.stringify(labels) === JSON.stringify(applyLabelChange(current.labels, {}, []))) return undefined;
      const parts = [...Object.entries(req.set).map(([k, v]) => `${k}=${v}`), ...req.remove.map((k) => `${k}-`)];
      return { next: { ...current, labels }, event: { type: 'node.labels', message: `labels ${parts.join(' ')}`, actor: 'operator' } };
    });
    const node = result.node;
    if (!node) throw notFound(id);
    return view(id, node.record, node.modRevision);
  });

  const listEvents = unary(async (req: { nodeId: string; jobId: string; limit: number; afterSeq: string }) => {
    const f = eventFilter(req);
    const limit = Math.min(req.limit || DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT);
    const all = await events.list({ afterSeq: f.afterSeq });
    return { events: all.filter((e) => matchesEvent(f, e)).slice(-limit).map(toEventView) };
  });

  function decodeEventKv(kv: IKeyValue): EventRecord | undefined {
    const key = kv.key.toString();
    if (keyspace.parseEvent(key) === undefined) return undefined;
    try {
      return decodeEvent(key, kv.value.toString());
    } catch (err) {
      log.warn('skipping unreadable event', { key, err: errorMessage(err) });
      return undefined;
    }
  }

  function watchEvents(call: grpc.ServerWritableStream<WatchEventsRequest__Output, Event>): void {
    let watcher: Watcher | undefined;
    let done = false;
    const cleanup = (): void => {
      if (done) return;
      done = true;
      watcher?.removeAllListeners();
      watcher?.cancel().catch(() => undefined);
    };
    const fail = (err: unknown): void => {
      if (!done && !call.cancelled && !call.writableEnded) call.emit('error', toGrpcStatus(err));
      cleanup();
    };
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
    const run = async (): Promise<void> => {
      const f = eventFilter(call.request);
      const { revision, kvs } = await readPrefixes(client, [{ prefix: keyspace.eventsPrefix() }]);
      // Sequence order (the keys are zero-padded, but sort by number to be independent of that).
      const existing = kvs[0].map(decodeEventKv).filter((e): e is EventRecord => e !== undefined).sort((a, b) => a.seq - b.seq);
      let last = f.afterSeq;
      const send = (e: EventRecord): void => {
        // Deduplicated by seq: a watch restart may repeat what the snapshot sent.
        if (done || e.seq <= last || !matchesEvent(f, e)) return;
        last = e.seq;
        call.write(toEventView(e));
      };
      for (const e of existing) send(e);
      if (done) return;
      watcher = client.watch().prefix(keyspace.eventsPrefix()).startRevision(String(BigInt(revision) + 1n)).watcher();
      watcher.on('put', (kv) => {
        const e = decodeEventKv(kv);
        if (e) send(e);
      });
      watcher.on('error', (err) => fail(new UnavailableError(`event watch interrupted: ${errorMessage(err)}; watch again with --after to resume`)));
    };
    run().catch(fail);
  }

  async function etcdEndpoints(): Promise<EtcdEndpointStatus[]> {
    let urls: string[];
    try {
      const members = await client.cluster.memberList({}, { deadline: new Date(Date.now() + probeTimeoutMs) });
      urls = members.members.flatMap((m) => m.clientURLs);
    } catch (err) {
      return [{ endpoint: '(cluster)', healthy: false, version: '', dbSize: '0', isLeader: false, error: `member list failed: ${errorMessage(err)}` }];
    }
    return Promise.all(urls.map(async (url): Promise<EtcdEndpointStatus> => {
      const endpoint = url.replace(/^https?:\/\//, '');
      try {
        const s = await probe(endpoint, probeTimeoutMs);
        return { endpoint, healthy: true, version: s.version, dbSize: s.dbSize, isLeader: s.isLeader, error: '' };
      } catch (err) {
        return { endpoint, healthy: false, version: '', dbSize: '0', isLeader: false, error: errorMessage(err) };
      }
    }));
  }

  const getStatus = unary(async (): Promise<ClusterStatus> => {
    const [snap, etcd] = await Promise.all([
      readPrefixes(client, [
        { prefix: keyspace.electionPrefix() }, { prefix: keyspace.nodesPrefix() }, { prefix: keyspace.jobsPrefix() },
      ]),
      etcdEndpoints(),
    ]);
    const [candidateKvs, nodeKvs, jobKvs] = snap.kvs;
    // The leader is the candidate with the lowest create revision (the agreed election rule).
    const candidates = candidateKvs
      .map((kv) => ({ kv, c: parseCandidate(kv.value.toString()) }))
      .filter((x): x is { kv: IKeyValue; c: NonNullable<ReturnType<typeof parseCandidate>> } => x.c !== undefined)
      .sort((a, b) => (BigInt(a.kv.create_revision) < BigInt(b.kv.create_revision) ? -1 : 1));
    const replicas: ReplicaStatus[] = candidates.map((x, i) => ({ id: x.c.id, address: x.c.address, startedAt: x.c.startedAt, leader: i === 0 }));
    const counts: Record<string, number> = {};
    let reachable = 0;
    let connected = 0;
    let total = 0;
    for (const kv of nodeKvs) {
      const key = kv.key.toString();
      if (keyspace.parseNode(key) === undefined) continue;
      let n: NodeRecord;
      try {
        n = decodeNode(key, kv.value.toString());
      } catch {
        continue;
      }
      total++;
      counts[n.state] = (counts[n.state] ?? 0) + 1;
      if (n.reachable) reachable++;
      if (n.connected) connected++;
    }
    let jobsRunning = 0;
    for (const kv of jobKvs) {
      const key = kv.key.toString();
      const parsed = keyspace.parseJobKey(key);
      if (!parsed || parsed.nodeId !== undefined) continue;
      try {
        if (isActive(decodeJob(key, kv.value.toString()).state)) jobsRunning++;
      } catch {
        // an unreadable job record is not a running job
      }
    }
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

  return { SetMaintenance: setMaintenance, SetLabels: setLabels, ListEvents: listEvents, WatchEvents: watchEvents, GetStatus: getStatus };
}
