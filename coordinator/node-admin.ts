/**
 * ClusterService's operator writes on a node (maintenance flag, labels, delete), served by EVERY
 * replica. They go through a NodeStore WITHOUT the leader fence (an operator's flag is data
 * the leader acts on, like a job request), still one CAS transaction plus one event each.
 */
import { INPUT_LIMITS } from '../shared/input-limits';
import type { Etcd3 } from 'etcd3';
import {
  ConflictError, decodeNode, FailedPreconditionError, InvalidArgumentError, isValidSegment, NotFoundError, type Clock, type Keyspace, type Logger, type NodeRecord,
} from '../shared';
import type { EventLog } from './event-log';
import type { ClusterServiceHandlers } from '../generated/cluster/v1/ClusterService';
import type { Node } from '../generated/cluster/v1/Node';
import { readKeys } from './etcd-txn';
import { DEFAULT_SETTINGS } from './options';
import { newNodeRecord, type NodeStore } from './node-store';
import { describeExpected, parseIdentifier, PRE_REGISTERED_ID } from './pre-registration';

/** Pre-registrations accepted in one call (each is one transaction). */
const MAX_PRE_REGISTER = 256;
import { parseFacts, toNodeView } from './node-view';
import { unary } from './unary-handler';
import { actorOf, type AuthenticatedCall } from './caller';

export type NodeAdminHandlers = Pick<ClusterServiceHandlers, 'SetMaintenance' | 'SetLabels' | 'DeleteNode' | 'Discover' | 'DeletePreRegistered'>;

export interface NodeAdminOptions {
  client: Etcd3;
  keyspace: Keyspace;
  /** Unfenced node store: operator writes are accepted by any replica. */
  nodes: NodeStore;
  logger: Logger;
  /** Writes a delete and its event in one transaction. */
  events: EventLog;
  clock: Clock;
  /** How long a node must have been unreachable before `node delete` without --force (default 24 h). */
  deleteUnreachableMs?: number;
  /** etcd's --max-txn-ops (settings.txnMaxOps): DeletePreRegistered deletes in one transaction. @default 128 */
  txnMaxOps?: number;
}

/** Default of NodeAdminOptions.deleteUnreachableMs: a day, long past any reboot or network blip. */
export const NODE_DELETE_UNREACHABLE_MS = 24 * 60 * 60 * 1000;

/**
 * Why a node may not be deleted now, or undefined when it may. Pure, for tables:
 *  - never while its agent is alive (membership key present, or a stream open);
 *  - never while it runs a job;
 *  - without force: only Decommissioned, or unreachable for at least `unreachableMs`;
 *  - with force: any other state (a Failed node, a machine that will not come back soon).
 */
export function nodeDeleteProblem(
  n: Pick<NodeRecord, 'id' | 'state' | 'connected' | 'reachable' | 'unreachableSince' | 'currentJob'>,
  o: { live: boolean; force: boolean; nowMs: number; unreachableMs: number },
): string | undefined {
  if (o.live || n.connected) return `node ${n.id} has a live agent (${n.connected ? 'its stream is open' : 'it holds its membership'}); stop the agent, or decommission the node first`;
  if (n.currentJob) return `node ${n.id} is running job ${n.currentJob}; cancel it or wait for it`;
  if (o.force || n.state === 'Decommissioned') return undefined;
  const since = n.unreachableSince ? Date.parse(n.unreachableSince) : NaN;
  if (!n.reachable && Number.isFinite(since) && o.nowMs - since >= o.unreachableMs) return undefined;
  const hours = Math.round(o.unreachableMs / 36e5 * 10) / 10;
  return `node ${n.id} is ${n.state}${!n.reachable && n.unreachableSince ? `, unreachable since ${n.unreachableSince}` : ''}: ` +
    `only a Decommissioned node or one unreachable for ${hours} h is deleted; decommission it, or --force (any node without a live agent or a running job)`;
}

/** Same syntax as selector keys/values (shared/selector.ts): a label that cannot be selected is useless. */
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

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
  const given = Object.keys(set).length + remove.length;
  if (given > INPUT_LIMITS.labels) throw new InvalidArgumentError(`${given} label changes in one request; a node holds at most ${INPUT_LIMITS.labels} labels`);
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

export function createNodeAdminHandlers(options: NodeAdminOptions): NodeAdminHandlers {
  const { client, keyspace, nodes } = options;
  const log = options.logger.child({ component: 'node-admin' });

  /** The Node view of a record just written, with its facts summary. */
  async function view(id: string, record: NodeRecord, modRevision: string): Promise<Node> {
    const { kvs } = await readKeys(client, [keyspace.facts(id)]);
    return toNodeView(record, modRevision, parseFacts(kvs[0]?.value.toString()));
  }

  const setMaintenance = unary(async (req: { id: string; maintenance: boolean; reason: string }, call: AuthenticatedCall) => {
    const actor = actorOf(call);
    const id = nodeId(req.id, 'SetMaintenance');
    const reason = req.reason.trim();
    if (reason.length > INPUT_LIMITS.stringChars) throw new InvalidArgumentError(`the reason is ${reason.length} characters; the limit is ${INPUT_LIMITS.stringChars}`);
    const result = await nodes.mutate(id, (current) => {
      if (!current) throw notFound(id);
      if (current.maintenance === req.maintenance) return undefined; // already so: no write, no event
      const what = req.maintenance ? 'maintenance on' : 'maintenance off';
      return {
        next: { ...current, maintenance: req.maintenance, maintenanceReason: req.maintenance && reason ? reason : undefined },
        event: { type: 'node.maintenance', message: reason ? `${what}: ${reason}` : what, actor },
      };
    });
    const node = result.node;
    if (!node) throw notFound(id);
    if (result.changed) log.info('maintenance set', { nodeId: id, maintenance: req.maintenance, reason });
    return view(id, node.record, node.modRevision);
  });

  const setLabels = unary(async (req: { id: string; set: Record<string, string>; remove: string[] }, call: AuthenticatedCall) => {
    const actor = actorOf(call);
    const id = nodeId(req.id, 'SetLabels');
    checkLabelChange(req.set, req.remove);
    const result = await nodes.mutate(id, (current) => {
      if (!current) throw notFound(id);
      const labels = applyLabelChange(current.labels, req.set, req.remove);
      if (Object.keys(labels).length > INPUT_LIMITS.labels) throw new InvalidArgumentError(`node ${id} would have ${Object.keys(labels).length} labels; the limit is ${INPUT_LIMITS.labels}`);
      if (JSON.stringify(labels) === JSON.stringify(applyLabelChange(current.labels, {}, []))) return undefined;
      const parts = [...Object.entries(req.set).map(([k, v]) => `${k}=${v}`), ...req.remove.map((k) => `${k}-`)];
      return { next: { ...current, labels }, event: { type: 'node.labels', message: `labels ${parts.join(' ')}`, actor } };
    });
    const node = result.node;
    if (!node) throw notFound(id);
    return view(id, node.record, node.modRevision);
  });

  const deleteNode = unary(async (req: { id: string; force: boolean }, call: AuthenticatedCall) => {
    const actor = actorOf(call);
    const id = nodeId(req.id, 'DeleteNode');
    const { kvs } = await readKeys(client, [keyspace.node(id), keyspace.member(id)]);
    const [kv, member] = kvs;
    if (!kv) throw notFound(id);
    const record = decodeNode(keyspace.node(id), kv.value.toString());
    const problem = nodeDeleteProblem(record, {
      live: member !== undefined, force: req.force, nowMs: options.clock.now(), unreachableMs: options.deleteUnreachableMs ?? NODE_DELETE_UNREACHABLE_MS,
    });
    if (problem) throw new FailedPreconditionError(problem);
    const shown = await view(id, record, kv.mod_revision);
    const outcome = await options.events.commit({
      compares: [
        { key: keyspace.node(id), target: 'Mod', op: '==', value: kv.mod_revision, reason: 'cas' },
        // An agent that connects meanwhile holds its membership key: it is not deleted under it.
        { key: keyspace.member(id), target: 'Create', op: '==', value: '0', reason: 'live' },
      ],
      ops: [{ kind: 'delete', key: keyspace.node(id) }, { kind: 'delete', key: keyspace.facts(id) }],
      event: {
        type: 'node.deleted',
        message: `node ${id} deleted (${record.state}${record.group ? `, group ${record.group}` : ''}${req.force ? ', forced' : ''}); its certificate stays valid until \`clusterctl node revoke ${id}\``,
        actor,
      },
      // The last record, under node.deleted: `node describe --at` after this says the node was gone.
      history: { nodeId: id, recordJson: kv.value.toString() },
    });
    if (!outcome.succeeded) throw new ConflictError(`node ${id} changed while being deleted (its agent may have connected); check it and retry`);
    log.info('node deleted', { nodeId: id, state: record.state, force: req.force });
    return shown;
  });

  /** Pre-registration ids of `given` (node ids or the identifiers themselves), every bad one named at once. */
  function preRegisteredIds(given: readonly string[], rpc: string): string[] {
    const words = [...new Set(given.map((w) => w.trim()).filter(Boolean))];
    if (words.length === 0) throw new InvalidArgumentError(`${rpc} needs at least one IP address, serial number or MAC address`);
    if (words.length > MAX_PRE_REGISTER) throw new InvalidArgumentError(`${rpc}: at most ${MAX_PRE_REGISTER} at a time (got ${words.length})`);
    const problems: string[] = [];
    const ids: string[] = [];
    for (const w of words) {
      try {
        ids.push(PRE_REGISTERED_ID.test(w) && isValidSegment(w) ? w : parseIdentifier(w).id);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
    return [...new Set(ids)];
  }

  const discover = unary(async (req: { identifiers: string[]; labels: Record<string, string> }, call: AuthenticatedCall) => {
    const actor = actorOf(call);
    preRegisteredIds(req.identifiers, 'Discover'); // every bad identifier named before anything is written
    if (Object.keys(req.labels).length > 0) checkLabelChange(req.labels, []);
    const labels = applyLabelChange({}, req.labels, []);
    const out: Node[] = [];
    for (const e of [...new Map(req.identifiers.map((w) => parseIdentifier(w)).map((e) => [e.id, e])).values()]) {
      const result = await nodes.mutate(e.id, (current) => {
        if (current) {
          if (!current.expected) throw new FailedPreconditionError(`node ${e.id} exists and has an agent; it is not a pre-registration`);
          return undefined; // already pre-registered: unchanged
        }
        return {
          next: { ...newNodeRecord(e.id, options.clock.iso()), labels, expected: { kind: e.kind, value: e.value } },
          event: { type: 'node.pre-registered', message: `expected machine with ${describeExpected(e)} pre-registered${Object.keys(labels).length ? ` with labels ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')}` : ''}`, actor },
        };
      });
      const node = result.node;
      if (!node) throw notFound(e.id);
      out.push(await view(e.id, node.record, node.modRevision));
    }
    log.info('nodes pre-registered', { ids: out.map((n) => n.id) });
    return { nodes: out };
  });

  const deletePreRegistered = unary(async (req: { ids: string[] }, call: AuthenticatedCall) => {
    const actor = actorOf(call);
    const ids = preRegisteredIds(req.ids, 'DeletePreRegistered');
    // One transaction deletes them all or none: its deletes, the event and the event counter.
    const maxOps = options.txnMaxOps ?? DEFAULT_SETTINGS.txnMaxOps;
    const most = Math.max(1, maxOps - 2);
    if (ids.length > most) {
      throw new InvalidArgumentError(`DeletePreRegistered: at most ${most} at a time (got ${ids.length}): they are deleted in one etcd transaction, ` +
        `and etcd takes ${maxOps} operations in one (--etcd-max-txn-ops); delete them in parts`);
    }
    const found = await readKeys(client, ids.map((id) => keyspace.node(id)));
    const records = ids.map((id, i) => {
      const kv = found.kvs[i];
      if (!kv) throw new NotFoundError(`no pre-registered node ${id} (list them with \`clusterctl discover list\`)`);
      const record = decodeNode(keyspace.node(id), kv.value.toString());
      if (!record.expected) throw new FailedPreconditionError(`node ${id} is not a pre-registration (an agent's node is deleted with \`clusterctl node delete ${id}\`)`);
      return { record, modRevision: kv.mod_revision };
    });
    const shown = await Promise.all(records.map((r) => view(r.record.id, r.record, r.modRevision)));
    const outcome = await options.events.commit({
      compares: records.map((r) => ({ key: keyspace.node(r.record.id), target: 'Mod' as const, op: '==' as const, value: r.modRevision, reason: 'cas' })),
      ops: records.map((r) => ({ kind: 'delete' as const, key: keyspace.node(r.record.id) })),
      event: { type: 'node.pre-registration-deleted', message: `pre-registration${ids.length === 1 ? '' : 's'} ${ids.join(', ')} deleted`, actor },
    });
    if (!outcome.succeeded) throw new ConflictError('a pre-registration changed while being deleted (its agent may have joined); check with `clusterctl discover list` and retry');
    return { nodes: shown };
  });

  return { SetMaintenance: setMaintenance, SetLabels: setLabels, DeleteNode: deleteNode, Discover: discover, DeletePreRegistered: deletePreRegistered };
}
