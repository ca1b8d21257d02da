/**
 * The leader's keepalive on every client connection: an HTTP/2 PING when a connection has not
 * answered one for `periodMs`, and the connection dropped when a PING goes unanswered for
 * `timeoutMs` (a peer gone without a FIN: a power cut, a partition). That is what grpc-js's own
 * server keepalive does, but grpc-js arms two timers per connection and PING and builds its
 * trace strings whether tracing is on or not; at 10,000 agents that was the leader's largest
 * idle cost. Here ONE sweep timer serves every connection.
 *
 * It also knows which connections it dropped for silence, and since when their peer was
 * silent (its last answer): an agent stream cut that way has been silent for the whole
 * timeout already, so it counts at once instead of after the stream grace that is there for an
 * agent redialling after a restart (agent-service.ts, AgentStreams.unregister). With that, a
 * PING every 2 s finds a partitioned node within period + timeout + one sweep. Since the
 * kernel's TCP liveness (tcp-liveness.ts) finds cut and powered-off peers, the PING's default
 * period is 30 s: it checks that the program at the other end still reads its connection, and
 * the kernel's drops are recorded here too (markSilent).
 *
 * Each connection waits in a timing wheel at the sweep tick of its next action (its PING, or
 * the check that its PING was answered), so a sweep touches only the connections due then:
 * at 10,000 agents a sweep every 250 ms that visited every connection was 2.6 % of the
 * leader's core (its top-10 frames at 10,000) before any PING was sent.
 */
import type * as http2 from 'node:http2';
import type { Logger } from '../shared';

export interface ConnectionKeepaliveOptions {
  /** A PING once a connection has not answered one for this long. */
  periodMs: number;
  /** A PING unanswered this long drops the connection. */
  timeoutMs: number;
  logger: Logger;
  /** Clock ms. @default Date.now */
  now?: () => number;
}

/** What the keepalive uses of a connection (an http2.ServerHttp2Session). */
export interface KeptSession {
  readonly destroyed: boolean;
  readonly closed: boolean;
  readonly socket: { readonly remoteAddress?: string; readonly remotePort?: number };
  ping(callback: (err: Error | null, duration: number, payload: Buffer) => void): boolean;
  destroy(): void;
  once(event: 'close', listener: () => void): unknown;
}

interface Watched {
  readonly session: KeptSession;
  /** `remoteAddress:remotePort`, as grpc-js's call.getPeer() says it. */
  readonly peer: string;
  /** When the peer last answered a PING (or connected). */
  lastAnswerAt: number;
  /** When the PING in flight was sent, on the sweep's own clock (`loopTime`); undefined when none is. */
  pingSentAt?: number;
  /** The wheel slot (sweep tick) where this connection's next PING or timeout check waits. */
  tick: number;
}

/**
 * A connection's peer as `remoteAddress:remotePort`, the form grpc-js's call.getPeer() gives:
 * the key under which silentSince() is asked, so every drop is recorded under it.
 */
export function peerKey(socket: { readonly remoteAddress?: string; readonly remotePort?: number }): string {
  return `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
}

/** How long a dropped connection's silence is remembered for the stream that ends with it. */
const SILENT_MEMORY_MS = 60_000;

export class ConnectionKeepalive {
  private readonly watched = new Set<Watched>();
  /** Sweep tick → the connections whose next action is due at that tick. */
  private readonly wheel = new Map<number, Set<Watched>>();
  /** The last tick a sweep has handled. */
  private doneTick = 0;
  /** Peers whose connection this keepalive dropped for silence: since when they were silent, and when dropped. */
  private readonly silent = new Map<string, { since: number; droppedAt: number }>();
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly sweepMs: number;
  private dropped = 0;
  /**
   * Time as the sweeps lived it: each sweep advances it by the real time since the last one, but
   * by at most two sweep periods. A leader whose event loop stalls (a join storm, a long GC)
   * reads its connections' PING answers late, after the sweep that would find them missing; a
   * stall must not count as the peers' silence, or a busy leader drops healthy agents by the
   * thousand (seen at 10,000 agents: 9,000 connections dropped after a 1.5 s stall, and the
   * reconnect storm that followed kept the loop stalled).
   */
  private loopTime = 0;
  private lastSweepAt?: number;

  constructor(private readonly o: ConnectionKeepaliveOptions) {
    this.now = o.now ?? Date.now;
    // Fine enough that a PING goes out, and a dead connection is dropped, within 1/8 of the
    // shorter of the two periods of when they are due.
    this.sweepMs = Math.max(25, Math.floor(Math.min(o.periodMs, o.timeoutMs) / 8));
  }

  /** Follows the connections of `server` (and those it already holds). */
  attach(server: http2.Http2SecureServer | http2.Http2Server, existing: Iterable<http2.ServerHttp2Session> = []): void {
    for (const s of existing) this.add(s);
    server.on('session', (s: http2.ServerHttp2Session) => this.add(s));
  }

  /** Connections followed now. */
  get size(): number {
    return this.watched.size;
  }

  /** Connections dropped for silence so far (an unanswered PING, or the kernel's TCP liveness). */
  get droppedCount(): number {
    return this.dropped;
  }

  /**
   * Since when (clock ms) the peer `HOST:PORT` was silent, when this keepalive dropped its
   * connection for that (within the last minute); undefined otherwise.
   */
  silentSince(peer: string): number | undefined {
    return this.silent.get(peer)?.since;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
    this.wheel.clear();
    this.silent.clear();
  }

  /** Follows one connection (attach() does this for every connection of a server). */
  add(session: KeptSession): void {
    if (session.destroyed || session.closed) return;
    if (!this.timer) {
      // The sweep's clock starts now, so the first PING is due a period from here.
      this.lastSweepAt = this.now();
      this.timer = setInterval(() => this.sweep(), this.sweepMs);
      this.timer.unref();
    }
    const w: Watched = { session, peer: peerKey(session.socket), lastAnswerAt: this.now(), tick: 0 };
    this.watched.add(w);
    this.schedule(w, this.currentLoopTime() + this.o.periodMs);
    session.once('close', () => this.forget(w));
  }

  /** One sweep: drop the silent, PING the due (only the connections due by now). Exposed for tests. */
  sweep(): void {
    const now = this.now();
    this.loopTime += this.lastSweepAt === undefined ? 0 : Math.min(Math.max(0, now - this.lastSweepAt), 2 * this.sweepMs);
    this.lastSweepAt = now;
    const upTo = Math.floor(this.loopTime / this.sweepMs);
    for (let t = this.doneTick + 1; t <= upTo; t++) {
      const due = this.wheel.get(t);
      if (!due) continue;
      this.wheel.delete(t);
      for (const w of due) {
        if (w.session.destroyed || w.session.closed) {
          this.watched.delete(w);
          continue;
        }
        if (w.pingSentAt !== undefined) this.drop(w, now, `no answer to a PING within ${this.o.timeoutMs} ms`);
        else this.ping(w);
      }
    }
    this.doneTick = Math.max(this.doneTick, upTo);
    for (const [peer, s] of this.silent) if (now - s.droppedAt > SILENT_MEMORY_MS) this.silent.delete(peer);
  }

  /** The sweep's clock now (between sweeps: the last sweep's, advanced as a sweep would). */
  private currentLoopTime(): number {
    return this.loopTime + (this.lastSweepAt === undefined ? 0 : Math.min(Math.max(0, this.now() - this.lastSweepAt), 2 * this.sweepMs));
  }

  /** Puts `w` in the wheel at the first tick at or after `dueLoopTime`. */
  private schedule(w: Watched, dueLoopTime: number): void {
    this.unschedule(w);
    w.tick = Math.max(this.doneTick + 1, Math.ceil(dueLoopTime / this.sweepMs));
    let slot = this.wheel.get(w.tick);
    if (!slot) {
      slot = new Set();
      this.wheel.set(w.tick, slot);
    }
    slot.add(w);
  }

  private unschedule(w: Watched): void {
    const slot = this.wheel.get(w.tick);
    if (slot?.delete(w) && slot.size === 0) this.wheel.delete(w.tick);
  }

  private forget(w: Watched): void {
    this.watched.delete(w);
    this.unschedule(w);
  }

  private ping(w: Watched): void {
    w.pingSentAt = this.loopTime;
    // The check that it was answered; an answer moves the connection to its next PING instead.
    this.schedule(w, this.loopTime + this.o.timeoutMs);
    let sent = false;
    try {
      sent = w.session.ping((err) => {
        if (err) return; // the session is closing; its 'close' removes it
        w.lastAnswerAt = this.now();
        w.pingSentAt = undefined;
        if (this.watched.has(w)) this.schedule(w, this.currentLoopTime() + this.o.periodMs);
      });
    } catch {
      sent = false;
    }
    if (!sent) this.drop(w, this.now(), 'could not send a PING');
  }

  private drop(w: Watched, now: number, why: string): void {
    this.forget(w);
    this.markSilent(w.peer, w.lastAnswerAt, now);
    this.o.logger.info('connection dropped by keepalive', { peer: w.peer, why, silentMs: now - w.lastAnswerAt });
    w.session.destroy();
  }

  /**
   * Records that the connection of `peer` ends because its peer was silent since `since`: this
   * keepalive's own drops, and the kernel's (tcp-liveness.ts: a read failing with ETIMEDOUT).
   * Must run before the connection's streams end, so that they count from `since`.
   */
  markSilent(peer: string, since: number, now: number = this.now()): void {
    this.silent.set(peer, { since: Math.min(since, now), droppedAt: now });
    this.dropped++;
  }
}
