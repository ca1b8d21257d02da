/**
 * The leader's open agent streams, by node id: the one place other parts (the job runner)
 * send commands through and hear progress, results and drift from. One stream per node: a
 * newer connection of the same node replaces (and closes) the older one, which is then a
 * zombie from a reconnect the agent already gave up on (agent-service.ts lets a newer stream
 * in only when it presents the same certificate as the live one).
 *
 * It also keeps this leader's side of reachability (DESIGN.md "Reachability"): when each
 * node's stream ended in this term, when the term began (agents get a re-attach grace after a
 * leader change), and which nodes the inventory reconciler found Unreachable, so the job
 * runner neither sends to them nor waits a connect timeout for them.
 */
import { EventEmitter } from 'node:events';
import { systemClock, UnavailableError, type Clock, type ClusterError } from '../shared';
import type { CoordinatorMessage } from '../generated/cluster/v1/CoordinatorMessage';
import type { CommandProgress__Output } from '../generated/cluster/v1/CommandProgress';
import type { CommandResult__Output } from '../generated/cluster/v1/CommandResult';
import type { DriftReport__Output } from '../generated/cluster/v1/DriftReport';
import type { FactsRefreshed__Output } from '../generated/cluster/v1/FactsRefreshed';

/** One agent's stream as the registry sees it (agent-service.ts implements it over gRPC). */
export interface AgentStream {
  readonly nodeId: string;
  readonly instanceId: string;
  readonly bootId: string;
  /** RFC 3339 time of the hello. */
  readonly connectedAt: string;
  /** The client certificate the stream was opened with (serial: revocation; fingerprint: takeover). */
  readonly certificate?: { readonly serial: string; readonly fingerprint: string };
  /** Queues a message; false when the stream is closed. */
  send(message: CoordinatorMessage): boolean;
  /** Ends the stream with `error` as its status (OK when omitted). */
  close(error?: ClusterError): void;
}

export interface AgentStreamsEvents {
  connected: [stream: AgentStream];
  disconnected: [stream: AgentStream];
  progress: [nodeId: string, progress: CommandProgress__Output];
  result: [nodeId: string, result: CommandResult__Output];
  drift: [nodeId: string, drift: DriftReport__Output];
  /** The agent's answer to a RefreshFacts (coordinator/facts-refresh.ts). */
  factsRefreshed: [nodeId: string, reply: FactsRefreshed__Output];
  /** The inventory reconciler found the node Unreachable (with no stream open here). */
  unreachable: [nodeId: string, reason: string];
}

export class AgentStreams extends EventEmitter<AgentStreamsEvents> {
  private readonly streams = new Map<string, AgentStream>();
  /** When each node's last stream ended in this term (clock ms). */
  private readonly endedAt = new Map<string, number>();
  /** Nodes found Unreachable by the inventory reconciler, with why. */
  private readonly unreachable = new Map<string, string>();
  /** When this leader's term began (clock ms); undefined while not leading. */
  private termStartedAt?: number;

  constructor(private readonly clock: Clock = systemClock) {
    super();
  }

  /** A new term (leadership gained): stream history and Unreachable marks of an earlier term do not count. */
  beginTerm(): void {
    this.termStartedAt = this.clock.now();
    this.endedAt.clear();
    this.unreachable.clear();
  }

  /**
   * Since when (clock ms) the stream signal says node `nodeId` is gone, or undefined while it
   * does not: a stream open here is up; one that ended counts `graceMs` after its end (an agent
   * that redials at once never shows); a node with no stream yet in this term counts
   * `reattachGraceMs` after the term began (its agent is re-attaching to the new leader).
   */
  streamDownSince(nodeId: string, graceMs: number, reattachGraceMs: number): number | undefined {
    if (this.streams.has(nodeId) || this.termStartedAt === undefined) return undefined;
    const now = this.clock.now();
    const ended = this.endedAt.get(nodeId);
    if (ended !== undefined) return now >= ended + graceMs ? ended : undefined;
    return now >= this.termStartedAt + reattachGraceMs ? this.termStartedAt : undefined;
  }

  /**
   * How long until the stream signal of `nodeId` can fire (ms, >= 0): what is left of `graceMs`
   * since its last stream ended (all of it when none has). A stream dropped for silence ended
   * when the silence began, so little or nothing is left.
   */
  graceLeft(nodeId: string, graceMs: number): number {
    const ended = this.endedAt.get(nodeId);
    if (ended === undefined) return graceMs;
    return Math.max(0, ended + graceMs - this.clock.now());
  }

  /**
   * Records what the inventory reconciler found: `reason` set = Unreachable. A node newly
   * found Unreachable is announced ('unreachable'), so a command waiting on it fails at once.
   */
  setUnreachable(nodeId: string, reason: string | undefined): void {
    if (reason === undefined) {
      this.unreachable.delete(nodeId);
      return;
    }
    const was = this.unreachable.get(nodeId);
    this.unreachable.set(nodeId, reason);
    if (was === undefined && !this.streams.has(nodeId)) this.emit('unreachable', nodeId, reason);
  }

  /**
   * Why the node is Unreachable, or undefined when it is not (or its stream is open here: a
   * stream that works can carry a command, whatever the lease says).
   */
  unreachableReason(nodeId: string): string | undefined {
    if (this.streams.has(nodeId)) return undefined;
    return this.unreachable.get(nodeId);
  }

  /** Whether the reconciler's last word on the node was Unreachable (a new stream then asks for a pass). */
  markedUnreachable(nodeId: string): boolean {
    return this.unreachable.has(nodeId);
  }

  /** Adds `stream`; an older stream of the same node is closed and returned. */
  register(stream: AgentStream): AgentStream | undefined {
    const previous = this.streams.get(stream.nodeId);
    this.streams.set(stream.nodeId, stream);
    if (previous && previous !== stream) {
      previous.close(new UnavailableError(`replaced by a newer connection of node ${stream.nodeId}`));
      this.emit('disconnected', previous);
    }
    this.emit('connected', stream);
    return previous;
  }

  /**
   * Removes `stream` if it is still the node's current one; true when it was. `silentSince`
   * (clock ms): the stream's connection was dropped because its peer had been silent since
   * then (the keepalive), so the stream counts as ended from then and its grace runs from then.
   */
  unregister(stream: AgentStream, silentSince?: number): boolean {
    if (this.streams.get(stream.nodeId) !== stream) return false;
    this.streams.delete(stream.nodeId);
    const now = this.clock.now();
    this.endedAt.set(stream.nodeId, silentSince !== undefined ? Math.min(now, silentSince) : now);
    this.emit('disconnected', stream);
    return true;
  }

  get(nodeId: string): AgentStream | undefined {
    return this.streams.get(nodeId);
  }

  isConnected(nodeId: string): boolean {
    return this.streams.has(nodeId);
  }

  /** Whether `stream` is the node's current stream (not replaced, not closed). */
  isCurrent(stream: AgentStream): boolean {
    return this.streams.get(stream.nodeId) === stream;
  }

  connectedIds(): string[] {
    return [...this.streams.keys()];
  }

  get size(): number {
    return this.streams.size;
  }

  /** Sends to a node's stream; UnavailableError when the node has no open stream here. */
  send(nodeId: string, message: CoordinatorMessage): void {
    const stream = this.streams.get(nodeId);
    if (!stream || !stream.send(message)) {
      throw new UnavailableError(`node ${nodeId} is not connected to this coordinator (its agent will reconnect; check \`clusterctl nodes\`)`);
    }
  }

  /** Closes the stream opened with certificate `serial` (revoked); returns its node id, if any. */
  closeCertificate(serial: string, error: ClusterError): string | undefined {
    for (const s of this.streams.values()) {
      if (s.certificate?.serial !== serial) continue;
      // close() ends the call; the stream's own end handler unregisters it and records the disconnect.
      s.close(error);
      if (this.streams.get(s.nodeId) === s) this.unregister(s);
      return s.nodeId;
    }
    return undefined;
  }

  /** Closes every stream (leadership lost, shutdown) with `error` as status. */
  closeAll(error?: ClusterError): void {
    const all = [...this.streams.values()];
    this.streams.clear();
    this.termStartedAt = undefined;
    this.endedAt.clear();
    this.unreachable.clear();
    for (const s of all) {
      s.close(error);
      this.emit('disconnected', s);
    }
  }
}
