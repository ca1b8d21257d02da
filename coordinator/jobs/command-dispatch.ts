/**
 * Sending one command to a node's agent and waiting for its result, through reconnects,
 * cancels and timeouts. Every timer comes from the injected Clock, so a test can drive the
 * connect timeout, the cancel grace or the command deadline with a ManualClock.
 */
import { errorMessage, type Clock, type Logger, type Timer } from '../../shared';
import { onAbort } from '../../shared/abort-subscribers';
import type { Command } from '../../generated/cluster/v1/Command';
import type { CommandProgress__Output } from '../../generated/cluster/v1/CommandProgress';
import type { CommandResult__Output } from '../../generated/cluster/v1/CommandResult';
import type { AgentStream, AgentStreams } from '../agent-streams';
import { CANCELLED_BY_OPERATOR, failedOutcome, type CommandOutcome } from './job-outcome';
import { boundOutput, type JobNodeRecord } from './job-record';
import type { Redactor } from '../../shared/secret-envelope';

/** Raised inside a run when leadership is lost or the runner stops: stop without writing. */
export class Halted extends Error {}

/** What one waiting command wants to hear from AgentStreams. */
export interface CommandListener {
  nodeId: string;
  onResult(r: CommandResult__Output): void;
  onProgress(p: CommandProgress__Output): void;
  onConnected(): void;
  onDisconnected(): void;
  /** The inventory reconciler found the node Unreachable (no stream open). */
  onUnreachable(reason: string): void;
}

/**
 * One set of AgentStreams listeners for the runner, routing by command id and node id: a
 * listener per waiting command would make every message O(commands) with thousands of nodes.
 */
export class CommandRouter {
  private readonly byCommand = new Map<string, CommandListener>();
  private readonly byNode = new Map<string, Set<CommandListener>>();
  private readonly onResult = (nodeId: string, r: CommandResult__Output): void => {
    const l = this.byCommand.get(r.commandId);
    if (l?.nodeId === nodeId) l.onResult(r);
  };
  private readonly onProgress = (nodeId: string, p: CommandProgress__Output): void => {
    const l = this.byCommand.get(p.commandId);
    if (l?.nodeId === nodeId) l.onProgress(p);
  };
  private readonly onConnected = (s: AgentStream): void => {
    for (const l of [...(this.byNode.get(s.nodeId) ?? [])]) l.onConnected();
  };
  private readonly onDisconnected = (s: AgentStream): void => {
    for (const l of [...(this.byNode.get(s.nodeId) ?? [])]) l.onDisconnected();
  };
  private readonly onUnreachable = (nodeId: string, reason: string): void => {
    for (const l of [...(this.byNode.get(nodeId) ?? [])]) l.onUnreachable(reason);
  };

  private attached = false;

  constructor(private readonly streams: AgentStreams) {}

  /** Commands waiting for their result now (every job's). */
  get waiting(): number {
    return this.byCommand.size;
  }

  attach(): void {
    if (this.attached) return;
    this.attached = true;
    this.streams.on('result', this.onResult);
    this.streams.on('progress', this.onProgress);
    this.streams.on('connected', this.onConnected);
    this.streams.on('disconnected', this.onDisconnected);
    this.streams.on('unreachable', this.onUnreachable);
  }

  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.streams.off('result', this.onResult);
    this.streams.off('progress', this.onProgress);
    this.streams.off('connected', this.onConnected);
    this.streams.off('disconnected', this.onDisconnected);
    this.streams.off('unreachable', this.onUnreachable);
  }

  /** Routes the command's messages and its node's (dis)connections to `l`; returns the unsubscribe. */
  listen(commandId: string, l: CommandListener): () => void {
    this.byCommand.set(commandId, l);
    let set = this.byNode.get(l.nodeId);
    if (!set) this.byNode.set(l.nodeId, (set = new Set()));
    set.add(l);
    return () => {
      if (this.byCommand.get(commandId) === l) this.byCommand.delete(commandId);
      set.delete(l);
      if (set.size === 0) this.byNode.delete(l.nodeId);
    };
  }
}

export interface DispatchTimings {
  /**
   * How long the node's agent may be without a stream before the node fails, while the node is
   * not found Unreachable (that fails it at once): e.g. an agent still re-attaching to a new leader.
   */
  connectTimeoutMs: number;
  /** Deadline used when the command carries none. */
  commandTimeoutMs: number;
  /** How long past the command's deadline the runner waits for the agent's result. */
  resultGraceMs: number;
  /** After a cancel, how long the agent gets to confirm. */
  cancelGraceMs: number;
  /** Per-unit progress is written at most this often per node. */
  progressFlushMs: number;
  /**
   * Progress writes of all the commands waiting together stay under this rate, up to
   * PROGRESS_MAX_DELAY_MS: with more of them than rate × progressFlushMs, each node's progress
   * is written every waiting / rate seconds instead (1,000 nodes at 200/s: every 5 s), and
   * never less often than every 5 s, so live output (`clusterctl exec`, the dashboard) stays
   * that fresh whatever the fleet (10,000 in flight: 2,000 writes a second). Without it the
   * writes grew with the fleet times the commands' length: 1,000 nodes applying 50 units each
   * took 27 s and wrote 100,000 progress records, 4 a second per node.
   */
  progressWritesPerSecond: number;
}

/** The longest a node's progress waits to be written, however many commands are in flight. */
export const PROGRESS_MAX_DELAY_MS = 5_000;

/** How long a node's progress waits before it is written, with `waiting` commands in flight. */
export function progressFlushDelayMs(t: Pick<DispatchTimings, 'progressFlushMs' | 'progressWritesPerSecond'>, waiting: number): number {
  const budget = Math.ceil((waiting * 1000) / Math.max(1, t.progressWritesPerSecond));
  return Math.max(t.progressFlushMs, Math.min(budget, PROGRESS_MAX_DELAY_MS));
}

export interface DispatchContext {
  streams: AgentStreams;
  router: CommandRouter;
  clock: Clock;
  log: Logger;
  timings: DispatchTimings;
  /** The operator cancelled the job. */
  cancel: AbortSignal;
  /** Leadership lost or runner stopped: reject with Halted, write nothing. */
  halted: AbortSignal;
  /** The node's live job record changed (progress, boot id): keep it in memory. */
  remember(rec: JobNodeRecord): void;
  /** Queue a write of the node's job record (after the writes queued before it). */
  write(rec: JobNodeRecord): Promise<void>;
  /**
   * The record's boot id was taken from the node's stream as this run started the command,
   * before anything was sent: a first send that finds another boot records that one instead of
   * failing the node (the command never reached the agent of the first boot). Without it, a
   * boot id in the record is the one the command was sent to.
   */
  bootIdBeforeSend?: boolean;
  /**
   * The secrets the command carries: the agent's progress and result pass through it before
   * anything is kept, logged or evented (the agent redacts too; this does not rely on it).
   */
  redactor?: Redactor;
}

/**
 * Sends the command and waits for its result, through reconnects: the same command id is
 * re-sent on every new stream of the node (the agent dedups by id). Fails the node at once when
 * it is Unreachable (not sent, or lost mid-command: the job's failure rules take it from there),
 * when its agent has no stream for connectTimeoutMs, or comes back with another boot id; on cancel sends
 * CancelCommand and waits for the agent's confirmation (bounded by cancelGraceMs).
 */
export function dispatchCommand(c: DispatchContext, nodeId: string, command: Command, rec: JobNodeRecord): Promise<CommandOutcome> {
  const { streams, clock, timings: t } = c;
  const commandId = command.id ?? '';
  let live = { ...rec };
  let outputText = rec.output ?? '';
  return new Promise<CommandOutcome>((resolve, reject) => {
    // An abort listener added after the abort never fires: a run halted while it awaited the
    // writes before this dispatch would otherwise wait out connectTimeoutMs for an absent agent,
    // and the runner's stop (a coordinator's shutdown) with it.
    if (c.halted.aborted) {
      reject(new Halted('leadership lost or runner stopped'));
      return;
    }
    let settled = false;
    let waitTimer: Timer | undefined;
    let cancelTimer: Timer | undefined;
    let flushTimer: Timer | undefined;
    let everSent = false;
    const deadline = clock.setTimeout(() => {
      trySend({ cancel: { commandId, reason: 'command deadline passed' } });
      settle(failedOutcome('timed_out', `no result within ${command.timeoutMs ?? 0} ms`, outputText));
    }, (command.timeoutMs ?? t.commandTimeoutMs) + t.resultGraceMs);

    let unlisten = (): void => undefined;
    let unsubscribeCancel = (): void => undefined;
    let unsubscribeHalt = (): void => undefined;
    const cleanup = (): void => {
      waitTimer?.cancel(); cancelTimer?.cancel(); flushTimer?.cancel(); deadline.cancel();
      unlisten();
      unsubscribeCancel();
      unsubscribeHalt();
    };
    const settle = (r: CommandOutcome): void => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(r);
    };
    const trySend = (msg: Parameters<AgentStreams['send']>[1]): boolean => {
      try { streams.send(nodeId, msg); return true; } catch { return false; }
    };
    const waitForAgent = (why: string): void => {
      if (waitTimer || settled) return;
      waitTimer = clock.setTimeout(() => {
        settle(failedOutcome('failed', `agent of node ${nodeId} ${why} and did not reconnect within ${Math.round(t.connectTimeoutMs / 1000)} s`, outputText));
      }, t.connectTimeoutMs);
    };
    const send = (): void => {
      if (settled) return;
      if (c.cancel.aborted) {
        // Cancelled while the agent was away: ask it to stop whatever it still runs.
        trySend({ cancel: { commandId, reason: CANCELLED_BY_OPERATOR } });
        return;
      }
      const boot = streams.get(nodeId)?.bootId ?? '';
      if (live.bootId && boot && boot !== live.bootId && (everSent || !c.bootIdBeforeSend)) {
        // The agent rebooted while the command ran (or before a resumed leader re-sent it):
        // the machine is not in the state the command started from, and the agent no longer
        // knows the command, so sending it again would run it twice. Fail the node instead.
        settle(failedOutcome('failed', `agent of node ${nodeId} rebooted while the command ran (boot id ${live.bootId} → ${boot}); not re-sent`, outputText));
        return;
      }
      const unreachable = streams.unreachableReason(nodeId);
      if (unreachable !== undefined) {
        settle(failedOutcome('failed', everSent
          ? `node ${nodeId} became Unreachable mid-command (${unreachable}); the command's outcome is unknown`
          : `node ${nodeId} is Unreachable (${unreachable}); the command was not sent`, outputText));
        return;
      }
      if (trySend({ command })) {
        everSent = true;
        // The boot the command went to (written with the "running" record when it was known then).
        if (boot && live.bootId !== boot) {
          live = { ...live, bootId: boot };
          c.remember(live);
          c.write(live).catch((err: unknown) => c.log.debug('boot id write failed', { nodeId, err: errorMessage(err) }));
        }
        waitTimer?.cancel();
        waitTimer = undefined;
      } else {
        waitForAgent(everSent ? 'went unreachable mid-command' : 'is not connected');
      }
    };
    const onProgress = (received: CommandProgress__Output): void => {
      const p = c.redactor ? c.redactor.redactDeep(received) : received;
      const units = live.units.filter((u) => u.unitId !== p.unitId);
      const idx = live.units.findIndex((u) => u.unitId === p.unitId);
      const entry = { unitId: p.unitId, status: p.status, message: p.message };
      if (idx >= 0) units.splice(idx, 0, entry); else units.push(entry);
      // Redacted again once joined: a secret split across two chunks is whole only here.
      if (p.output) outputText = boundOutput(c.redactor ? c.redactor.redact(outputText + p.output) : outputText + p.output);
      live = { ...live, units, ...(outputText ? { output: outputText } : {}) };
      if (!flushTimer) {
        flushTimer = clock.setTimeout(() => {
          flushTimer = undefined;
          if (!settled) c.write(live).catch((err: unknown) => c.log.debug('progress write failed', { nodeId, err: errorMessage(err) }));
        }, progressFlushDelayMs(t, c.router.waiting));
      }
      c.remember(live);
    };

    const onCancel = (): void => {
      const reachable = trySend({ cancel: { commandId, reason: CANCELLED_BY_OPERATOR } });
      if (!reachable) {
        settle(failedOutcome('cancelled', `${CANCELLED_BY_OPERATOR} (agent not connected)`, outputText));
        return;
      }
      cancelTimer = clock.setTimeout(
        () => settle(failedOutcome('cancelled', `${CANCELLED_BY_OPERATOR} (the agent did not confirm within ${t.cancelGraceMs} ms)`, outputText)),
        t.cancelGraceMs,
      );
    };
    const onHalt = (): void => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(new Halted('leadership lost or runner stopped'));
    };
    unlisten = c.router.listen(commandId, {
      nodeId,
      onResult: (r) => settle(c.redactor ? c.redactor.redactDeep(r) : r),
      onProgress,
      onConnected: () => send(),
      onDisconnected: () => { if (!streams.isConnected(nodeId)) waitForAgent('went unreachable mid-command'); },
      onUnreachable: (reason) => {
        if (settled || streams.isConnected(nodeId)) return;
        if (c.cancel.aborted) settle(failedOutcome('cancelled', `${CANCELLED_BY_OPERATOR} (node Unreachable: ${reason})`, outputText));
        else settle(failedOutcome('failed', everSent
          ? `node ${nodeId} became Unreachable mid-command (${reason}); the command's outcome is unknown`
          : `node ${nodeId} is Unreachable (${reason}); the command was not sent`, outputText));
      },
    });
    // One listener per signal for all the job's commands (shared/abort-subscribers.ts).
    unsubscribeHalt = onAbort(c.halted, onHalt);
    if (c.cancel.aborted) onCancel();
    else {
      unsubscribeCancel = onAbort(c.cancel, onCancel);
      send();
    }
  });
}
