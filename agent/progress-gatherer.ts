/**
 * A running command's progress as the agent sends it: gathered for `periodMs` (250 ms), then
 * sent as one message per unit with that unit's latest state, its output chunks joined in the
 * order they came.
 *
 * When the command ends, what is pending is dropped only when the result says all of it: a
 * report that lists every unit that ran (apply, remove, plan) and the whole output, which a
 * finished node's record takes over progress (job-outcome.ts unitsWithReport). Otherwise it is
 * sent before the result: a verify's report keeps only the drift (its unchanged units are known
 * from progress alone), an exec's result has no report, nor has a handler that threw.
 *
 * Without it each unit cost two messages ("running", then its end), and the leader handles each
 * one: a 50-unit bundle on 1,000 nodes was 100,000 messages.
 *
 * Merging keeps what the coordinator makes of the messages (a node's unit list in the order the
 * units first appeared, each with its latest state, and the output in the order it was printed):
 * an update joins the last pending message when that is the same unit's; a state change without
 * output joins the unit's last pending message; anything else is appended.
 */
import type { CommandProgress } from '../generated/cluster/v1/CommandProgress';
import type { CommandResult } from '../generated/cluster/v1/CommandResult';
import type { Clock, Timer } from '../shared/clock';

/** How long progress gathers before it is sent. */
export const PROGRESS_GATHER_MS = 250;
/** Pending output past this many bytes is sent at once (a gRPC message has a size limit; output is a stream). */
export const PROGRESS_OUTPUT_FLUSH_BYTES = 64 * 1024;

export interface ProgressGathererOptions {
  clock: Clock;
  send(progress: CommandProgress): void;
  /** @default PROGRESS_GATHER_MS */
  periodMs?: number;
  /** @default PROGRESS_OUTPUT_FLUSH_BYTES */
  outputFlushBytes?: number;
}

export class ProgressGatherer {
  private pending: CommandProgress[] = [];
  private pendingOutput = 0;
  private timer?: Timer;
  private ended = false;

  constructor(private readonly o: ProgressGathererOptions) {}

  push(p: CommandProgress): void {
    if (this.ended) return;
    this.merge(p);
    this.pendingOutput += p.output ? Buffer.byteLength(p.output) : 0;
    if (this.pendingOutput >= (this.o.outputFlushBytes ?? PROGRESS_OUTPUT_FLUSH_BYTES)) {
      this.flush();
      return;
    }
    this.timer ??= this.o.clock.setTimeout(() => this.flush(), this.o.periodMs ?? PROGRESS_GATHER_MS);
  }

  /** Sends what is pending now. */
  flush(): void {
    for (const p of this.take()) this.o.send(p);
  }

  /**
   * The command ended with `result`, which is sent next: what is pending is dropped when the
   * result says all of it (resultCoversProgress), else sent first. Later pushes are dropped.
   */
  end(result: Pick<CommandResult, 'report'>): void {
    const pending = this.take();
    if (!resultCoversProgress(result)) for (const p of pending) this.o.send(p);
    this.ended = true;
  }

  /** What is pending, taken out (and its timer cancelled). */
  private take(): CommandProgress[] {
    this.timer?.cancel();
    this.timer = undefined;
    const out = this.pending;
    this.pending = [];
    this.pendingOutput = 0;
    return out;
  }

  private merge(p: CommandProgress): void {
    const last = this.pending.length - 1;
    if (last >= 0 && this.pending[last].unitId === p.unitId) {
      const joined = (this.pending[last].output ?? '') + (p.output ?? '');
      this.pending[last] = { ...p, ...(joined ? { output: joined } : {}) };
      return;
    }
    if (!p.output) {
      for (let i = last; i >= 0; i--) {
        if (this.pending[i].unitId !== p.unitId) continue;
        this.pending[i] = { ...this.pending[i], status: p.status, message: p.message };
        return;
      }
    }
    this.pending.push({ ...p });
  }
}

/**
 * Whether a result says everything its command's progress did: a report that lists every unit
 * that ran (apply, remove and plan do; a verify keeps only the drift) with the output beside it.
 * An exec's result and a failed handler's have no report.
 */
export function resultCoversProgress(result: Pick<CommandResult, 'report'>): boolean {
  return result.report !== undefined && result.report !== null && result.report.mode !== 'verify';
}
