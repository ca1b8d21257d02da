/**
 * nodes/<id>: the node records. Every mutation is ONE etcd transaction
 *   { CAS on the node's mod revision (or absence), the leader fence, extra guards,
 *     the event counter } → { put node, put event, put history entry }
 * and every lifecycle change is checked by shared/lifecycle.ts `checkTransition` before
 * anything is written. A lost CAS re-reads the node and re-applies the mutator (which sees
 * the fresh record, so a stale decision is re-made, not replayed), a bounded number of times.
 */
import type { Etcd3 } from 'etcd3';
import {
  CAS_LOST, checkTransition, ConflictError, decodeNode, FailedPreconditionError, retryOnConflict, type Clock, type Keyspace, type LifecycleState,
  type NodeRecord, type NotLeaderError,
} from '../shared';
import type { EventInput, EventLog } from './event-log';
import { readKeysChunked, readRecord, type Compare, type TxnOp } from './etcd-txn';
import { DEFAULT_SETTINGS } from './options';
import { readSnapshot } from './snapshot';

export interface VersionedNode {
  record: NodeRecord;
  /** etcd mod revision of nodes/<id>. */
  modRevision: string;
}

/** What a mutator wants written: the whole next record and the event that explains it. */
export interface NodeChange {
  next: NodeRecord;
  event: Omit<EventInput, 'nodeId' | 'from' | 'to'>;
}

/** Decides the change from the current record (undefined = no node); undefined = nothing to do. */
export type NodeMutator = (current: NodeRecord | undefined) => NodeChange | undefined;

/** The leader's fence (see leader-election.ts), narrowed to what writers need. */
export interface Fence {
  fenceCompare(): Compare;
  /** Called when etcd refused a fenced write: re-checks leadership, returns the error to throw. */
  fenceFailed(): NotLeaderError;
}

export type MutationResult =
  | { changed: true; node: VersionedNode; seq: number }
  /** Nothing to do (the mutator said so), or a caller's guard no longer held (`guardFailed`). */
  | { changed: false; node?: VersionedNode; guardFailed?: Compare[] };

export interface MutateOptions {
  /** The record as the caller already read it (skips one read); null = known absent. */
  known?: VersionedNode | null;
  /** Extra conditions the change depends on (e.g. "member key still absent"). */
  guards?: readonly Compare[];
  /** Other writes of the same transaction (e.g. deleting the pre-registration a node takes). */
  ops?: readonly TxnOp[];
  /**
   * The full facts the change's facts digest was computed from: kept in the node's history
   * (history-facts/) when the change moves the digest, so `node describe --at` shows them.
   */
  facts?: unknown;
}

export interface NodeStoreOptions {
  client: Etcd3;
  keyspace: Keyspace;
  events: EventLog;
  clock: Clock;
  /** Leader-only writers pass the election; writes then fail once leadership is gone. */
  fence?: Fence;
  /** CAS attempts before giving up with ConflictError (default: settings.nodeCasAttempts). */
  maxAttempts?: number;
  /** Keys one read transaction of `getMany` holds: etcd's --max-txn-ops (default: settings.txnMaxOps). */
  maxOps?: number;
}

/** A record for a node seen for the first time (first contact, or a hello before the reconciler). */
export function newNodeRecord(id: string, now: string): NodeRecord {
  return {
    id, state: 'New', stateChangedAt: now, reachable: false, labels: {}, maintenance: false, connected: false,
    createdAt: now, updatedAt: now,
  };
}

export class NodeStore {
  private readonly client: Etcd3;
  private readonly keyspace: Keyspace;
  private readonly events: EventLog;
  private readonly clock: Clock;
  private readonly fence?: Fence;
  private readonly maxAttempts: number;
  private readonly maxOps: number;

  constructor(options: NodeStoreOptions) {
    this.client = options.client;
    this.keyspace = options.keyspace;
    this.events = options.events;
    this.clock = options.clock;
    this.fence = options.fence;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_SETTINGS.nodeCasAttempts;
    this.maxOps = options.maxOps ?? DEFAULT_SETTINGS.txnMaxOps;
  }

  get(id: string): Promise<VersionedNode | undefined> {
    return readRecord(this.client, this.keyspace.node(id), decodeNode);
  }

  /**
   * Several node records by id (absent and unreadable ones are missing from the map): one read per
   * `maxOps` keys instead of one per node, for a job's batch of thousands.
   */
  async getMany(ids: readonly string[]): Promise<Map<string, VersionedNode>> {
    const out = new Map<string, VersionedNode>();
    const kvs = await readKeysChunked(this.client, ids.map((id) => this.keyspace.node(id)), this.maxOps);
    kvs.forEach((kv, j) => {
      if (!kv) return;
      // An unreadable record is left out: the caller's own get() of it reports why.
      try { out.set(ids[j], { record: decodeNode(kv.key.toString(), kv.value.toString()), modRevision: kv.mod_revision }); } catch { /* see above */ }
    });
    return out;
  }

  /** All node records, read at one revision. Unreadable records are reported through `bad`. */
  async list(bad?: (key: string, err: unknown) => void): Promise<{ nodes: VersionedNode[]; revision: string }> {
    const snap = await readSnapshot(this.client, this.keyspace, ['nodes']);
    for (const { key, reason } of snap.skipped) bad?.(key, new Error(reason));
    const nodes: VersionedNode[] = [...snap.nodes.values()];
    const revision = snap.revision;
    return { nodes, revision };
  }

  /** Read-modify-write of one node as one fenced, evented transaction (see file comment). */
  async mutate(id: string, mutator: NodeMutator, options: MutateOptions = {}): Promise<MutationResult> {
    const key = this.keyspace.node(id); // validates the id
    let known: VersionedNode | null | undefined = options.known;
    return retryOnConflict(this.maxAttempts, async (): Promise<MutationResult | typeof CAS_LOST> => {
      const current = known === undefined ? await this.get(id) : known ?? undefined;
      known = undefined;
      const change = mutator(current?.record);
      if (!change) return { changed: false, node: current };
      const now = this.clock.iso();
      const from = current?.record.state;
      const to = change.next.state;
      if (from === undefined) {
        if (to !== 'New') throw new FailedPreconditionError(`node ${id} does not exist; a node enters the inventory as New, not ${to}`);
      } else if (from !== to) {
        checkTransition(id, from, to);
      }
      const next: NodeRecord = {
        ...change.next,
        id,
        updatedAt: now,
        ...(from !== to ? { stateChangedAt: now } : {}),
      };
      const cas: Compare = current
        ? { key, target: 'Mod', op: '==', value: current.modRevision, reason: 'cas' }
        : { key, target: 'Create', op: '==', value: '0', reason: 'cas' };
      const fence = this.fence?.fenceCompare(); // throws NotLeaderError when not leading
      const compares = [cas, ...(fence ? [fence] : []), ...(options.guards ?? [])];
      const transition = from !== undefined && from !== to ? { from, to } : {};
      const recordJson = JSON.stringify(next);
      const factsMoved = options.facts !== undefined && JSON.stringify(next.factsDigest ?? null) !== JSON.stringify(current?.record.factsDigest ?? null);
      const outcome = await this.events.commit({
        compares,
        ops: [{ kind: 'put', key, value: recordJson }, ...(options.ops ?? [])],
        event: { ...change.event, nodeId: id, ...transition },
        // Every change of the record is in its history, in this same transaction (event-log.ts).
        history: { nodeId: id, recordJson, ...(factsMoved ? { factsJson: JSON.stringify(options.facts) } : {}) },
      });
      if (outcome.succeeded) return { changed: true, node: { record: next, modRevision: outcome.revision }, seq: outcome.seq };
      if (fence && outcome.failed.includes(fence) && this.fence) throw this.fence.fenceFailed();
      const guardFailed = outcome.failed.filter((c) => c !== cas);
      if (guardFailed.length > 0) return { changed: false, node: current, guardFailed };
      // Lost the CAS: someone else changed the node; decide again on the fresh record.
      return CAS_LOST;
    }, () => new ConflictError(`node ${id} kept changing while being updated (${this.maxAttempts} attempts); retry`));
  }

  /** Moves a node to another lifecycle state (checked), with event `node.state`. */
  async transition(id: string, to: LifecycleState, message: string, actor?: string): Promise<MutationResult> {
    return this.mutate(id, (current) => {
      if (!current) throw new FailedPreconditionError(`node ${id} not found (list nodes with \`clusterctl nodes\`)`);
      if (current.state === to) return undefined;
      return { next: { ...current, state: to }, event: { type: 'node.state', message, ...(actor ? { actor } : {}) } };
    });
  }
}
