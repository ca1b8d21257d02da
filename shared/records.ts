/**
 * The JSON values stored in etcd, one type per key family of shared/keyspace.ts, and strict
 * decoders: a record that does not parse is reported with its key, never half-used.
 */
import { InvalidArgumentError } from './errors';
import { isLifecycleState, type LifecycleState } from './lifecycle';
import { decodeRenderInputs, type RenderInputs } from './render-inputs';
import type { FactsDigest } from './facts-change';

/** members/<nodeId>: written by the agent, bound to its lease. */
export interface MemberRecord {
  nodeId: string;
  hostname: string;
  agentVersion: string;
  bootId: string;
  /** Unique per agent process start. */
  instanceId: string;
  /** Addresses of the machine (primary first), for operators. */
  address: string;
  appliedDigest: string;
  registeredAt: string;
}

/**
 * Why a node is Unreachable: its agent's stream to the leader is gone past the grace
 * ('stream'), its membership lease expired ('lease'), or both. A stream alive with the lease
 * gone is an agent cut off from etcd, not a dead machine: the record keeps them apart.
 */
export type UnreachableSignal = 'stream' | 'lease' | 'both';

export function isUnreachableSignal(v: unknown): v is UnreachableSignal {
  return v === 'stream' || v === 'lease' || v === 'both';
}

/** nodes/<nodeId>: the node record, written by the coordinator with compare-and-swap. */
export interface NodeRecord {
  id: string;
  state: LifecycleState;
  stateChangedAt: string;
  reachable: boolean;
  /** Set while unreachable: when the first signal fired (the stream ended, or the membership key went away). */
  unreachableSince?: string;
  /** Set while unreachable: which signal says so (coordinator/reachability.ts). */
  unreachableSignal?: UnreachableSignal;
  lastSeenAt?: string;
  labels: Record<string, string>;
  group?: string;
  maintenance: boolean;
  /** Why the node is in maintenance (the operator's --reason); unset when it is not. */
  maintenanceReason?: string;
  hostname?: string;
  address?: string;
  agentVersion?: string;
  bootId?: string;
  instanceId?: string;
  /** Agent stream to the leader: open now, and since when. */
  connected: boolean;
  connectedAt?: string;
  desiredConfig?: string;
  appliedConfig?: string;
  appliedDigest?: string;
  /** What the last commission, upgrade or repair rendered with (shared/render-inputs.ts); drift and out of date are judged against it. */
  appliedInputs?: RenderInputs;
  currentJob?: string;
  lastError?: string;
  /** Boot id the leader last verified (or took as the baseline); a different bootId means "reverify". */
  verifiedBootId?: string;
  /** What the last verification or agent drift report found ('' or absent = no drift). */
  driftSummary?: string;
  /** The newest verify job whose result is recorded on this record (drift watcher). */
  driftJob?: string;
  /**
   * A pre-registered node (`clusterctl discover`): what identifies the machine expected; the
   * record has no agent until one whose facts match joins (coordinator/pre-registration.ts).
   */
  expected?: { kind: 'ip' | 'serial' | 'mac'; value: string };
  /** The pre-registrations this node's record took when its agent joined ("serial SN123"). */
  preRegistrations?: string[];
  /** The facts the leader last saw for this node, in brief; a difference is a node.facts-changed event. */
  factsDigest?: FactsDigest;
  createdAt: string;
  updatedAt: string;
}

/** events/<seq>: the audit trail. */
export interface EventRecord {
  seq: number;
  at: string;
  /** e.g. node.created, node.discovered, node.unreachable, node.reachable, node.hello, node.state */
  type: string;
  nodeId?: string;
  jobId?: string;
  from?: string;
  to?: string;
  message: string;
  /** Who did it: `coordinator/<id>`, `agent/<nodeId>`, `operator`. */
  actor: string;
}

/** The JSON object stored at `key`; anything else is an InvalidArgumentError naming the key. */
export function parseRecordObject(key: string, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`etcd value at ${key} is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`etcd value at ${key} is not a JSON object`);
  return v as Record<string, unknown>;
}

function str(key: string, o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== 'string') throw new InvalidArgumentError(`etcd value at ${key}: field ${field} must be a string`);
  return v;
}

export function decodeMember(key: string, text: string): MemberRecord {
  const o = parseRecordObject(key, text);
  return {
    nodeId: str(key, o, 'nodeId'),
    hostname: typeof o.hostname === 'string' ? o.hostname : '',
    agentVersion: typeof o.agentVersion === 'string' ? o.agentVersion : '',
    bootId: typeof o.bootId === 'string' ? o.bootId : '',
    instanceId: typeof o.instanceId === 'string' ? o.instanceId : '',
    address: typeof o.address === 'string' ? o.address : '',
    appliedDigest: typeof o.appliedDigest === 'string' ? o.appliedDigest : '',
    registeredAt: typeof o.registeredAt === 'string' ? o.registeredAt : '',
  };
}

export function decodeNode(key: string, text: string): NodeRecord {
  const o = parseRecordObject(key, text);
  const state = str(key, o, 'state');
  if (!isLifecycleState(state)) throw new InvalidArgumentError(`etcd value at ${key}: unknown lifecycle state ${JSON.stringify(state)}`);
  const labels = o.labels && typeof o.labels === 'object' && !Array.isArray(o.labels) ? (o.labels as Record<string, string>) : {};
  const { appliedInputs: storedInputs, ...rest } = o;
  const appliedInputs = decodeRenderInputs(storedInputs);
  return {
    ...(rest as Partial<NodeRecord>),
    ...(appliedInputs ? { appliedInputs } : {}),
    id: str(key, o, 'id'),
    state,
    stateChangedAt: typeof o.stateChangedAt === 'string' ? o.stateChangedAt : '',
    reachable: o.reachable === true,
    unreachableSignal: isUnreachableSignal(o.unreachableSignal) ? o.unreachableSignal : undefined,
    labels,
    maintenance: o.maintenance === true,
    connected: o.connected === true,
    createdAt: typeof o.createdAt === 'string' ? o.createdAt : '',
    updatedAt: typeof o.updatedAt === 'string' ? o.updatedAt : '',
  };
}

export function decodeEvent(key: string, text: string): EventRecord {
  const o = parseRecordObject(key, text);
  return {
    ...(o as Partial<EventRecord>),
    seq: typeof o.seq === 'number' ? o.seq : 0,
    at: str(key, o, 'at'),
    type: str(key, o, 'type'),
    message: typeof o.message === 'string' ? o.message : '',
    actor: typeof o.actor === 'string' ? o.actor : '',
  };
}
