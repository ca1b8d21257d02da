/**
 * The inventory reconciler (leader only), level-triggered (fleet's reconcile loop): read
 * members/, facts/ and nodes/ at one revision, compute the difference with the PURE
 * `planInventory`, run the actions. A pass runs at start, after watch events on members/ and
 * facts/ (coalesced: a burst of 1,000 joins is a handful of passes, not 1,000), and on a timer
 * to catch anything a watch missed. Because a pass only derives from what etcd holds, a
 * coordinator restart or failover changes no node's state; it re-derives reachability.
 *
 * Reachability has two signals (DESIGN.md "Reachability"): the membership lease (members/<id>)
 * and, for a node whose agent has attached a stream before, its stream to this leader
 * (AgentStreams.streamDownSince: closed, or cut by the gRPC keepalive, and not back within the
 * grace; after a leader change, not re-attached within the re-attach grace). Either one makes
 * the node Unreachable; the record names which (stream, lease or both).
 */
import type { Etcd3 } from 'etcd3';
import {
  describeFacts, describeFactsChange, errorMessage, factsDigest, NotLeaderError, ReconcileLoop, watchPrefixes, type Clock, type Facts, type FactsDigest, type Keyspace, type Logger, type MemberRecord, type NodeRecord, type PrefixWatch, type UnreachableSignal,
} from '../shared';
import type { AgentStreams } from './agent-streams';
import { readKeys, type Compare } from './etcd-txn';
import { parseFacts } from './node-view';
import { readSnapshot, type Snapshot } from './snapshot';
import { newNodeRecord, type NodeChange, type NodeStore, type VersionedNode } from './node-store';
import { adoptPreRegistrations, describeExpected, planPreRegistrationMatches, PRE_REGISTERED_ID, type Expected } from './pre-registration';
import { DEFAULT_SETTINGS } from './options';

// ---------------------------------------------------------------------------------------
// The pure part.
// ---------------------------------------------------------------------------------------

/** Member fields copied onto the node record. */
export const AGENT_FIELDS = ['agentVersion', 'bootId', 'hostname', 'address'] as const;
export type AgentField = (typeof AGENT_FIELDS)[number];

export type InventoryAction =
  /** First contact: a member key and no node record → New. */
  | { kind: 'create'; nodeId: string; member: MemberRecord }
  /** Facts present, state New → Discovered; `digest` (filled in by the loop, which reads the facts) is recorded with it. */
  | { kind: 'discover'; nodeId: string; digest?: FactsDigest }
  /** A signal fired (member key gone, stream gone past its grace) → reachable=false with since and signal; lifecycle untouched. */
  | { kind: 'unreachable'; nodeId: string; since: string; signal: UnreachableSignal }
  /** Member key back (and the stream, for a node that speaks one) → reachable=true, since and signal cleared; lifecycle untouched. */
  | { kind: 'reachable'; nodeId: string; member: MemberRecord }
  /** The agent's version / boot id / hostname / address changed. */
  | { kind: 'agent-changed'; nodeId: string; member: MemberRecord; fields: AgentField[] }
  /** Recorded as connected but this leader holds no stream for it and its stream signal fired (e.g. not re-attached after a failover). */
  | { kind: 'disconnected'; nodeId: string };

export interface InventoryInput {
  members: ReadonlyMap<string, MemberRecord>;
  factsPresent: ReadonlySet<string>;
  nodes: ReadonlyMap<string, NodeRecord>;
  /** Nodes with an open agent stream on this leader. */
  streams: ReadonlySet<string>;
  /** Nodes whose stream signal fired (AgentStreams.streamDownSince), with since when (RFC 3339). */
  streamDown: ReadonlyMap<string, string>;
  /** RFC 3339. */
  now: string;
}

/** The signal that makes a node Unreachable, or undefined when it is reachable. */
export function unreachableSignal(leaseUp: boolean, streamUp: boolean): UnreachableSignal | undefined {
  if (leaseUp && streamUp) return undefined;
  if (!leaseUp && !streamUp) return 'both';
  return leaseUp ? 'stream' : 'lease';
}

export function changedAgentFields(node: NodeRecord, member: MemberRecord): AgentField[] {
  // An empty member field (an older agent) is "unknown", not a change to empty.
  return AGENT_FIELDS.filter((f) => member[f] !== '' && (node[f] ?? '') !== member[f]);
}

/** Desired vs actual → actions, in node id order, a node's actions in the order to apply them. */
export function planInventory(input: InventoryInput): InventoryAction[] {
  const ids = [...new Set([...input.members.keys(), ...input.nodes.keys()])].sort();
  const actions: InventoryAction[] = [];
  for (const nodeId of ids) {
    const member = input.members.get(nodeId);
    const node = input.nodes.get(nodeId);
    if (!node) {
      if (!member) continue;
      actions.push({ kind: 'create', nodeId, member });
      if (input.factsPresent.has(nodeId)) actions.push({ kind: 'discover', nodeId });
      continue;
    }
    const streamSince = input.streamDown.get(nodeId);
    const signal = unreachableSignal(member !== undefined, streamSince === undefined);
    if (signal === undefined && member) {
      if (!node.reachable) actions.push({ kind: 'reachable', nodeId, member });
      else {
        const fields = changedAgentFields(node, member);
        if (fields.length > 0) actions.push({ kind: 'agent-changed', nodeId, member, fields });
      }
    } else if (signal !== undefined && (node.reachable || (node.unreachableSignal ?? 'lease') !== signal)) {
      // (A record without a signal was written when the lease was the only one.)
      // Newly unreachable: since the first signal fired. Already unreachable with another
      // signal (the lease ran out after the stream, or came back): the since stays.
      const since = node.reachable || !node.unreachableSince ? streamSince ?? input.now : node.unreachableSince;
      actions.push({ kind: 'unreachable', nodeId, since, signal });
    }
    if (node.state === 'New' && input.factsPresent.has(nodeId)) actions.push({ kind: 'discover', nodeId });
    // Left connected by an earlier leader: only once its stream signal fired (the re-attach grace
    // is over). Within the grace the agent's hello rewrites the record anyway; clearing it first
    // doubled a failover's writes, one per node, while the whole fleet re-attached.
    if (node.connected && !input.streams.has(nodeId) && (streamSince !== undefined || !node.connectedAt)) actions.push({ kind: 'disconnected', nodeId });
  }
  return actions;
}

const SIGNAL_WORDS: Readonly<Record<UnreachableSignal, string>> = {
  stream: 'agent stream closed',
  lease: 'membership lease expired',
  both: 'agent stream closed and membership lease expired',
};

function unreachableMessage(signal: UnreachableSignal, since: string, lastSeenAt: string | undefined): string {
  switch (signal) {
    case 'stream': return `agent stream closed at ${since} and not back within the grace`;
    case 'lease': return `membership key expired (agent silent since ${lastSeenAt ?? 'unknown'})`;
    case 'both': return `agent stream closed and membership key expired (since ${since})`;
  }
}

function agentInfo(member: MemberRecord): Partial<NodeRecord> {
  const out: Partial<NodeRecord> = {};
  for (const f of AGENT_FIELDS) if (member[f] !== '') out[f] = member[f];
  return out;
}

/**
 * A member record written by another agent instance than the one whose stream is open here is
 * the leftover of a previous agent (killed or restarted; its lease has not run out yet): the
 * live stream's hello is newer, and the live agent's own member put follows. Copying it would
 * put the old boot id back on the node after the hello recorded the new one.
 */
function staleMember(current: NodeRecord, member: MemberRecord, isStreamOpen: (id: string) => boolean): boolean {
  return isStreamOpen(current.id) && !!current.instanceId && !!member.instanceId && current.instanceId !== member.instanceId;
}

/**
 * The mutator for one action, re-deciding on the CURRENT record (a CAS retry sees fresh data,
 * so a stale plan is never replayed blindly). Pure as well.
 */
export function applyAction(action: InventoryAction, current: NodeRecord | undefined, now: string, isStreamOpen: (id: string) => boolean): NodeChange | undefined {
  const id = action.nodeId;
  switch (action.kind) {
    case 'create':
      if (current) return undefined;
      return {
        next: { ...newNodeRecord(id, now), ...agentInfo(action.member), instanceId: action.member.instanceId, reachable: true, lastSeenAt: now },
        event: { type: 'node.created', message: `first contact with agent on ${action.member.hostname || action.member.address || id}` },
      };
    case 'discover':
      if (current?.state !== 'New') return undefined;
      return {
        next: { ...current, state: 'Discovered', ...(action.digest ? { factsDigest: action.digest } : {}) },
        event: { type: 'node.discovered', message: action.digest ? `hardware facts reported: ${describeFacts(action.digest)}` : 'hardware facts reported' },
      };
    case 'unreachable': {
      if (!current || (!current.reachable && (current.unreachableSignal ?? 'lease') === action.signal)) return undefined;
      // The stream came back between the plan and this write: the plan is stale.
      if (action.signal !== 'lease' && isStreamOpen(id)) return undefined;
      const since = current.reachable || !current.unreachableSince ? action.since : current.unreachableSince;
      return {
        next: { ...current, reachable: false, unreachableSince: since, unreachableSignal: action.signal },
        event: current.reachable
          ? { type: 'node.unreachable', message: unreachableMessage(action.signal, action.since, current.lastSeenAt) }
          : { type: 'node.unreachable', message: `still unreachable (since ${since}); signal now: ${SIGNAL_WORDS[action.signal]}` },
      };
    }
    case 'reachable': {
      if (!current || current.reachable) return undefined;
      const { unreachableSince, unreachableSignal: _signal, ...rest } = current;
      const agent = staleMember(current, action.member, isStreamOpen) ? {} : { ...agentInfo(action.member), instanceId: action.member.instanceId };
      return {
        next: { ...rest, ...agent, reachable: true, lastSeenAt: now },
        event: { type: 'node.reachable', message: `membership key and agent stream back${unreachableSince ? ` (unreachable since ${unreachableSince})` : ''}` },
      };
    }
    case 'agent-changed': {
      if (!current || staleMember(current, action.member, isStreamOpen)) return undefined;
      const fields = changedAgentFields(current, action.member);
      if (fields.length === 0) return undefined;
      return {
        next: { ...current, ...agentInfo(action.member), instanceId: action.member.instanceId, lastSeenAt: now },
        event: { type: 'node.updated', message: fields.map((f) => `${f} ${current[f] ?? '(none)'} → ${action.member[f]}`).join(', ') },
      };
    }
    case 'disconnected':
      if (!current?.connected || isStreamOpen(id)) return undefined;
      return { next: { ...current, connected: false }, event: { type: 'node.disconnected', message: 'no agent stream open on the current leader' } };
  }
}

/**
 * The record with the facts digest the leader just read: the first one (a node discovered
 * before digests were kept) is recorded (node.facts-recorded), a different one is a node.facts-changed event naming the difference,
 * the same one (an agent re-sending its facts on a reconnect) is nothing.
 */
export function applyFactsDigest(current: NodeRecord | undefined, digest: FactsDigest): NodeChange | undefined {
  if (!current) return undefined;
  if (!current.factsDigest) {
    return { next: { ...current, factsDigest: digest }, event: { type: 'node.facts-recorded', message: describeFacts(digest) } };
  }
  const change = describeFactsChange(current.factsDigest, digest);
  if (!change) return undefined;
  return { next: { ...current, factsDigest: digest }, event: { type: 'node.facts-changed', message: change } };
}

/**
 * Whether a put to members/ can change a pass's outcome. An agent rewrites its member key after
 * every command that changed what it applied (the applied digest, which the inventory does not
 * read); at 10,000 nodes a fan-out is 10,000 such rewrites, each of which made a pass that read
 * every member, facts key and node record. A creation, an unreadable value or any other field
 * changed does matter.
 */
export function memberPutMatters(value: string, previous: string | undefined): boolean {
  if (previous === undefined) return true;
  let now: Record<string, unknown>;
  let before: Record<string, unknown>;
  try {
    now = JSON.parse(value) as Record<string, unknown>;
    before = JSON.parse(previous) as Record<string, unknown>;
  } catch {
    return true;
  }
  if (!now || !before || typeof now !== 'object' || typeof before !== 'object') return true;
  const keys = new Set([...Object.keys(now), ...Object.keys(before)]);
  keys.delete('appliedDigest');
  for (const k of keys) if (JSON.stringify(now[k]) !== JSON.stringify(before[k])) return true;
  return false;
}

/** Facts keys read per round trip when comparing digests (facts are a few KiB each). */
const FACTS_READ_BATCH = 64;

// ---------------------------------------------------------------------------------------
// The loop.
// ---------------------------------------------------------------------------------------

export interface InventoryReconcilerOptions {
  client: Etcd3;
  keyspace: Keyspace;
  nodes: NodeStore;
  /** Which nodes have a stream open here, and this leader's stream signal (AgentStreams). */
  streams: Pick<AgentStreams, 'isConnected' | 'connectedIds' | 'streamDownSince' | 'setUnreachable'>;
  /** A stream that ended counts after this long without a new one (settings.streamGraceMs). */
  streamGraceMs: number;
  /** After a leader change, how long agents have to re-attach before their streams count (settings.reattachGraceMs). */
  reattachGraceMs: number;
  isLeader: () => boolean;
  clock: Clock;
  logger: Logger;
  /** Timer pass period (default 30 s). */
  resyncIntervalMs?: number;
  /** Gathers a burst of watch events into one pass. @default DEFAULT_DEBOUNCE_MS */
  debounceMs?: number;
  /** Nodes worked on at once within a pass (default 16). */
  concurrency?: number;
  /** Keys one read transaction holds: etcd's --max-txn-ops. @default settings.txnMaxOps */
  maxOps?: number;
}

export interface PassResult {
  actions: InventoryAction[];
  applied: number;
  failed: number;
}

export class InventoryReconciler {
  private readonly opts: Required<Pick<InventoryReconcilerOptions, 'concurrency'>> & InventoryReconcilerOptions;
  private readonly log: Logger;
  private readonly loop: ReconcileLoop;
  private watch?: PrefixWatch;
  /** Resolves once the first pass after start() finished. */
  private firstPass?: Promise<unknown>;
  /**
   * The facts key revision whose digest this leader has compared with the node record: only a
   * facts key written since is read again. Empty after a leader change, so the new leader
   * compares every node's facts once.
   */
  private readonly factsSeen = new Map<string, string>();

  constructor(options: InventoryReconcilerOptions) {
    this.opts = { concurrency: 16, ...options };
    this.log = options.logger.child({ component: 'inventory-reconciler' });
    this.loop = new ReconcileLoop({
      name: 'inventory', clock: options.clock, logger: this.log, intervalMs: options.resyncIntervalMs, debounceMs: options.debounceMs,
      when: options.isLeader,
      pass: async () => { await this.pass(); },
    });
  }

  /** Starts watching and runs a first pass (the leader calls this on gaining leadership). */
  start(): void {
    if (this.loop.started) return;
    this.firstPass = this.loop.start();
    const { client, keyspace } = this.opts;
    this.watch = watchPrefixes(client, [keyspace.membersPrefix(), keyspace.factsPrefix(), keyspace.nodesPrefix()], () => this.loop.trigger(), this.log, {
      // Of the node records only pre-registrations (`clusterctl discover`): one made after its
      // agent joined is matched at once. The other node writes are this loop's own or jobs'.
      keyFilter: (key) => !key.startsWith(keyspace.nodesPrefix()) || PRE_REGISTERED_ID.test(keyspace.parseNode(key) ?? ''),
      putFilter: (key, value, previous) => !key.startsWith(keyspace.membersPrefix()) || memberPutMatters(value.toString(), previous?.toString()),
    });
  }

  async stop(): Promise<void> {
    const w = this.watch;
    this.watch = undefined;
    await w?.stop();
    await this.loop.stop();
  }

  /** Waits for the first pass after start() (tests, startup logs). */
  async ready(): Promise<void> {
    await this.firstPass;
  }

  /** Asks for a pass soon; bursts collapse into one. */
  schedule(): void {
    this.loop.trigger();
  }

  /** Passes completed (tests). */
  get passes(): number {
    return this.loop.completedPasses;
  }

  /** One pass, outside the loop's single flight (tests). Leadership is checked first and fences every write. */
  async runOnce(): Promise<PassResult | undefined> {
    if (!this.opts.isLeader()) return undefined;
    return this.pass();
  }

  /**
   * Agents whose facts match a pre-registration take it (coordinator/pre-registration.ts): one
   * transaction per agent puts its record with the labels carried over and deletes the
   * pre-registered records, each compared on its revision. Facts are read only when there is a
   * pre-registration to match.
   */
  private async matchPreRegistrations(): Promise<number> {
    const { client, keyspace, nodes } = this.opts;
    const withFacts = await readSnapshot(client, keyspace, ['nodes', 'facts'], this.log);
    const records = [...withFacts.nodes.values()].map((n) => n.record);
    const { matches, ambiguous } = planPreRegistrationMatches(records, withFacts.facts);
    for (const a of ambiguous) this.log.warn('pre-registration matches several nodes; left alone', { preRegistration: a.expectedId, nodes: a.nodeIds });
    let applied = 0;
    for (const m of matches) {
      const taken = m.expectedIds.map((id) => withFacts.nodes.get(id)).filter((v): v is VersionedNode => v !== undefined);
      const res = await nodes.mutate(m.nodeId, (cur) => (!cur ? undefined : {
        next: adoptPreRegistrations(cur, taken.map((t) => t.record)),
        event: { type: 'node.matched', message: `agent matches pre-registered ${taken.map((t) => `${t.record.id} (${describeExpected(t.record.expected as Expected)})`).join(', ')}; labels carried over` },
      }), {
        guards: taken.map((t): Compare => ({ key: keyspace.node(t.record.id), target: 'Mod', op: '==', value: t.modRevision, reason: 'pre-registration' })),
        ops: taken.map((t) => ({ kind: 'delete' as const, key: keyspace.node(t.record.id) })),
      });
      if (res.changed) applied++;
    }
    return applied;
  }

  private async pass(): Promise<PassResult> {
    const { result, preRegistered, snap } = await this.inventoryPass();
    try {
      result.applied += await this.compareFacts(snap);
    } catch (err) {
      if (err instanceof NotLeaderError) return result;
      result.failed++;
      this.log.warn('facts comparison failed', { err: errorMessage(err) });
    }
    if (!preRegistered) return result;
    try {
      result.applied += await this.matchPreRegistrations();
    } catch (err) {
      if (err instanceof NotLeaderError) return result;
      result.failed++;
      this.log.warn('pre-registration match failed', { err: errorMessage(err) });
    }
    return result;
  }

  /** The inventory actions; `preRegistered`: whether the snapshot held a pre-registration to match. */
  private async inventoryPass(): Promise<{ result: PassResult; preRegistered: boolean; snap: Snapshot }> {
    const snap = await readSnapshot(this.opts.client, this.opts.keyspace, ['members', 'factKeys', 'nodes'], this.log);
    const preRegistered = [...snap.nodes.values()].some((n) => n.record.expected);
    return { result: await this.applyInventory(snap), preRegistered, snap };
  }

  /**
   * Nodes whose facts key was written since this leader last compared it: their facts are
   * read and their digest compared with the record's (applyFactsDigest). A node without a
   * record yet is compared on a later pass.
   */
  private async compareFacts(snap: Snapshot): Promise<number> {
    const { nodes } = this.opts;
    for (const id of [...this.factsSeen.keys()]) if (!snap.factsRevisions.has(id)) this.factsSeen.delete(id);
    const due = [...snap.factsRevisions].filter(([id, rev]) => this.factsSeen.get(id) !== rev && snap.nodes.has(id)).map(([id]) => id);
    let applied = 0;
    const read = await this.readFacts(due);
    for (const [id, { facts, modRevision }] of read) {
      const res = await nodes.mutate(id, (cur) => applyFactsDigest(cur, factsDigest(facts)), { facts });
      if (res.changed) applied++;
      if (res.node) this.factsSeen.set(id, modRevision);
    }
    // Unreadable facts (the snapshot logs them) stay so until rewritten: not read again every pass.
    for (const id of due) if (!read.has(id)) this.factsSeen.set(id, snap.factsRevisions.get(id) ?? '');
    return applied;
  }

  /** The readable facts of these nodes, with their keys' revisions, read in batches. */
  private async readFacts(ids: readonly string[]): Promise<Map<string, { facts: Partial<Facts>; modRevision: string }>> {
    const { client, keyspace } = this.opts;
    const out = new Map<string, { facts: Partial<Facts>; modRevision: string }>();
    // At most etcd's --max-txn-ops ranges in one read.
    const perRead = Math.min(FACTS_READ_BATCH, this.opts.maxOps ?? DEFAULT_SETTINGS.txnMaxOps);
    for (let i = 0; i < ids.length; i += perRead) {
      const batch = ids.slice(i, i + perRead);
      const { kvs } = await readKeys(client, batch.map((id) => keyspace.facts(id)));
      for (const [j, id] of batch.entries()) {
        const kv = kvs[j];
        const facts = parseFacts(kv?.value.toString());
        if (kv && facts) out.set(id, { facts, modRevision: kv.mod_revision });
      }
    }
    return out;
  }

  private async applyInventory(snap: Snapshot): Promise<PassResult> {
    const { nodes, clock, streams } = this.opts;
    const members = new Map([...snap.members].map(([id, m]) => [id, m.record]));
    const known: Map<string, VersionedNode> = snap.nodes;
    const now = clock.iso();
    const records = new Map([...known].map(([id, v]) => [id, v.record]));
    const streamDown = new Map<string, string>();
    for (const [id, record] of records) {
      // Only an agent that has attached a stream before speaks one: a member key alone is not a stream gone.
      if (!record.connectedAt) continue;
      const since = streams.streamDownSince(id, this.opts.streamGraceMs, this.opts.reattachGraceMs);
      if (since !== undefined) streamDown.set(id, new Date(since).toISOString());
    }
    // What this leader believes, for the job runner: written or not, a node found Unreachable is not sent commands.
    for (const [id, record] of records) {
      const signal = unreachableSignal(members.has(id), !streamDown.has(id));
      streams.setUnreachable(id, signal === undefined ? undefined : `${SIGNAL_WORDS[signal]}, unreachable since ${
        record.reachable ? streamDown.get(id) ?? now : record.unreachableSince ?? now}`);
    }
    const planned = planInventory({ members, factsPresent: snap.factsPresent, nodes: records, streams: new Set(streams.connectedIds()), streamDown, now });
    if (planned.length === 0) return { actions: planned, applied: 0, failed: 0 };
    // A node discovered records its first facts digest in the same write and event.
    const discovered = await this.readFacts(planned.filter((a) => a.kind === 'discover').map((a) => a.nodeId));
    const actions = planned.map((a): InventoryAction => {
      const facts = a.kind === 'discover' ? discovered.get(a.nodeId)?.facts : undefined;
      return facts ? { ...a, kind: 'discover', digest: factsDigest(facts) } : a;
    });

    // A node's actions run in order (create before discover); nodes run side by side.
    const byNode = new Map<string, InventoryAction[]>();
    for (const a of actions) byNode.set(a.nodeId, [...(byNode.get(a.nodeId) ?? []), a]);
    let applied = 0;
    let failed = 0;
    let notLeader: NotLeaderError | undefined;
    const queue = [...byNode.entries()];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next && !notLeader; next = queue.shift()) {
        const [nodeId, list] = next;
        let first: VersionedNode | null | undefined = known.get(nodeId) ?? null;
        for (const action of list) {
          try {
            const facts = action.kind === 'discover' ? discovered.get(nodeId)?.facts : undefined;
            const res = await nodes.mutate(nodeId, (current) => applyAction(action, current, clock.iso(), (id) => streams.isConnected(id)), {
              known: first,
              guards: this.guardsFor(action, snap.members.get(nodeId)?.modRevision),
              ...(facts ? { facts } : {}),
            });
            first = res.node ?? undefined;
            if (res.changed) applied++;
            else if (res.guardFailed) {
              // Membership moved since the read: another pass decides again (the move itself may be
              // one the watch passes over, an applied digest rewritten).
              this.log.debug('action skipped: membership changed meanwhile', { nodeId, action: action.kind });
              this.loop.trigger();
              break;
            }
          } catch (err) {
            if (err instanceof NotLeaderError) {
              notLeader = err;
              return;
            }
            failed++;
            this.log.warn('inventory action failed', { nodeId, action: action.kind, err: errorMessage(err) });
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, byNode.size) }, worker));
    if (notLeader) {
      this.log.warn('inventory pass stopped: not the leader', { err: notLeader.message });
    } else {
      this.log.debug('inventory pass', { actions: actions.length, applied, failed });
    }
    return { actions, applied, failed };
  }

  /**
   * The membership fact an action was derived from must still hold when it is written:
   * "unreachable" needs the member key still absent; the others need it unchanged.
   */
  private guardsFor(action: InventoryAction, memberRevision: string | undefined): Compare[] {
    const key = this.opts.keyspace.member(action.nodeId);
    switch (action.kind) {
      case 'unreachable':
        // Stream alone: the member key is there and may be renewed meanwhile; the mutator re-checks the stream.
        return action.signal === 'stream' ? [] : [{ key, target: 'Create', op: '==', value: '0', reason: 'member-absent' }];
      case 'create':
      case 'reachable':
      case 'agent-changed':
        return memberRevision ? [{ key, target: 'Mod', op: '==', value: memberRevision, reason: 'member-unchanged' }] : [];
      case 'discover':
      case 'disconnected':
        return [];
    }
  }
}
