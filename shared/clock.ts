/**
 * The injected clock (fleet's clockwork): code asks it for the time AND for timers, so a test
 * can drive a loop, a debounce or a timeout by advancing a `ManualClock` instead of sleeping.
 */

/** A pending timer; `cancel()` is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  iso(): string;
  /**
   * Runs `fn` once after `ms`. The timer never keeps the process alive on its own (the
   * system clock unrefs it): a daemon's lifetime is owned by its servers and streams.
   */
  setTimeout(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  iso: () => new Date().toISOString(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

interface PendingTimer {
  due: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets queued promise callbacks (and the I/O they started, one turn deep) run. */
export function settle(turns = 5): Promise<void> {
  return new Promise<void>((resolve) => {
    let left = turns;
    const step = (): void => {
      if (--left <= 0) resolve();
      else setImmediate(step);
    };
    setImmediate(step);
  });
}

/**
 * A clock that moves only when told (clockwork's FakeClock). Timers fire in due order during
 * `advance()`, each followed by a settle of the promise queue, so `await clock.advance(100)`
 * leaves every pass it started either finished or waiting on real I/O.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  iso(): string {
    return new Date(this.t).toISOString();
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: PendingTimer = { due: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  /** Timers not yet fired nor cancelled. */
  pending(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due (also ones set meanwhile). */
  async advance(ms: number): Promise<void> {
    const target = this.t + Math.max(0, ms);
    await settle();
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      const next = this.timers.filter((x) => x.due <= target).sort((a, b) => a.due - b.due || a.seq - b.seq)[0];
      if (!next) break;
      this.t = Math.max(this.t, next.due);
      next.cancelled = true;
      next.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }
}
