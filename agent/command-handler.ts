/**
 * Commands from the coordinator: the contract of whatever executes them (the config-unit
 * executor, agent/command-executor.ts, implements `CommandHandler`), the honest default of an
 * agent built without one, one guarded run of a handler (timeout, cancel, a thrown error all become a CommandResult),
 * and the bounded memory of results by command id that makes a re-sent Command idempotent.
 */
import type { Command__Output } from '../generated/cluster/v1/Command';
import type { CommandProgress } from '../generated/cluster/v1/CommandProgress';
import type { CommandResult } from '../generated/cluster/v1/CommandResult';
import { CancelledError, DeadlineExceededError, errorMessage } from '../shared/errors';

export type CommandOutcome = 'succeeded' | 'failed' | 'cancelled' | 'timed_out';

/** A CommandResult as a handler returns it (the command id is filled in by the caller). */
export type CommandResultBody = Omit<CommandResult, 'commandId' | 'outcome'> & { outcome: CommandOutcome };

/** A progress report of one unit (the command id is filled in by the caller). */
export type ProgressUpdate = Omit<CommandProgress, 'commandId'>;
export type ReportProgress = (update: ProgressUpdate) => void;

export interface CommandHandler {
  /**
   * Runs one command. `signal` aborts on CancelCommand, on the command's timeout and on agent
   * shutdown; the handler must stop its work (kill child processes) and may return early.
   */
  execute(cmd: Command__Output, reportProgress: ReportProgress, signal: AbortSignal): Promise<CommandResultBody>;
}

/** `COMMAND_KIND_APPLY` → `apply`. */
export function commandKindName(kind: string): string {
  return kind.replace(/^COMMAND_KIND_/, '').toLowerCase();
}

/** An agent built without an executor (link tests, benchmarks) says plainly that it cannot run commands. */
export class UnsupportedCommandHandler implements CommandHandler {
  execute(cmd: Command__Output): Promise<CommandResultBody> {
    return Promise.resolve({ outcome: 'failed', error: `this agent cannot run ${commandKindName(cmd.kind)} commands yet` });
  }
}

/**
 * Runs `handler` for `cmd` with its timeout, and never throws: a thrown error is a failed
 * result, and an abort is reported as what caused it (cancelled, timed out) even when the
 * handler returned something else after the abort.
 */
export async function runCommand(
  handler: CommandHandler,
  cmd: Command__Output,
  reportProgress: ReportProgress,
  controller: AbortController,
): Promise<CommandResult> {
  const timer = cmd.timeoutMs > 0
    ? setTimeout(() => controller.abort(new DeadlineExceededError(`command timed out after ${cmd.timeoutMs} ms`)), cmd.timeoutMs)
    : undefined;
  let body: CommandResultBody;
  try {
    body = await handler.execute(cmd, reportProgress, controller.signal);
  } catch (err) {
    body = { outcome: 'failed', error: errorMessage(err) };
  } finally {
    clearTimeout(timer);
  }
  if (controller.signal.aborted && body.outcome !== 'succeeded') {
    const reason: unknown = controller.signal.reason;
    if (reason instanceof DeadlineExceededError) body = { ...body, outcome: 'timed_out', error: reason.message };
    else body = { ...body, outcome: 'cancelled', error: reason instanceof Error ? reason.message : 'cancelled' };
  }
  return { ...body, commandId: cmd.id };
}

/** Builds the abort reason of a CancelCommand. */
export function cancelReason(reason: string): CancelledError {
  return new CancelledError(reason ? `cancelled: ${reason}` : 'cancelled by the coordinator');
}

interface StoredResult {
  result: CommandResult;
  acknowledged: boolean;
}

export const DEFAULT_RESULT_CAPACITY = 256;

/**
 * Results by command id, oldest forgotten first. A duplicate Command (a new leader resuming a
 * job, a retry after a reconnect) is answered from here instead of running twice; results the
 * coordinator may not have seen are listed in the next Hello and sent again.
 */
export class CommandResults {
  private readonly entries = new Map<string, StoredResult>();

  constructor(private readonly capacity: number = DEFAULT_RESULT_CAPACITY) {
    if (!(capacity >= 1)) throw new RangeError('result capacity must be at least 1');
  }

  get size(): number {
    return this.entries.size;
  }

  get(commandId: string): CommandResult | undefined {
    return this.entries.get(commandId)?.result;
  }

  has(commandId: string): boolean {
    return this.entries.has(commandId);
  }

  record(result: CommandResult): void {
    const id = result.commandId ?? '';
    this.entries.delete(id);
    this.entries.set(id, { result, acknowledged: false });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  acknowledge(commandId: string): void {
    const e = this.entries.get(commandId);
    if (e) e.acknowledged = true;
  }

  isAcknowledged(commandId: string): boolean {
    return this.entries.get(commandId)?.acknowledged === true;
  }

  /** Results not yet known to have reached the coordinator, oldest first. */
  unacknowledged(): CommandResult[] {
    return [...this.entries.values()].filter((e) => !e.acknowledged).map((e) => e.result);
  }
}
