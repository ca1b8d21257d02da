/**
 * The one level-triggered loop (fleet's `pkg/reconcile.go` PeriodicReconciler): a pass reads
 * the world and converges it, so it does not matter how many events led to it, only that one
 * pass starts after the last of them. The coordinator's reconcilers and the election's
 * candidate reads run on it instead of hand-made watch + debounce + timer + "run once more"
 * scaffolding.
 *
 *  - `start()` runs a first pass at once, then one every `intervalMs` (a safety net for
 *    anything a watch missed);
 *  - `trigger()` asks for a pass after `debounceMs` (a burst of triggers makes one pass);
 *  - single flight: at most one pass runs; a trigger that arrives during a pass is never
 *    dropped, it makes exactly one more pass after it;
 *  - `when()` (e.g. "am I the leader?") is checked at the start of every pass;
 *  - `runNow()` runs a pass at once (also on a stopped loop: tests and callers that need a
 *    pass finished before they go on use it);
 *  - `stop()` cancels the timers and resolves once the pass in flight has ended;
 *  - time and timers come from the injected `Clock`, so tests drive it with a ManualClock.
 */
import type { Clock, Timer } from './clock';
import { errorMessage } from './errors';
import type { Logger } from './logger';

/** The debounce every loop uses unless it states why it needs another. */
export const DEFAULT_DEBOUNCE_MS = 100;

export interface ReconcileLoopOptions {
  /** Shown in logs. */
  name: string;
  /** One pass. A throw is logged; the next trigger or tick retries. */
  pass: () => Promise<void>;
  clock: Clock;
  logger: Logger;
  /** Period of the timer pass; 0 = no timer. @default 30000 */
  intervalMs?: number;
  /** Gathers a burst of triggers into one pass. @default DEFAULT_DEBOUNCE_MS (100 ms) */
  debounceMs?: number;
  /** Checked before every pass: false skips it (a follower does not reconcile). @default always */
  when?: () => boolean;
}

export type ReconcileLoopState = 'stopped' | 'idle' | 'scheduled' | 'running';

export class ReconcileLoop {
  private readonly intervalMs: number;
  private readonly debounceMs: number;
  private active = false;
  private tick?: Timer;
  private soon?: Timer;
  private running?: Promise<void>;
  private again = false;
  /** The rerun was asked for by runNow(): it runs even on a loop that is not started. */
  private againAsked = false;
  private passes = 0;

  constructor(private readonly o: ReconcileLoopOptions) {
    this.intervalMs = o.intervalMs ?? 30_000;
    this.debounceMs = o.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  get state(): ReconcileLoopState {
    if (!this.active) return 'stopped';
    if (this.running) return 'running';
    return this.soon ? 'scheduled' : 'idle';
  }

  /** Passes completed since construction (tests and metrics read it). */
  get completedPasses(): number {
    return this.passes;
  }

  get started(): boolean {
    return this.active;
  }

  /** Starts the timer and runs a first pass at once; resolves when that pass ended. Idempotent. */
  start(): Promise<void> {
    if (this.active) return this.running ?? Promise.resolve();
    this.active = true;
    this.armTick();
    return this.runNow();
  }

  /** Asks for a pass after the debounce; during a pass, for one more after it. */
  trigger(): void {
    if (!this.active) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.soon) return;
    this.soon = this.o.clock.setTimeout(() => {
      this.soon = undefined;
      void this.runNow();
    }, this.debounceMs);
  }

  /**
   * Runs a pass now (no debounce). If one is in flight, the returned promise covers it and
   * the one more pass that this call asks for, so what the caller changed before calling is
   * seen by a pass that has finished when the promise resolves. Never rejects.
   */
  runNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      this.againAsked = true;
      return this.running;
    }
    this.soon?.cancel();
    this.soon = undefined;
    this.running = this.loop();
    return this.running;
  }

  /** Cancels the timers and waits for the pass in flight. Idempotent; `start()` may follow. */
  async stop(): Promise<void> {
    this.active = false;
    this.tick?.cancel();
    this.tick = undefined;
    this.soon?.cancel();
    this.soon = undefined;
    this.again = false;
    this.againAsked = false;
    await this.running;
  }

  private armTick(): void {
    if (this.intervalMs <= 0) return;
    this.tick = this.o.clock.setTimeout(() => {
      if (!this.active) return;
      this.armTick();
      this.trigger();
    }, this.intervalMs);
  }

  private async loop(): Promise<void> {
    // Yield once, so `running` is assigned before the body runs: a skipped pass has no await
    // of its own, and its `finally` would otherwise clear `running` before it was set.
    await Promise.resolve();
    try {
      do {
        this.again = false;
        this.againAsked = false;
        try {
          if (this.o.when && !this.o.when()) continue;
          await this.o.pass();
          this.passes++;
        } catch (err) {
          this.o.logger.warn(`${this.o.name} pass failed; the next trigger or tick retries`, { err: errorMessage(err) });
        }
      } while (this.again && (this.active || this.againAsked));
    } finally {
      this.running = undefined;
    }
  }
}
