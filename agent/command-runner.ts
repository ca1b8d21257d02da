/**
 * Running the coordinator's commands on the agent: one at a time (the Hello reports it as
 * runningCommandId), a duplicate answered from the results kept by command id
 * (command-handler.ts CommandResults), a CancelCommand aborting the running one. Messages go
 * out through `send`, which the stream session provides and which drops them while no
 * welcomed stream is open: a result whose delivery is uncertain is sent again after the next
 * Welcome (see CommandResults.unacknowledged), progress is live output only, gathered for 250 ms
 * (progress-gatherer.ts: not sent at all for a command that ends sooner when its result says
 * the same).
 *
 * A command's secret variables (Command.secretVariables, docs/secrets.md) and the content of
 * its bundle's secret file units are redacted from every progress message and from the result before it is kept, logged or sent: a failing unit
 * that printed one, or an error that quotes a rendered command line, leaves the node without it.
 */
import type { AgentMessage } from '../generated/cluster/v1/AgentMessage';
import type { Command__Output } from '../generated/cluster/v1/Command';
import type { CommandResult } from '../generated/cluster/v1/CommandResult';
import { systemClock, type Clock, type Timer } from '../shared/clock';
import type { Logger } from '../shared/logger';
import { commandRedactor } from '../shared/secret-envelope';
import {
  CommandResults, cancelReason, commandKindName, runCommand,
  type CommandHandler, type ProgressUpdate,
} from './command-handler';
import { ProgressGatherer } from './progress-gatherer';

/** Writes on the current welcomed stream; false when there is none. `resultOf`: the message carries that command's result. */
export type SendToCoordinator = (msg: AgentMessage, resultOf?: string) => boolean;

export interface CommandRunnerOptions {
  handler: CommandHandler;
  results: CommandResults;
  send: SendToCoordinator;
  logger: Logger;
  clock?: Clock;
}

interface RunningCommand {
  id: string;
  controller: AbortController;
  done: Promise<void>;
}

export class CommandRunner {
  private running?: RunningCommand;

  constructor(private readonly o: CommandRunnerOptions) {}

  /** Id of the command running now ('' when none). */
  get runningId(): string {
    return this.running?.id ?? '';
  }

  onCommand(cmd: Command__Output): void {
    const log = this.o.logger;
    const kind = commandKindName(cmd.kind);
    const known = this.o.results.get(cmd.id);
    if (known) {
      log.info('duplicate command answered with its recorded result', { commandId: cmd.id, kind, outcome: known.outcome });
      this.o.send({ result: known }, cmd.id);
      return;
    }
    if (this.running?.id === cmd.id) {
      log.info('duplicate command ignored: it is running', { commandId: cmd.id, kind });
      return;
    }
    if (this.running) {
      const busy: CommandResult = { commandId: cmd.id, outcome: 'failed', error: `agent is busy with command ${this.running.id}; one command runs at a time` };
      log.warn('command refused: busy', { commandId: cmd.id, kind, running: this.running.id });
      this.o.send({ result: busy });
      return;
    }
    if (!cmd.id) {
      log.warn('command without id ignored', { kind });
      return;
    }
    log.info('command received', { commandId: cmd.id, jobId: cmd.jobId, kind });
    const controller = new AbortController();
    const redactor = commandRedactor(cmd);
    const gathered = new ProgressGatherer({ clock: this.o.clock ?? systemClock, send: (progress) => { this.o.send({ progress }); } });
    const progress = (u: ProgressUpdate): void => {
      gathered.push({ ...redactor.redactDeep(u), commandId: cmd.id });
    };
    const done = runCommand(this.o.handler, cmd, progress, controller).then((raw) => {
      const result = redactor.redactDeep(raw);
      gathered.end(result);
      this.o.results.record(result);
      if (this.running?.id === cmd.id) this.running = undefined;
      log.info('command finished', { commandId: cmd.id, kind, outcome: result.outcome, error: result.error || undefined });
      this.o.send({ result }, cmd.id);
    });
    this.running = { id: cmd.id, controller, done };
  }

  onCancel(commandId: string, reason: string): void {
    if (this.running?.id !== commandId) {
      this.o.logger.info('cancel for a command that is not running ignored', { commandId });
      return;
    }
    this.o.logger.info('cancelling command', { commandId, reason });
    this.running.controller.abort(cancelReason(reason));
  }

  /** Cancels the running command (if any) and waits at most `graceMs` for it to end. */
  async stop(graceMs: number): Promise<void> {
    const running = this.running;
    if (!running) return;
    running.controller.abort(cancelReason('agent shutting down'));
    let timer: Timer | undefined;
    await Promise.race([running.done, new Promise<void>((r) => { timer = (this.o.clock ?? systemClock).setTimeout(r, graceMs); })]);
    timer?.cancel();
  }
}
