/**
 * Logs how long the replica's main event loop was blocked, when it was (perf_hooks
 * monitorEventLoopDelay): a re-attach storm or a big pass shows in the log as the window's
 * max and p99, which is what the election's keepalives and every gRPC call waited
 * (bench/failover.ts reads these lines). Quiet windows log nothing.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from '../shared';

export interface LoopDelayLogOptions {
  logger: Logger;
  /** Length of one window. */
  windowMs: number;
  /** A window is logged when its longest delay reached this. */
  thresholdMs: number;
}

/** Sampling resolution: coarse, so an idle replica is not woken 100 times a second; blocks of interest are 100s of ms. */
const RESOLUTION_MS = 50;

export class LoopDelayLog {
  private histogram?: IntervalHistogram;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: LoopDelayLogOptions) {}

  start(): void {
    if (this.histogram) return;
    const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    histogram.enable();
    this.histogram = histogram;
    this.timer = setInterval(() => this.flush(), this.options.windowMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram?.disable();
    this.histogram = undefined;
  }

  private flush(): void {
    const h = this.histogram;
    if (!h) return;
    // The histogram counts the timer's own lateness past its resolution, in ns.
    const maxMs = Math.max(0, Math.round(h.max / 1e6 - RESOLUTION_MS));
    if (h.count > 0 && maxMs >= this.options.thresholdMs) {
      this.options.logger.info('event loop delay', {
        maxMs, p99Ms: Math.max(0, Math.round(h.percentile(99) / 1e6 - RESOLUTION_MS)), meanMs: Math.max(0, Math.round(h.mean / 1e6 - RESOLUTION_MS)),
        windowMs: this.options.windowMs,
      });
    }
    h.reset();
  }
}
