/**
 * AgentService.Connect: the agent's one long-lived stream to the leader.
 *
 *   agent → Hello (first, always)      coordinator → Welcome, then Ping every N s
 *   agent → Pong / progress / result / drift
 *
 * Followers refuse with FAILED_PRECONDITION "not the leader; the leader is <address>" so an
 * agent that dialled a stale address redials the right one. The hello is recorded in
 * nodes/<id> (one fenced transaction with event node.hello); the stream end records
 * connected=false, unless a newer stream of the same node has taken over meanwhile.
 *
 * Who may speak for a node: the server interceptor lets only agent certificates of the cluster
 * CA open this stream; here the hello's node id must equal the certificate's name, and a second
 * stream for a node whose stream is alive must present the same certificate (fingerprint) to
 * replace it. So nobody can forge a hello, a drift report or a result for another node, nor
 * kick a live agent off its stream.
 */
import { INPUT_LIMITS } from '../shared/input-limits';
import { ResourceExhaustedError } from '../shared/errors';
import { MessageRate } from './message-rate';
import type * as grpc from '@grpc/grpc-js';
import {
  errorMessage, InvalidArgumentError, isValidSegment, NotLeaderError, toGrpcStatus, UnavailableError, DeadlineExceededError,
  type ClusterError, type Clock, type Logger, type NodeRecord,
} from '../shared';
import type { AgentServiceHandlers } from '../generated/cluster/v1/AgentService';
import type { AgentMessage__Output } from '../generated/cluster/v1/AgentMessage';
import type { CoordinatorMessage } from '../generated/cluster/v1/CoordinatorMessage';
import type { Hello__Output } from '../generated/cluster/v1/Hello';
import type { AgentStream, AgentStreams } from './agent-streams';
import { peerIdentity, PermissionDeniedError, type PeerIdentity } from '../shared/pki';
import { newNodeRecord, type NodeStore } from './node-store';

export interface Leadership {
  isLeader(): boolean;
  notLeaderError(): NotLeaderError;
}

export interface AgentServiceOptions {
  replicaId: string;
  leadership: Leadership;
  nodes: NodeStore;
  streams: AgentStreams;
  clock: Clock;
  logger: Logger;
  /** How often the leader pings each agent (the agent gives up after three missed pings). */
  pingIntervalMs: number;
  /** How long a new stream may stay silent before its Hello (settings.helloTimeoutMs: 3 pings). */
  helloTimeoutMs: number;
  /**
   * Since when (clock ms) the peer `HOST:PORT` was silent, when its connection was dropped for
   * that, by the kernel's TCP liveness or the HTTP/2 PING (GrpcServer.keepalive.silentSince):
   * its stream then counts as gone from then, without the stream grace.
   */
  silentSince?: (peer: string) => number | undefined;
}

type Call = grpc.ServerDuplexStream<AgentMessage__Output, CoordinatorMessage>;

/** One open Connect call, once its Hello was accepted. */
class GrpcAgentStream implements AgentStream {
  private closed = false;
  private welcomed = false;
  private readonly held: CoordinatorMessage[] = [];
  constructor(
    private readonly call: Call,
    readonly nodeId: string,
    readonly instanceId: string,
    readonly bootId: string,
    readonly connectedAt: string,
    readonly certificate: { readonly serial: string; readonly fingerprint: string },
  ) {}

  get isClosed(): boolean {
    return this.closed || this.call.cancelled || this.call.destroyed;
  }

  send(message: CoordinatorMessage): boolean {
    if (this.isClosed) return false;
    // The stream is registered (and announced as `connected`) before its Welcome is written;
    // an agent drops a stream whose first message is not Welcome, so hold anything else
    // (e.g. a job's command) until the Welcome went out.
    if (message.welcome) {
      this.call.write(message);
      this.welcomed = true;
      for (const m of this.held.splice(0)) this.call.write(m);
      return true;
    }
    if (!this.welcomed) {
      this.held.push(message);
      return true;
    }
    this.call.write(message);
    return true;
  }

  close(error?: ClusterError): void {
    if (this.closed) return;
    this.closed = true;
    endCall(this.call, error);
  }
}

function endCall(call: Call, error?: unknown): void {
  if (call.cancelled || call.destroyed || call.writableEnded) return;
  if (error) call.emit('error', toGrpcStatus(error));
  else call.end();
}

function checkHello(message: AgentMessage__Output): Hello__Output {
  const hello = message.body === 'hello' ? message.hello : undefined;
  if (!hello) throw new InvalidArgumentError(`the first message on AgentService.Connect must be a Hello, got ${message.body ?? 'an empty message'}`);
  if (!isValidSegment(hello.nodeId)) {
    throw new InvalidArgumentError(
      `hello has an invalid node id ${JSON.stringify(hello.nodeId)}: use 1-253 characters from A-Z a-z 0-9 . _ : - starting with a letter or digit (agent --node-id)`,
    );
  }
  return hello;
}

export function createAgentServiceHandlers(options: AgentServiceOptions): AgentServiceHandlers {
  const { leadership, nodes, streams, clock, pingIntervalMs, helloTimeoutMs } = options;
  const log = options.logger.child({ component: 'agent-service' });

  /**
   * Records the hello in ONE transaction (creating the node as New when the reconciler has not
   * yet). `abandoned()` is asked inside the compare-and-swap: hellos queue behind the event log
   * when thousands of agents attach at once, and one whose stream already ended must cost
   * nothing (bench/fanout.ts: at 5,000 agents recording abandoned hellos starved the live ones).
   */
  async function recordHello(hello: Hello__Output, connectedAt: string, abandoned: () => boolean): Promise<void> {
    const id = hello.nodeId;
    await nodes.mutate(id, (current) => {
      if (abandoned()) return undefined;
      const base: NodeRecord = current ?? { ...newNodeRecord(id, connectedAt), hostname: hello.hostname };
      const next: NodeRecord = {
        ...base,
        agentVersion: hello.agentVersion,
        bootId: hello.bootId,
        instanceId: hello.instanceId,
        ...(hello.hostname ? { hostname: hello.hostname } : {}),
        ...(hello.appliedDigest ? { appliedDigest: hello.appliedDigest } : {}),
        connected: true,
        connectedAt,
        lastSeenAt: connectedAt,
      };
      if (!current) {
        return { next, event: { type: 'node.created', message: `node ${id} first seen through its agent's hello (agent ${hello.agentVersion || 'of unknown version'})`, actor: `node:${id}` } };
      }
      return {
        next,
        event: {
          type: 'node.hello',
          message: `agent ${hello.agentVersion || '(unknown version)'} connected` +
            (current.bootId && hello.bootId && current.bootId !== hello.bootId ? ' after a reboot (new boot id)' : ''),
          actor: `node:${id}`,
        },
      };
    });
  }

  /** Records the stream's end, unless a newer stream of the node took over. */
  async function recordGone(stream: AgentStream, why: string): Promise<void> {
    if (!leadership.isLeader()) return; // the next leader re-derives connections
    await nodes.mutate(stream.nodeId, (current) => {
      if (!current?.connected || current.connectedAt !== stream.connectedAt || streams.isConnected(stream.nodeId)) return undefined;
      return {
        next: { ...current, connected: false, lastSeenAt: clock.iso() },
        event: { type: 'node.disconnected', message: `agent stream closed: ${why}`, actor: `node:${stream.nodeId}` },
      };
    });
  }

  /** The caller's certificate must name the hello's node, and may not take over another certificate's live stream. */
  function checkPeer(c: Call, hello: Hello__Output): PeerIdentity {
    const peer = peerIdentity(c);
    if (peer.role !== 'agent') throw new PermissionDeniedError(`permission denied: Connect needs an agent certificate; you are ${peer.name} (${peer.role})`);
    if (peer.name !== hello.nodeId) {
      log.warn('refused an agent stream: the hello names another node than the certificate', { certificateNodeId: peer.name, helloNodeId: hello.nodeId, serial: peer.serial });
      throw new PermissionDeniedError(`permission denied: this certificate is for node ${peer.name}, not ${hello.nodeId}`);
    }
    const live = streams.get(hello.nodeId);
    if (live?.certificate && live.certificate.fingerprint !== peer.fingerprint) {
      log.warn('refused a second agent stream: another certificate holds the live stream', { nodeId: hello.nodeId, serial: peer.serial, liveSerial: live.certificate.serial });
      throw new PermissionDeniedError(`permission denied: node ${hello.nodeId} is connected with another certificate (serial ${live.certificate.serial}); a stream with a different certificate cannot replace it`);
    }
    return peer;
  }

  function connect(call: Call): void {
    if (!leadership.isLeader()) {
      endCall(call, leadership.notLeaderError());
      return;
    }
    let stream: GrpcAgentStream | undefined;
    // Read now: once the connection is gone the call no longer knows its peer.
    const peerAddress = call.getPeer();
    let pingTimer: NodeJS.Timeout | undefined;
    let pingSeq = 0;
    let lastPongAt = clock.now();
    let finished = false;
    let helloSeen = false;
    /** Settles once the hello is recorded (or failed): a DriftReport needs the node record to exist. */
    let helloRecorded: Promise<void> = Promise.resolve();
    const rate = new MessageRate(INPUT_LIMITS.agentMessagesPerSecond, clock.now());
    const helloTimer = setTimeout(() => {
      finish(new DeadlineExceededError(`no Hello within ${helloTimeoutMs} ms of opening the stream`));
    }, helloTimeoutMs);

    const finish = (error: ClusterError | undefined, why = error?.message ?? 'closed'): void => {
      if (finished) return;
      finished = true;
      clearTimeout(helloTimer);
      clearInterval(pingTimer);
      if (stream) {
        const s = stream;
        s.close(error);
        const silentSince = options.silentSince?.(peerAddress);
        if (silentSince !== undefined) why = `${why} (connection dropped: silent since ${new Date(silentSince).toISOString()})`;
        if (streams.unregister(s, silentSince)) {
          log.info('agent disconnected', { nodeId: s.nodeId, why });
          recordGone(s, why).catch((err: unknown) => log.warn('could not record disconnect', { nodeId: s.nodeId, err: errorMessage(err) }));
        }
      } else {
        endCall(call, error);
      }
    };

    const onHello = async (hello: Hello__Output, peer: PeerIdentity): Promise<void> => {
      const connectedAt = clock.iso();
      const s = new GrpcAgentStream(call, hello.nodeId, hello.instanceId, hello.bootId, connectedAt, { serial: peer.serial, fingerprint: peer.fingerprint });
      stream = s;
      // Register before writing connected=true, so a concurrent "nobody is connected" pass of
      // the reconciler sees this stream and leaves the flag alone.
      streams.register(s);
      // Welcome at once and record in the background: the agent is attached as soon as its
      // stream is registered here, and its attach time must not queue behind etcd writes when
      // a whole fleet re-attaches after a failover. A hello that cannot be recorded (not the
      // leader any more, etcd down) still closes the stream, and the agent redials.
      s.send({ welcome: { coordinatorId: options.replicaId, pingIntervalMs } });
      log.info('agent connected', { nodeId: hello.nodeId, agentVersion: hello.agentVersion, instanceId: hello.instanceId });
      helloRecorded = recordHello(hello, connectedAt, () => finished).catch((err: unknown) => {
        log.warn('could not record hello', { nodeId: hello.nodeId, err: errorMessage(err) });
        finish(err instanceof NotLeaderError ? err : new UnavailableError(`could not record the hello in etcd: ${errorMessage(err)}; retry`));
      });
      lastPongAt = clock.now();
      pingTimer = setInterval(() => {
        if (clock.now() - lastPongAt > 3 * pingIntervalMs) {
          finish(new DeadlineExceededError(`no pong for ${3 * pingIntervalMs} ms`));
          return;
        }
        s.send({ ping: { seq: String(++pingSeq) } });
      }, pingIntervalMs);
    };

    call.on('data', (message: AgentMessage__Output) => {
      if (finished) return;
      if (!rate.take(clock.now())) {
        log.warn('agent stream over its message rate; closing it', { nodeId: stream?.nodeId, perSecond: INPUT_LIMITS.agentMessagesPerSecond });
        finish(new ResourceExhaustedError(`more than ${INPUT_LIMITS.agentMessagesPerSecond} messages per second on one agent stream`));
        return;
      }
      if (!helloSeen) {
        helloSeen = true;
        clearTimeout(helloTimer);
        let hello: Hello__Output;
        let peer: PeerIdentity;
        try {
          hello = checkHello(message);
          peer = checkPeer(call, hello);
        } catch (err) {
          finish(err as ClusterError);
          return;
        }
        onHello(hello, peer).catch((err: unknown) => finish(new UnavailableError(errorMessage(err))));
        return;
      }
      lastPongAt = clock.now(); // any message proves the stream alive
      const nodeId = stream?.nodeId;
      if (!nodeId) return; // hello still being recorded
      switch (message.body) {
        case 'pong': break;
        case 'progress': if (message.progress) streams.emit('progress', nodeId, message.progress); break;
        case 'result': if (message.result) streams.emit('result', nodeId, message.result); break;
        case 'drift': {
          // Sent right after the Welcome, it can overtake the hello's write (a new node's record).
          const drift = message.drift;
          if (drift) void helloRecorded.then(() => streams.emit('drift', nodeId, drift));
          break;
        }
        case 'factsRefreshed': if (message.factsRefreshed) streams.emit('factsRefreshed', nodeId, message.factsRefreshed); break;
        case 'hello': log.warn('ignoring a second hello on one stream', { nodeId }); break;
        default: break;
      }
    });
    call.on('end', () => finish(undefined, 'agent ended the stream'));
    call.on('cancelled', () => finish(undefined, 'agent cancelled the stream'));
    call.on('error', (err) => finish(undefined, `stream error: ${errorMessage(err)}`));
  }

  return { Connect: connect };
}
